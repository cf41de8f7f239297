"""Local transports against the real tools: skopeo, umoci."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from builder.errors import UsageError, VerificationError
from builder.image.spec import MEDIA_DOCKER_MANIFEST
from builder.store import Store
from builder.store.transports import export_image, import_image, parse_transport

from .helpers import make_image

pytestmark = pytest.mark.interop


def sh(*args: object) -> str:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    assert proc.returncode == 0, f"{args}: {proc.stderr}"
    return proc.stdout


@pytest.mark.parametrize("ref, expected", [
    ("oci:/d:t", ("oci", "/d:t")),
    ("oci-archive:f.tar", ("oci-archive", "f.tar")),
    ("docker-archive:f.tar:a:1", ("docker-archive", "f.tar:a:1")),
    ("docker://quay.io/x:1", ("docker", "quay.io/x:1")),
    ("localhost:5000/x:1", ("store", "localhost:5000/x:1")),
    ("app", ("store", "app")),
])
def test_parse_transport(ref: str, expected: tuple[str, str]) -> None:
    assert parse_transport(ref) == expected


def test_parse_transport_empty() -> None:
    with pytest.raises(UsageError):
        parse_transport("oci:")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_oci_dir_export_passes_skopeo_and_umoci(store: Store, tmp_path: Path,
                                                 compression: str) -> None:
    rec = make_image(store, tmp_path, "a", ("app:1.0",), compression=compression)
    info = json.loads(sh("skopeo", "inspect", f"oci:{store.root}:localhost/app:1.0"))
    assert info["Digest"] == rec.manifest_digest
    out = tmp_path / "out"
    assert export_image(store, "app:1.0", f"oci:{out}:v1") == rec.manifest_digest
    assert json.loads(sh("skopeo", "inspect", f"oci:{out}:v1"))["Digest"] == rec.manifest_digest
    if compression == "gzip":  # umoci 0.4 reads gzip layers only
        sh("umoci", "unpack", "--image", f"{out}:v1", tmp_path / "bundle")
        assert (tmp_path / "bundle/rootfs/etc/content").read_text() == "a"
    sh("skopeo", "copy", f"oci:{out}:v1", f"oci-archive:{tmp_path / 'copy.tar'}")


def test_archives_pass_skopeo(store: Store, tmp_path: Path) -> None:
    rec = make_image(store, tmp_path, "a", ("app:1.0",))
    export_image(store, rec.id, f"docker-archive:{tmp_path / 'd.tar'}:app:1.0")
    info = json.loads(sh("skopeo", "inspect", f"docker-archive:{tmp_path / 'd.tar'}"))
    assert info["Layers"] and info["Env"] == ["PATH=/bin"]
    export_image(store, "app:1.0", f"oci-archive:{tmp_path / 'o.tar'}:t")
    info = json.loads(sh("skopeo", "inspect", f"oci-archive:{tmp_path / 'o.tar'}:t"))
    assert info["Digest"] == rec.manifest_digest


def test_import_skopeo_outputs_keep_image_id(store: Store, tmp_path: Path) -> None:
    rec = make_image(store, tmp_path, "a", ("app:1.0",))
    src = f"oci:{store.root}:localhost/app:1.0"
    sh("skopeo", "copy", src, f"oci:{tmp_path / 'sk'}:x")
    sh("skopeo", "copy", src, f"docker-archive:{tmp_path / 'sk.tar'}:app:1.0")
    sh("skopeo", "copy", src, f"oci-archive:{tmp_path / 'sko.tar'}:y")
    other = Store(tmp_path / "other")
    a = import_image(other, f"oci:{tmp_path / 'sk'}:x", ["one"])
    b = import_image(other, f"docker-archive:{tmp_path / 'sk.tar'}", ["two"])
    c = import_image(other, f"oci-archive:{tmp_path / 'sko.tar'}:y", ["three"])
    assert a.id == b.id == c.id == rec.id
    assert a.manifest_digest == rec.manifest_digest
    assert other.lookup("two").config == rec.config


def test_import_detects_corruption(store: Store, tmp_path: Path) -> None:
    rec = make_image(store, tmp_path, "a", ("app",))
    export_image(store, "app", f"oci:{tmp_path / 'o'}:t")
    blob = tmp_path / "o/blobs/sha256" / rec.manifest.layers[0].digest[7:]
    blob.write_bytes(blob.read_bytes() + b"x")
    other = Store(tmp_path / "other")
    with pytest.raises(VerificationError) as refused:
        import_image(other, f"oci:{tmp_path / 'o'}:t")
    assert refused.value.problem == "size" and refused.value.digest in str(refused.value)
    assert other.images() == []


def test_docker_format_export(store: Store, tmp_path: Path) -> None:
    make_image(store, tmp_path, "a", ("app",))
    export_image(store, "app", f"oci:{tmp_path / 'o'}:t", format="docker")
    index = json.loads((tmp_path / "o/index.json").read_text())
    assert index["manifests"][0]["mediaType"] == MEDIA_DOCKER_MANIFEST


def test_a_docker_image_is_written_to_an_oci_layout_as_oci(store: Store, tmp_path: Path) -> None:
    """As Buildah: an OCI layout gets OCI media types, the config fields OCI has no place
    for are dropped and named; --format docker keeps the v2s2 manifest (and the fields)."""
    rec = make_image(store, tmp_path, "a", ("app",), format="docker")
    config = json.loads(store.layout.read_blob(rec.manifest.config.digest))
    config["config"]["Healthcheck"] = {"Test": ["CMD-SHELL", "true"]}
    config["config"]["OnBuild"] = ["RUN echo hi"]
    manifest = json.loads(store.layout.read_blob(rec.manifest_digest))
    data = json.dumps(config).encode()
    manifest["config"]["digest"], manifest["config"]["size"] = store.layout.put_blob(data)
    store.put_manifest(json.dumps(manifest).encode(), ["app"])
    warnings: list[str] = []
    export_image(store, "app", f"oci:{tmp_path / 'o'}:t", warn=warnings.append)
    layout = tmp_path / "o"
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    written = json.loads((layout / "blobs/sha256" / index["manifests"][0]["digest"][7:])
                         .read_text())
    assert written["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert {x["mediaType"] for x in written["layers"]} == {
        "application/vnd.oci.image.layer.v1.tar+gzip"}
    body = json.loads((layout / "blobs/sha256" / written["config"]["digest"][7:]).read_text())
    assert "Healthcheck" not in body["config"] and "OnBuild" not in body["config"]
    assert body["config"]["Cmd"] == ["/bin/sh"]
    assert [w.split()[0] for w in warnings] == ["Healthcheck", "OnBuild"]
    subprocess.run(["skopeo", "inspect", f"oci:{layout}:t"], check=True, capture_output=True)
    subprocess.run(["umoci", "stat", "--image", f"{layout}:t"], check=True, capture_output=True)
    export_image(store, "app", f"oci:{tmp_path / 'd'}:t", format="docker")
    kept = json.loads((tmp_path / "d/index.json").read_text())["manifests"][0]
    assert kept["mediaType"] == MEDIA_DOCKER_MANIFEST
