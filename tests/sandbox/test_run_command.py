"""``pybuild run`` and ``pybuild info`` through the real CLI."""

from __future__ import annotations

import json

import pytest

from builder.image.layer import tree_entries, write_layer
from builder.store import Store

pytestmark = pytest.mark.sandbox


@pytest.fixture
def image(pybuild, busybox_root) -> str:
    store = Store(pybuild.root)
    layer = write_layer(tree_entries(busybox_root), store.layout)
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Env": ["PATH=/bin:/usr/bin", "WHO=image"], "Cmd": ["/bin/sh", "-c",
                         "echo default $WHO; exit 7"], "WorkingDir": "/home/user"},
              "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]}}
    config_digest, config_size = store.layout.put_blob(json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": config_digest, "size": config_size},
                "layers": [{"mediaType": layer.media_type, "digest": layer.digest,
                            "size": layer.size}]}
    store.put_manifest(json.dumps(manifest).encode(), ["bb:1"])
    return "bb:1"


def test_run_default_command_and_status(pybuild, image) -> None:
    res = pybuild("run", image, check=False)
    assert res.returncode == 7 and res.stdout == "default image\n"


def test_run_with_options(pybuild, image, tmp_path) -> None:
    (tmp_path / "vol").mkdir()
    (tmp_path / "vol/in").write_text("volume\n")
    res = pybuild("run", "-e", "WHO=cli", "-u", "user", "-w", "/tmp", "-v",
                  f"{tmp_path / 'vol'}:/data:ro", image, "/bin/sh", "-c",
                  "echo $WHO $(id -u) $(pwd); cat /data/in; touch /data/x || echo ro")
    assert res.stdout.split() == ["cli", "1000", "/tmp", "volume", "ro"]
    assert not list((pybuild.root / "workspaces").iterdir())


def test_info_and_version(pybuild) -> None:
    info = json.loads(pybuild("info", "--format", "json").stdout)
    assert info["store"]["driver"] in ("overlay", "vfs")
    assert info["isolation"]["default"] == "chroot"
    assert "pybuild:" in pybuild("version").stdout
    assert "vfs" in pybuild("--storage-driver", "vfs", "info").stdout
