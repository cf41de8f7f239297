"""Deterministic layer tars, written, hashed and compressed in one streaming pass.

Headers are written here rather than with ``tarfile``: POSIX ustar, with a PAX
extended header only when a field does not fit (long or non-ASCII names, big
sizes or ids, xattrs), as Go's archive/tar does. Entries are sorted by path,
owners are numeric (no user or group names), hard links within the layer
become tar hard links to the first path seen, and with ``timestamp`` every
mtime is clamped to it (``SOURCE_DATE_EPOCH`` semantics).
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.errors import ImageError, LayerError
from builder.image.compress import open_compressor
from builder.image.digest import BackgroundSha256
from builder.image.layout import Layout
from builder.image.spec import (
    MEDIA_DOCKER_LAYER_GZIP,
    MEDIA_OCI_LAYER,
    MEDIA_OCI_LAYER_GZIP,
    MEDIA_OCI_LAYER_ZSTD,
    Descriptor,
)

WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"

_MEDIA_TYPES = {
    ("oci", "gzip"): MEDIA_OCI_LAYER_GZIP,
    ("oci", "zstd"): MEDIA_OCI_LAYER_ZSTD,
    ("oci", "none"): MEDIA_OCI_LAYER,
    ("docker", "gzip"): MEDIA_DOCKER_LAYER_GZIP,
}
_HEADER = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s12s")
_BLOCK = 512
_FLUSH = 1 << 20
_READ = 8 << 20
_MAX_OCTAL_8 = 0o7777777
_MAX_OCTAL_12 = 0o77777777777
_SKIPPED_XATTRS = ("security.selinux", "trusted.overlay.", "user.overlay.")
_TYPE_BY_FORMAT = {
    stat.S_IFREG: b"0", stat.S_IFDIR: b"5", stat.S_IFLNK: b"2",
    stat.S_IFCHR: b"3", stat.S_IFBLK: b"4", stat.S_IFIFO: b"6",
}


@dataclass(frozen=True)
class Override:
    """Metadata recorded for an entry instead of its source's (xattrs are left out)."""

    mode: int  # permission bits
    uid: int
    gid: int
    mtime: float


@dataclass(frozen=True)
class LayerEntry:
    """One path in a layer: ``path`` is relative (no leading "/"); ``source`` is the
    file, directory, symlink or device on disk, or None for a whiteout; ``override``
    replaces the source's mode, owner and mtime (a file copied without copying it)."""

    path: str
    source: Path | None
    override: Override | None = None


@dataclass(frozen=True)
class Layer:
    """A layer of an image: its blob (digest, size, media type) and the digest of its
    uncompressed tar (diff_id), the one value every part of pybuild passes around."""

    digest: str
    diff_id: str
    size: int
    media_type: str
    # what a base image's descriptor said besides, kept for the images made from it
    annotations: dict[str, str] | None = field(default=None, compare=False)
    urls: tuple[str, ...] | None = field(default=None, compare=False)

    @classmethod
    def of(cls, descriptor: Descriptor, diff_id: str) -> Layer:
        return cls(descriptor.digest, diff_id, descriptor.size, descriptor.media_type,
                   descriptor.annotations, tuple(descriptor.urls) if descriptor.urls else None)

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size,
                          annotations=dict(self.annotations) if self.annotations else None,
                          urls=list(self.urls) if self.urls else None)

    def to_json(self) -> dict[str, Any]:
        return {**self.descriptor().to_json(), "diffID": self.diff_id}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Layer:
        diff_id = data.get("diffID")
        if not isinstance(diff_id, str):
            raise ImageError("reading layer: missing field 'diffID'")
        return cls.of(Descriptor.from_json(data), diff_id)


def image_layers(descriptors: Sequence[Descriptor], diff_ids: Sequence[str]) -> list[Layer]:
    """The layers of an image from its manifest's descriptors and its config's diff_ids
    (bottom first); ImageError when their counts differ."""
    if len(descriptors) != len(diff_ids):
        raise ImageError(f"reading image: {len(descriptors)} layers but {len(diff_ids)} "
                         "diff_ids in its config")
    return [Layer.of(d, diff_id) for d, diff_id in zip(descriptors, diff_ids)]


