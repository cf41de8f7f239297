"""Read an image layer by layer (with content digests) and normalise layers for comparison.

A layer is ``{path: Entry}`` with whiteouts (``dir/.wh.name``) and opaque markers
(``dir/.wh..wh..opq``) kept under their own names, plus its hardlink groups.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.build.imagetree import _blob, _manifest, _untar

WHITEOUT, OPAQUE = ".wh.", ".wh..wh..opq"

# What Buildah's RUN sandbox leaves behind as empty mount points; pybuild leaves nothing.
MOUNT_POINTS = frozenset({"dev", "proc", "sys", "run", "etc/hosts", "etc/hostname",
                          "etc/resolv.conf"})


@dataclass(frozen=True)
class Entry:
    kind: str  # dir, file, symlink, fifo, char, block, whiteout, opaque
    mode: int = 0
    uid: int = 0
    gid: int = 0
    size: int = 0
    link: str = ""  # symlink target
    digest: str = ""  # sha256 of a regular file's content


@dataclass
class Layer:
    entries: dict[str, Entry] = field(default_factory=dict)
    links: set[frozenset[str]] = field(default_factory=set)  # paths sharing one inode


@dataclass
class Image:
    config: dict[str, Any]
    steps: list[tuple[dict[str, Any], Layer | None]]  # history entry, its layer (None: empty)


KINDS = {tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink", tarfile.FIFOTYPE: "fifo",
         tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block"}


def _norm(name: str) -> str:
    return posixpath.normpath(name.lstrip("/").removeprefix("./") or ".")


def read_layer(data: bytes) -> Layer:
    """The entries of one (possibly compressed) layer tar."""
    layer = Layer()
    groups: dict[str, set[str]] = {}
    with _untar(data) as tar:
        for member in tar:
            path = _norm(member.name)
            if path == ".":
                continue
            name = posixpath.basename(path)
            if name == OPAQUE:
                layer.entries[path] = Entry("opaque")
            elif name.startswith(WHITEOUT):
                layer.entries[path] = Entry("whiteout")
            elif member.islnk():
                target = _norm(member.linkname)
                layer.entries[path] = layer.entries[target]
                groups.setdefault(target, {target}).add(path)
            else:
                digest = ""
                if member.isfile():
                    reader = tar.extractfile(member)
                    assert reader is not None
                    digest = hashlib.sha256(reader.read()).hexdigest()
                kind = "file" if member.isfile() else KINDS.get(member.type, "other")
                layer.entries[path] = Entry(kind, stat.S_IMODE(member.mode), member.uid,
                                            member.gid, member.size if member.isfile() else 0,
                                            member.linkname if member.issym() else "", digest)
    layer.links = {frozenset(group) for group in groups.values()}
    return layer


def read_image(layout: Path, ref: str) -> Image:
    """Config and (history entry, layer) pairs of the image ``ref`` in an OCI layout."""
    manifest = _manifest(layout, ref)
    config = json.loads(_blob(layout, manifest["config"]["digest"]))
    layers = iter(manifest["layers"])
    steps: list[tuple[dict[str, Any], Layer | None]] = []
    for entry in config["history"]:
        layer = None if entry.get("empty_layer") else read_layer(_blob(layout,
                                                                      next(layers)["digest"]))
        steps.append((entry, layer))
    assert next(layers, None) is None, "more layers than history entries"
    return Image(config, steps)


def apply(tree: dict[str, Entry], layer: Layer) -> dict[str, Entry]:
    """The tree after applying ``layer`` to it (OCI whiteout semantics)."""
    tree = dict(tree)
    for path, entry in layer.entries.items():
        parent, name = posixpath.split(path)
        if entry.kind == "opaque":
            prefix = parent + "/" if parent else ""
            for key in [k for k in tree if k.startswith(prefix) and k not in layer.entries]:
                del tree[key]
        elif entry.kind == "whiteout":
            gone = posixpath.join(parent, name[len(WHITEOUT):])
            for key in [k for k in tree if k == gone or k.startswith(gone + "/")]:
                del tree[key]
    for path, entry in layer.entries.items():
        if entry.kind in ("opaque", "whiteout"):
            continue
        if path in tree and tree[path].kind == "dir" and entry.kind != "dir":
            for key in [k for k in tree if k.startswith(path + "/")]:
                del tree[key]
        tree[path] = entry
    return tree


def merge(first: Layer, second: Layer) -> Layer:
    """Two consecutive layers as one (the second's entries win)."""
    return Layer({**first.entries, **second.entries}, first.links | second.links)


def normalise(layer: Layer, lower: dict[str, Entry], mount_points: frozenset[str]) -> Layer:
    """Drop what does not change the tree: directories repeated with the metadata they
    already have below (parents both tools re-emit), opaque markers in a directory that
    has no directory below it to hide, and empty sandbox mount points."""
    kept: dict[str, Entry] = {}
    for path, entry in layer.entries.items():
        below = lower.get(path)
        if entry.kind == "dir" and below == entry:
            continue
        if entry.kind == "opaque" and getattr(lower.get(posixpath.dirname(path)), "kind",
                                              None) != "dir":
            continue
        if path in mount_points and entry.kind in ("dir", "file") and entry.size == 0 \
                and not any(k.startswith(path + "/") for k in layer.entries):
            continue
        kept[path] = entry
    return Layer(kept, layer.links)
