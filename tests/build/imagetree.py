"""Read an image from an OCI layout as (config, file tree) for comparisons."""

from __future__ import annotations

import gzip
import io
import json
import posixpath
import stat
import tarfile
from pathlib import Path
from typing import Any

import zstandard

Entry = tuple[str, int, int, int, int, str]  # type, mode, uid, gid, size, link target


def _blob(layout: Path, digest: str) -> bytes:
    algorithm, _, hex_ = digest.partition(":")
    return (layout / "blobs" / algorithm / hex_).read_bytes()


def _manifest(layout: Path, ref: str | None) -> dict[str, Any]:
    index = json.loads((layout / "index.json").read_text())
    for desc in index["manifests"]:
        name = (desc.get("annotations") or {}).get("org.opencontainers.image.ref.name")
        if ref is None or name == ref:
            return json.loads(_blob(layout, desc["digest"]))
    raise KeyError(ref)


def _untar(data: bytes) -> tarfile.TarFile:
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    elif data[:4] == b"\x28\xb5\x2f\xfd":
        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    return tarfile.open(fileobj=io.BytesIO(data))


def read_image(layout: Path, ref: str | None = None) -> tuple[dict[str, Any], dict[str, Entry]]:
    """The image config JSON and the flattened tree {path: (type, mode, uid, gid, size, link)}."""
    manifest = _manifest(layout, ref)
    config = json.loads(_blob(layout, manifest["config"]["digest"]))
    tree: dict[str, Entry] = {}
    for layer in manifest["layers"]:
        with _untar(_blob(layout, layer["digest"])) as tar:
            for member in tar.getmembers():
                path = posixpath.normpath(member.name.lstrip("./") or ".")
                if path == ".":
                    continue
                parent, name = posixpath.split(path)
                if name == ".wh..wh..opq":
                    for key in [k for k in tree if k.startswith(parent + "/")]:
                        del tree[key]
                    continue
                if name.startswith(".wh."):
                    gone = posixpath.join(parent, name[4:])
                    for key in [k for k in tree if k == gone or k.startswith(gone + "/")]:
                        del tree[key]
                    continue
                kind = ("dir" if member.isdir() else "symlink" if member.issym() else
                        "file" if member.isfile() or member.islnk() else "other")
                size = member.size if member.isfile() else 0
                if member.islnk():
                    target = posixpath.normpath(member.linkname.lstrip("./"))
                    size = tree[target][4] if target in tree else 0
                tree[path] = (kind, stat.S_IMODE(member.mode), member.uid, member.gid, size,
                              member.linkname if member.issym() else "")
    return config, tree