def tree_entries(root: Path) -> list[LayerEntry]:
    """Every path under root (not root itself), sorted by path."""
    out: list[LayerEntry] = []
    stack = [("", os.fspath(root))]
    while stack:
        rel, directory = stack.pop()
        with os.scandir(directory) as it:
            for e in it:
                path = rel + e.name
                out.append(LayerEntry(path, Path(e.path)))
                if e.is_dir(follow_symlinks=False):
                    stack.append((path + "/", e.path))
    out.sort(key=lambda entry: entry.path)
    return out


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _pax_records(records: list[tuple[str, bytes]]) -> bytes:
    out = bytearray()
    for key, value in records:
        body = b" " + key.encode("utf-8", "surrogateescape") + b"=" + value + b"\n"
        n = len(body) + 1
        while len(str(n)) + len(body) != n:
            n = len(str(n)) + len(body)
        out += str(n).encode() + body
    return bytes(out)


def _header(name: bytes, mode: int, uid: int, gid: int, size: int, mtime: int,
            typeflag: bytes, linkname: bytes = b"", devmajor: int = 0, devminor: int = 0) -> bytes:
    fields = [
        name, _octal(mode, 8), _octal(uid, 8), _octal(gid, 8), _octal(size, 12),
        _octal(mtime, 12), b"        ", typeflag, linkname, b"ustar\0", b"00", b"", b"",
        _octal(devmajor, 8), _octal(devminor, 8), b"", b"",
    ]
    block = _HEADER.pack(*fields)
    checksum = b"%06o\0 " % sum(block)
    return block[:148] + checksum + block[156:]


def _needs_pax(value: bytes) -> bool:
    return len(value) > 100 or not value.isascii()


def _xattrs(source: Path) -> list[tuple[str, bytes]]:
    try:
        names = os.listxattr(source, follow_symlinks=False)
    except OSError:
        return []
    out = []
    for name in sorted(names):
        if name.startswith(_SKIPPED_XATTRS):
            continue
        try:
            out.append((f"SCHILY.xattr.{name}", os.getxattr(source, name, follow_symlinks=False)))
        except OSError:
            continue
    return out


def _check_path(path: str) -> str:
    parts = path.strip("/").split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise LayerError(f"writing layer: unsafe path {path!r} (must be relative and normalised)")
    return "/".join(parts)


