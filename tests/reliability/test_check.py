"""`pybuild check` and `check --repair` on hand-corrupted stores."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Pybuild

DEAD = "999999999.1"  # above any pid_max: a process that cannot be running


def _index(root: Path) -> dict:
    return json.loads((root / "index.json").read_text())


def _manifest_of(root: Path, name: str) -> tuple[str, dict]:
    for desc in _index(root)["manifests"]:
        if desc.get("annotations", {}).get("org.opencontainers.image.ref.name") == name:
            digest = desc["digest"]
            return digest, json.loads(_blob(root, digest).read_bytes())
    raise AssertionError(f"{name} not in index")


def _blob(root: Path, digest: str) -> Path:
    return root / "blobs" / "sha256" / digest.removeprefix("sha256:")


def _layer(root: Path) -> str:
    return _manifest_of(root, "localhost/a:latest")[1]["layers"][0]["digest"]


def flip_byte(root: Path) -> list[str]:
    digest = _layer(root)
    path = _blob(root, digest)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return [f"corrupt-blob: blobs/sha256/{digest[7:]}: content hashes to sha256:",
            f"dangling-reference: localhost/a:latest: blob {digest} is corrupt"]


def truncate_blob(root: Path) -> list[str]:
    digest = _layer(root)
    path = _blob(root, digest)
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:10])
    return [f"corrupt-blob: blobs/sha256/{digest[7:]}",
            f"dangling-reference: localhost/a:latest: layer {digest} has 10 bytes, "
            f"{size} declared"]


def missing_layer(root: Path) -> list[str]:
    digest = _layer(root)
    _blob(root, digest).unlink()
    return [f"dangling-reference: localhost/a:latest: layer {digest} is missing"]


def missing_manifest(root: Path) -> list[str]:
    digest, manifest = _manifest_of(root, "localhost/a:latest")
    _blob(root, digest).unlink()
    return [f"dangling-reference: localhost/a:latest: manifest {digest} is missing"]


def dangling_entry(root: Path) -> list[str]:
    index = _index(root)
    ghost = "sha256:" + "0" * 64
    index["manifests"].append({
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": ghost,
        "size": 123, "annotations": {"org.opencontainers.image.ref.name": "localhost/ghost:1"}})
    (root / "index.json").write_text(json.dumps(index))
    return [f"dangling-reference: localhost/ghost:1: manifest {ghost} is missing"]


def stale_temp(root: Path) -> list[str]:
    (root / "tmp" / DEAD).mkdir(parents=True)
    (root / "tmp" / DEAD / ".tmp-blob").write_bytes(b"half a blob")
    return [f"leftover-temp: tmp/{DEAD}: process 999999999 is gone"]


def stale_index_temp(root: Path) -> list[str]:
    (root / ".tmp-index").write_text("{")
    return ["leftover-temp: .tmp-index: no process owns it"]


def partial_layer(root: Path) -> list[str]:
    (root / "layers" / ".tmp-0123" / "usr").mkdir(parents=True)
    return ["partial-layer: layers/.tmp-0123: extraction never finished"]


def leftover_workspace(root: Path) -> list[str]:
    (root / "workspaces" / "feed" / "root").mkdir(parents=True)
    return ["leftover-workspace: workspaces/feed: no build is using it"]


def unreferenced(root: Path) -> list[str]:
    import hashlib

    data = b"orphan"
    digest = hashlib.sha256(data).hexdigest()
    _blob(root, "sha256:" + digest).write_bytes(data)
    return [f"unreferenced-blob: blobs/sha256/{digest}: no image uses it"]


def stray_file(root: Path) -> list[str]:
    (root / "blobs" / "sha256" / "not-a-digest").write_text("x")
    return ["stray-file: blobs/sha256/not-a-digest: not a blob"]


def bad_layout(root: Path) -> list[str]:
    (root / "oci-layout").unlink()
    return ["bad-layout: oci-layout: missing or not an OCI layout marker"]


CORRUPTIONS: dict[str, Callable[[Path], list[str]]] = {
    f.__name__: f for f in (flip_byte, truncate_blob, missing_layer, missing_manifest,
                            dangling_entry, stale_temp, stale_index_temp, partial_layer,
                            leftover_workspace, unreferenced, stray_file, bad_layout)
}
DROPS_A = {"flip_byte", "truncate_blob", "missing_layer", "missing_manifest"}


def test_clean_store_passes(store_ab: Pybuild) -> None:
    res = store_ab("check")
    assert res.stdout.strip().endswith("and 2 images: no problems")


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_check_reports_and_repair_fixes(store_ab: Pybuild, name: str) -> None:
    expected = CORRUPTIONS[name](store_ab.root)
    res = store_ab("check", check=False)
    assert res.returncode == 1, res.output
    for line in expected:
        assert any(out.startswith(line) for out in res.stdout.splitlines()), \
            f"{line!r} not in:\n{res.stdout}"
    repaired = store_ab("check", "--repair", check=False)
    assert repaired.returncode == 0, repaired.output
    assert store_ab("check").stdout.strip().endswith("no problems")
    listed = store_ab("images").stdout
    assert "localhost/b" in listed, listed
    assert ("localhost/a" in listed) == (name not in DROPS_A)


def test_unreadable_index_is_rebuilt_without_names(store_ab: Pybuild) -> None:
    (store_ab.root / "index.json").write_text("{not json")
    res = store_ab("check", check=False)
    assert res.returncode == 1 and "bad-index: index.json: reading image index: invalid JSON" \
        in res.stdout
    repaired = store_ab("check", "--repair")
    assert "rebuilt index.json from 2 stored manifests" in repaired.stdout
    assert len(_index(store_ab.root)["manifests"]) == 2


def test_a_normal_command_cleans_what_dead_processes_left(store_ab: Pybuild) -> None:
    for corrupt in (stale_temp, stale_index_temp, partial_layer, leftover_workspace):
        corrupt(store_ab.root)
    assert store_ab("check", check=False).returncode == 1
    store_ab("images")
    assert store_ab("check").returncode == 0


def test_leftovers_of_live_processes_are_not_touched(store_ab: Pybuild, tmp_path: Path) -> None:
    """While another process uses the store, its workspaces might be in use."""
    import subprocess
    import sys

    code = ("import sys, time\nfrom pathlib import Path\nfrom builder.store import Store\n"
            "Store(Path(sys.argv[1]))\nprint('ready', flush=True)\ntime.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(store_ab.root)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        leftover_workspace(store_ab.root)
        stale_temp(store_ab.root)
        res = store_ab("check", check=False)
        assert "leftover-workspace" not in res.stdout
        assert f"leftover-temp: tmp/{DEAD}" in res.stdout
        store_ab("images")
        assert (store_ab.root / "workspaces" / "feed").exists()
        assert not (store_ab.root / "tmp" / DEAD).exists()
    finally:
        proc.kill()
        proc.communicate()
    store_ab("images")
    assert not (store_ab.root / "workspaces" / "feed").exists()


def test_process_temp_dir_is_removed_at_exit(store_ab: Pybuild) -> None:
    store_ab("images")
    assert os.listdir(store_ab.root / "tmp") == []
