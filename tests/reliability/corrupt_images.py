"""Images whose one layer is corrupt in one way, in every transport a user can name:
an ``oci:`` layout, an ``oci-archive:``, a ``docker-archive:`` and a registry
repository (pushed with raw HTTP requests, since no honest client would).

``CORRUPTIONS`` is the table: name -> (what the refusal's ``problem`` is, a
substring of its message). ``corrupt(name)`` makes the layer.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from builder.image.spec import MEDIA_OCI_CONFIG, MEDIA_OCI_MANIFEST

GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"

# name -> (VerificationError.problem, message substring); "{size}" is the manifest's size
CORRUPTIONS: dict[str, tuple[str, str]] = {
    "size-mismatch": ("size", "bytes, the manifest says"),
    "digest-mismatch": ("digest", "content digest is sha256:"),
    "diff-id-mismatch": ("diff_id", "the config says sha256:"),
    "truncated-gzip": ("truncated stream", "truncated or corrupt gzip stream"),
    "truncated-zstd": ("truncated stream", "truncated or corrupt zstd stream"),
    "tar-entry-ends-early": ("bad tar", "bad tar: unexpected end of data"),
}
# a docker archive has no layer descriptors: nothing to compare a size or digest with
DOCKER_ARCHIVE_CORRUPTIONS = [name for name in CORRUPTIONS
                              if name not in ("size-mismatch", "digest-mismatch")]
# a registry checks every upload against its digest (a blob damaged on the way down is
# retried, see tests/registry/test_registry_faults.py)
REGISTRY_CORRUPTIONS = [name for name in CORRUPTIONS if name != "digest-mismatch"]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def plain_tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@dataclass
class Layer:
    """A layer as stored (``blob``) and as the manifest and config describe it."""

    blob: bytes
    media_type: str
    size: int
    digest: str
    diff_id: str


def good_layer() -> Layer:
    raw = plain_tar({"hello": b"hello from the base\n" * 200, "etc/os-release": b"ID=test\n"})
    blob = gzip.compress(raw, mtime=0)
    return Layer(blob, GZIP, len(blob), sha256(blob), sha256(raw))


def corrupt(name: str) -> Layer:
    """The base layer with corruption ``name`` (a key of ``CORRUPTIONS``)."""
    layer = good_layer()
    raw = gzip.decompress(layer.blob)
    if name == "size-mismatch":
        layer.size += 7
    elif name == "digest-mismatch":
        flipped = bytearray(layer.blob)
        flipped[len(flipped) // 2] ^= 0xFF
        layer.blob = bytes(flipped)  # same size, the manifest keeps the old digest
    elif name == "diff-id-mismatch":
        layer.diff_id = sha256(raw + b"\0" * 512)
    elif name in ("truncated-gzip", "truncated-zstd"):
        if name == "truncated-zstd":
            import zstandard

            whole = zstandard.ZstdCompressor().compress(raw)
            layer.media_type = ZSTD
        else:
            whole = layer.blob
        layer.blob = whole[: len(whole) // 2]  # the descriptor describes the cut blob
        layer.size, layer.digest = len(layer.blob), sha256(layer.blob)
    elif name == "tar-entry-ends-early":
        cut = raw[: raw.index(b"hello from the base") + 100]  # 100 of 4,000 bytes, no end
        layer.blob = gzip.compress(cut, mtime=0)
        layer.size, layer.digest, layer.diff_id = len(layer.blob), sha256(layer.blob), sha256(cut)
    elif name != "none":
        raise ValueError(name)
    return layer


def config_bytes(layer: Layer) -> bytes:
    return json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "corrupt base"}],
    }, sort_keys=True).encode()


def manifest_bytes(layer: Layer, config: bytes) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": MEDIA_OCI_MANIFEST,
        "config": {"mediaType": MEDIA_OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size}],
    }, sort_keys=True).encode()


def write_layout(directory: Path, tag: str, layer: Layer) -> Path:
    """An OCI layout holding the image as ``tag``; the layer's file is named by the digest
    the manifest gives, whatever its content."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    config = config_bytes(layer)
    manifest = manifest_bytes(layer, config)
    for name, data in ((layer.digest, layer.blob), (sha256(config), config),
                       (sha256(manifest), manifest)):
        (blobs / name[7:]).write_bytes(data)
    (directory / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (directory / "index.json").write_text(json.dumps({
        "schemaVersion": 2, "manifests": [{
            "mediaType": MEDIA_OCI_MANIFEST, "digest": sha256(manifest), "size": len(manifest),
            "annotations": {"org.opencontainers.image.ref.name": tag}}]}))
    return directory


def write_oci_archive(path: Path, tag: str, layer: Layer) -> Path:
    layout = write_layout(path.with_suffix(".layout"), tag, layer)
    with tarfile.open(path, "w") as tar:
        for name in sorted(os.listdir(layout)):
            tar.add(layout / name, arcname=name)
    return path


def write_docker_archive(path: Path, tag: str, layer: Layer) -> Path:
    """``docker save`` form: manifest.json, the config, the layer blob as it is."""
    config = config_bytes(layer)
    members = {
        "manifest.json": json.dumps([{"Config": f"{sha256(config)[7:]}.json",
                                      "RepoTags": [tag], "Layers": ["layer/layer.tar"]}]).encode(),
        f"{sha256(config)[7:]}.json": config,
        "layer/layer.tar": layer.blob,
    }
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def push_raw(base_url: str, repository: str, tag: str, layer: Layer) -> None:
    """Upload the blobs and the manifest with plain HTTP requests (monolithic uploads);
    the registry checks each blob against the digest it is uploaded as, nothing more."""
    import requests

    config = config_bytes(layer)
    for data in (layer.blob, config):
        started = requests.post(f"{base_url}/v2/{repository}/blobs/uploads/", timeout=30)
        assert started.status_code == 202, started.text
        location = started.headers["Location"]
        if location.startswith("/"):
            location = base_url + location
        joiner = "&" if "?" in location else "?"
        put = requests.put(f"{location}{joiner}digest={sha256(data)}", data=data, timeout=30,
                           headers={"Content-Type": "application/octet-stream"})
        assert put.status_code == 201, put.text
    manifest = manifest_bytes(layer, config)
    put = requests.put(f"{base_url}/v2/{repository}/manifests/{tag}", data=manifest, timeout=30,
                       headers={"Content-Type": MEDIA_OCI_MANIFEST})
    assert put.status_code == 201, put.text