class _TarStream:
    """Builds the tar stream and feeds it to the diff_id hash and the compressor."""

    def __init__(self, compressor: object, timestamp: int | None) -> None:
        self._out = compressor
        self._hash = BackgroundSha256()
        self._buf = bytearray()
        self._timestamp = timestamp
        self._links: dict[tuple[int, int], bytes] = {}

    def _emit(self, data: bytes | bytearray) -> None:
        self._hash.update(data)
        self._out.write(data)  # type: ignore[attr-defined]

    def _flush(self) -> None:
        if self._buf:
            self._emit(self._buf)
            self._buf = bytearray()

    def _mtime(self, mtime: float) -> int:
        value = max(int(mtime), 0)
        if self._timestamp is not None and value > self._timestamp:
            value = self._timestamp
        return min(value, _MAX_OCTAL_12)

    def _add_header(self, name: bytes, mode: int, uid: int, gid: int, size: int, mtime: int,
                    typeflag: bytes, linkname: bytes = b"", devmajor: int = 0,
                    devminor: int = 0, xattrs: list[tuple[str, bytes]] | None = None) -> None:
        pax: list[tuple[str, bytes]] = []
        if _needs_pax(name):
            pax.append(("path", name))
            name = name[:100]
        if _needs_pax(linkname):
            pax.append(("linkpath", linkname))
            linkname = linkname[:100]
        if size > _MAX_OCTAL_12:
            pax.append(("size", str(size).encode()))
        if uid > _MAX_OCTAL_8:
            pax.append(("uid", str(uid).encode()))
            uid = 0
        if gid > _MAX_OCTAL_8:
            pax.append(("gid", str(gid).encode()))
            gid = 0
        if xattrs:
            pax.extend(xattrs)
        if pax:
            body = _pax_records(sorted(pax))
            self._buf += _header(b"././@PaxHeader", 0o644, 0, 0, len(body), 0, b"x")
            self._buf += body
            self._buf += bytes(-len(body) % _BLOCK)
        self._buf += _header(name, mode, uid, gid, min(size, _MAX_OCTAL_12), mtime, typeflag,
                             linkname, devmajor, devminor)

    def add(self, entry: LayerEntry) -> None:
        path = _check_path(entry.path)
        name = path.encode("utf-8", "surrogateescape")
        base = path.rpartition("/")[2]
        if entry.source is None:
            if not base.startswith(WHITEOUT_PREFIX) or base == WHITEOUT_PREFIX:
                raise LayerError(f"writing layer: entry {path!r} has no source and is no whiteout")
            mtime = self._timestamp if self._timestamp is not None else 0
            self._add_header(name, 0o644, 0, 0, 0, mtime, b"0")
            return
        if base.startswith(WHITEOUT_PREFIX):
            raise LayerError(f"writing layer: refusing real file named like a whiteout: {path!r}")
        source = entry.source
        try:
            st = os.lstat(source)
        except OSError as exc:
            raise LayerError(f"writing layer: reading {path!r}: {exc.strerror or exc}") from exc
        fmt = stat.S_IFMT(st.st_mode)
        typeflag = _TYPE_BY_FORMAT.get(fmt)
        if typeflag is None:  # sockets have no tar representation
            return
        override = entry.override
        if override is None:
            mode, uid, gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
            mtime = self._mtime(st.st_mtime)
            xattrs = _xattrs(source)
        else:
            mode, uid, gid = override.mode, override.uid, override.gid
            mtime = self._mtime(override.mtime)
            xattrs = []
        linkname = b""
        size = 0
        devmajor = devminor = 0
        if typeflag == b"0":
            key = (st.st_dev, st.st_ino)
            first = self._links.get(key) if st.st_nlink > 1 else None
            if first is not None:
                typeflag, linkname = b"1", first
            else:
                if st.st_nlink > 1:
                    self._links[key] = name
                size = st.st_size
        elif typeflag == b"5":
            name += b"/"
        elif typeflag == b"2":
            linkname = os.fsencode(os.readlink(source))
        elif typeflag in (b"3", b"4"):
            devmajor, devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        self._add_header(name, mode, uid, gid, size, mtime, typeflag, linkname,
                         devmajor, devminor, xattrs)
        if size:
            self._add_content(path, source, size)

    def _add_content(self, path: str, source: Path, size: int) -> None:
        try:
            fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise LayerError(f"writing layer: opening {path!r}: {exc.strerror or exc}") from exc
        try:
            left = size
            while left:
                data = os.read(fd, min(left, _READ))
                if not data:
                    raise LayerError(f"writing layer: {path!r} shrank while being read")
                left -= len(data)
                if len(data) >= _FLUSH:
                    self._flush()
                    self._emit(data)
                else:
                    self._buf += data
        except OSError as exc:
            raise LayerError(f"writing layer: reading {path!r}: {exc.strerror or exc}") from exc
        finally:
            os.close(fd)
        self._buf += bytes(-size % _BLOCK)
        if len(self._buf) >= _FLUSH:
            self._flush()

    def finish(self) -> str:
        self._buf += bytes(2 * _BLOCK)
        self._flush()
        return "sha256:" + self._hash.hexdigest()

    def abort(self) -> None:
        self._hash.close()


def write_layer(
    entries: Iterable[LayerEntry],
    layout: Layout,
    *,
    compression: str = "gzip",
    timestamp: int | None = None,
    format: str = "oci",
) -> Layer:
    """Write entries as one layer blob into layout; diff_id and digest in one pass."""
    media_type = _MEDIA_TYPES.get((format, compression))
    if media_type is None:
        raise ImageError(
            f"writing layer: {compression!r} compression is not available in {format!r} format"
        )
    with layout.blob_writer() as blob:
        compressor = open_compressor(compression, blob)
        tar = _TarStream(compressor, timestamp)
        try:
            for entry in sorted(entries, key=lambda e: e.path):
                tar.add(entry)
            diff_id = tar.finish()
            compressor.close()
        except BaseException:
            tar.abort()
            abort = getattr(compressor, "abort", None)
            if abort is not None:
                abort()
            raise
    return Layer(blob.digest, diff_id, blob.size, media_type)
