"""Safe extraction of one OCI layer tar into a directory.

The tar is read as a stream (bounded memory) by a small strict reader (ustar
headers, POSIX pax ``x`` and ``g`` headers, GNU long names and links). A
second thread decompresses and hashes it a few chunks ahead, so the diff_id
is verified without a second pass. Nothing is ever written outside ``dest``:
names with ``..`` or a leading ``/``, entries below a symlink, hardlinks
leaving the layer and whiteouts aimed outside are refused with a
``LayerError`` that names the layer and the entry. So are corrupt headers
(bad checksums or numbers, oversized pax data) and sparse files.

Whiteouts are either kept in overlay form (``whiteouts="overlay"``: a
``.wh.NAME`` becomes a 0:0 character device, ``.wh..wh..opq`` the
``trusted.overlay.opaque=y`` xattr, or ``user.overlay.opaque=y`` in a user
namespace, where overlay is mounted with ``userxattr``; so the directory can be
an overlay lowerdir) or applied (``whiteouts="apply"``: the named paths are deleted from
``dest``, which holds the layers below, for the vfs driver; an opaque marker
deletes everything below its directory that this layer did not put there,
wherever the marker comes in the tar).

Duplicate entries: a directory may appear more than once (its metadata is
updated); any other name appearing twice is refused, as is a file replacing
an entry this layer created. Entries in ``dest`` from lower layers are
replaced. On error ``dest`` may be partly written; callers extract into a
temporary directory and discard it.

Owners are kept. In a user namespace (rootless pybuild, ``builder.userns``) an
owner the namespace does not map is an ``IdMapError`` naming the entry and the
id, and character and block devices, which cannot be created there, are
skipped as Buildah (containers/storage) skips them: whatever a lower layer has
at that path is removed (or, in overlay form, whited out), and one warning per
layer lists them. FIFOs, set-id bits and ``security.capability`` are kept.

Two more entry points read through the same reader: ``scan_layer`` checks a
layer blob without writing anything (image verification at import), and
``extract_archive`` unpacks an archive onto an existing root file system as
ADD does (``archive_format`` tells whether a file is one).
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import posixpath
import queue
import re
import shutil
import stat
import struct
import sys
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeVar, cast

from builder import userns
from builder.errors import CompressedStreamError, DigestMismatch, LayerError
from builder.rootfs.paths import resolve_in_root

__all__ = [
    "ARCHIVE_COMPRESSIONS", "OPAQUE_MARKER", "OPAQUE_XATTR", "OPAQUE_XATTRS", "WHITEOUT_PREFIX",
    "archive_format", "extract_archive", "extract_layer", "opaque_xattr", "scan_layer",
]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
# what marks an opaque directory: the kernel's overlay as root, with userxattr (in a
# user namespace), and fuse-overlayfs's own
OPAQUE_XATTRS = (OPAQUE_XATTR, "user.overlay.opaque", "user.fuseoverlayfs.opaque")
# xattrs a layer may not carry into a root file system: overlay metadata would change
# what the overlay shows
_OVERLAY_XATTRS = ("trusted.overlay.", "user.overlay.", "user.fuseoverlayfs.")
_XATTR_PAX = "SCHILY.xattr."
_CHUNK = 1 << 20
_MAX_NAME = 4096
_MAX_EXTENSION = 1 << 20  # pax data and GNU long names, as in Go's archive/tar

_BLOCK_SIZE = 512
_ZERO_BLOCK = bytes(_BLOCK_SIZE)
# name mode uid gid size mtime chksum typeflag linkname magic version uname gname
# devmajor devminor prefix
_HEADER = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s12x")
_USTAR_MAGIC = b"ustar\0"
_REG, _LNK, _SYM, _CHR, _BLK, _DIR, _FIFO = b"0", b"1", b"2", b"3", b"4", b"5", b"6"
_REGULAR_TYPES = (_REG, b"\0", b"7")
_HEADER_ONLY_TYPES = (_LNK, _SYM, _CHR, _BLK, _DIR, _FIFO)
_EXTENSION_TYPES = (b"x", b"g", b"L", b"K")
_PAX_TIME = re.compile(rb"(-?)(\d{1,30})(?:\.(\d{0,30}))?")
ARCHIVE_COMPRESSIONS = ("gzip", "bzip2", "xz", "zstd", "none")
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"),
          (b"\x28\xb5\x2f\xfd", "zstd"))
_T = TypeVar("_T")


@dataclass(slots=True)
class _Entry:
    """One archive member, extension headers applied; ``mtime`` in nanoseconds."""

    name: str
    type: bytes
    mode: int
    uid: int
    gid: int
    size: int
    mtime: int
    linkname: str
    devmajor: int
    devminor: int
    xattrs: dict[str, bytes] = field(default_factory=dict)

    def is_dir(self) -> bool:
        return self.type == _DIR


def _string(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _number(raw: bytes) -> int:
    """A header number: octal text ending in a space or NUL, or GNU base-256."""
    if raw[:1] in (b"\x80", b"\xff"):
        value = int.from_bytes(raw[1:], "big")
        return value - (1 << (8 * (len(raw) - 1))) if raw[0] == 0xFF else value
    digits = raw.split(b"\0", 1)[0].strip(b" ")
    if digits.isdigit():
        return int(digits, 8)  # ValueError for 8 and 9
    if digits:
        raise ValueError(f"bad number {raw!r}")
    return 0


def _pax_records(data: bytes) -> dict[str, bytes]:
    """``LENGTH KEY=VALUE\\n`` records; anything else is an error."""
    records: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos, pos + 12)
        length = data[pos:space]
        end = pos + int(length) if space > pos and length.isdigit() else -1
        if end <= space or end > len(data) or data[end - 1] != 0x0A:
            raise ValueError("bad pax record")
        key, eq, value = data[space + 1:end - 1].partition(b"=")
        if not key or not eq:
            raise ValueError("bad pax record")
        records[key.decode("utf-8", "surrogateescape")] = value
        pos = end
    return records


def _pax_int(value: bytes) -> int:
    if not value.isdigit() or len(value) > 30:
        raise ValueError(f"bad pax number {value!r}")
    return int(value)


def _pax_time(value: bytes) -> int:
    """A pax time (``[-]SECONDS[.FRACTION]``) in nanoseconds."""
    match = _PAX_TIME.fullmatch(value)
    if match is None:
        raise ValueError(f"bad pax time {value!r}")
    sign, seconds, fraction = match.groups()
    ns = int(seconds) * 1_000_000_000 + int((fraction or b"")[:9].ljust(9, b"0"))
    return -ns if sign else ns


def _checksum_ok(block: bytes) -> bool:
    """Whether a header block's checksum field matches its bytes."""
    try:
        expected = _number(block[148:156])
    except ValueError:
        return False
    total = sum(block) - sum(block[148:156]) + 8 * ord(" ")  # the field counts as spaces
    if expected == total:
        return True
    # some old tars sum signed bytes
    return expected == total - 256 * sum(1 for b in block[:148] + block[156:] if b > 127)


def _new_file(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                   0o600)


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        data = data[os.write(fd, data):]


class _Prefetcher:
    """Reads (so decompresses) and hashes the stream on a thread, a few chunks ahead.

    Decompression and hashing release the GIL, so they overlap with parsing and
    file creation on the calling thread.
    """
    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.chunks: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=4)
        self.stopping = False
        self.eof = False
        self.thread = threading.Thread(target=self.run, name="layer-reader", daemon=True)
        self.thread.start()

    def run(self) -> None:
        try:
            while not self.stopping:
                data = self.raw.read(_CHUNK)
                self.hash.update(data)
                self.chunks.put(data)
                if not data:
                    return
        except BaseException as exc:  # raised again by read()
            self.chunks.put(exc)

    def read(self) -> bytes:
        """The next chunk; b"" at the end of the stream."""
        if self.eof:
            return b""
        item = self.chunks.get()
        if isinstance(item, BaseException):
            self.eof = True
            raise item
        self.eof = not item
        return item

    def close(self) -> None:
        """Stop the thread (it may be blocked on a full queue) and wait for it."""
        self.stopping = True
        while self.thread.is_alive():
            try:
                self.chunks.get(timeout=0.01)
            except queue.Empty:
                pass
        self.thread.join()


class _TarReader:
    """A strict streaming tar reader: ustar headers, pax ``x`` and ``g`` headers,
    GNU long names and links (``L``, ``K``).

    After ``next()`` returns an entry, its data may be written out with
    ``copy_to``; whatever is left unread is skipped by the next call.
    """
    def __init__(self, source: _Prefetcher, label: str) -> None:
        self.source = source
        self.label = label  # "layer sha256:..." or "archive NAME"
        self.buf = b""
        self.pos = 0
        self.remaining = 0  # unread data of the current entry
        self.padding = 0  # then up to the next block
        self.started = False
        self.globals: dict[str, bytes] = {}

    def fail(self, why: str) -> LayerError:
        return LayerError(f"reading {self.label}: {why}")

    def refill(self) -> None:
        self.buf, self.pos = self.source.read(), 0
        if not self.buf:
            raise self.fail("unexpected end of data")

    def take(self, size: int) -> bytes:
        """The next ``size`` bytes; b"" at the end of the stream if none are left."""
        while len(self.buf) - self.pos < size:
            data = self.source.read()
            if not data:
                if self.pos == len(self.buf):
                    return b""
                raise self.fail("unexpected end of data")
            self.buf = self.buf[self.pos:] + data if self.pos < len(self.buf) else data
            self.pos = 0
        self.pos += size
        return self.buf[self.pos - size:self.pos]

    def skip(self, size: int) -> None:
        while size:
            if self.pos == len(self.buf):
                self.refill()
            step = min(size, len(self.buf) - self.pos)
            self.pos += step
            size -= step

    def copy_to(self, fd: int) -> None:
        """Write the current entry's data to ``fd``."""
        while self.remaining:
            if self.pos == len(self.buf):
                self.refill()
            end = min(len(self.buf), self.pos + self.remaining)
            _write_all(fd, memoryview(self.buf)[self.pos:end])
            self.remaining -= end - self.pos
            self.pos = end

    def drain(self) -> None:
        """Read (so hash) what follows the end of the archive."""
        while self.source.read():
            pass

    def next(self) -> _Entry | None:
        """The next entry, or None at the end of the archive."""
        self.skip(self.remaining + self.padding)
        self.remaining = self.padding = 0
        local: dict[str, bytes] = {}
        longname = longlink = None
        extended = False
        while (fields := self.header()) is not None:
            kind = fields[7]
            if kind not in _EXTENSION_TYPES:
                return self.entry(fields, {**self.globals, **local}, longname, longlink)
            extended = True
            data = self.extension(fields[4])
            try:
                if kind == b"x":
                    local = _pax_records(data)
                elif kind == b"g":
                    self.globals.update(_pax_records(data))
                    if sum(len(k) + len(v) for k, v in self.globals.items()) > _MAX_EXTENSION:
                        raise ValueError("global pax headers too large")
                elif kind == b"L":
                    longname = _string(data)
                else:
                    longlink = _string(data)
            except ValueError as exc:
                raise self.fail(f"bad extension header: {exc}") from None
        if extended:
            raise self.fail("archive ends after an extension header")
        return None

    def header(self) -> tuple[bytes, ...] | None:
        """The next header's fields, checksum verified; None at the end of the archive."""
        block = self.take(_BLOCK_SIZE)
        if not block and not self.started:
            raise self.fail("empty archive")
        self.started = True
        if not block or block == _ZERO_BLOCK:
            return None
        if not _checksum_ok(block):
            raise self.fail("bad header checksum")
        return _HEADER.unpack(block)

    def extension(self, size_field: bytes) -> bytes:
        """The data of a pax header or GNU long name, bounded in size."""
        try:
            size = _number(size_field)
        except ValueError as exc:
            raise self.fail(f"bad extension header: {exc}") from None
        if not 0 <= size <= _MAX_EXTENSION:
            raise self.fail(f"extension header of {size} bytes")
        data = self.take(size)
        if len(data) < size:
            raise self.fail("unexpected end of data")
        self.skip(-size % _BLOCK_SIZE)
        return data

    def entry(self, fields: tuple[bytes, ...], pax: dict[str, bytes],
              longname: str | None, longlink: str | None) -> _Entry:
        (name, mode, uid, gid, size, mtime, _, kind, linkname, magic, _, _, _,
         devmajor, devminor, prefix) = fields
        if magic == _USTAR_MAGIC and prefix[:1] not in (b"", b"\0"):
            name = prefix.split(b"\0", 1)[0] + b"/" + name
        try:
            entry = _Entry(
                name=longname if longname is not None else _string(name), type=kind,
                mode=_number(mode), uid=_number(uid), gid=_number(gid), size=_number(size),
                mtime=_number(mtime) * 1_000_000_000,
                linkname=longlink if longlink is not None else _string(linkname),
                devmajor=_number(devmajor), devminor=_number(devminor))
            if pax:
                self.apply_pax(entry, pax)
        except ValueError as exc:
            raise self.fail(f"bad entry header: {exc}") from None
        if entry.type == b"\0":  # pre-POSIX regular file, or directory by its name
            entry.type = _DIR if entry.name.endswith("/") else _REG
        if entry.size < 0:
            raise self.fail(f"entry {entry.name!r}: negative size")
        if entry.type not in _HEADER_ONLY_TYPES:
            self.remaining, self.padding = entry.size, -entry.size % _BLOCK_SIZE
        return entry

    def apply_pax(self, entry: _Entry, pax: dict[str, bytes]) -> None:
        """Apply pax records; an empty value cancels the record (POSIX), but an
        xattr may be empty."""
        for key, value in pax.items():
            if key.startswith(_XATTR_PAX):
                entry.xattrs[key[len(_XATTR_PAX):]] = value
            elif not value:
                continue
            elif key == "path":
                entry.name = value.decode("utf-8", "surrogateescape")
            elif key == "linkpath":
                entry.linkname = value.decode("utf-8", "surrogateescape")
            elif key in ("size", "uid", "gid"):
                setattr(entry, key, _pax_int(value))
            elif key == "mtime":
                entry.mtime = _pax_time(value)
            elif key.startswith("GNU.sparse."):
                raise self.fail(f"entry {entry.name!r}: sparse files are not supported")


def opaque_xattr() -> str:
    """The xattr that makes a directory opaque to the overlays this process can mount."""
    return OPAQUE_XATTRS[1] if userns.inside() else OPAQUE_XATTR


def _compression(media_type: str) -> str:
    """gzip, zstd or none, from a layer's media type."""
    if media_type.endswith(("+zstd", ".zstd")):
        return "zstd"
    if media_type.endswith(("+gzip", ".gzip", ".tar.gz")):
        return "gzip"
    return "none"


class _StreamBroken(Exception):
    """A read of the decompressed stream failed on bad or cut compressed data."""


class _Decompressed:
    """The decompressed content of a stream; failures of the decompressor (not of the
    stream below, whose errors pass unchanged) become ``_StreamBroken``."""

    def __init__(self, stream: BinaryIO, compression: str) -> None:
        errors: tuple[type[BaseException], ...] = (EOFError, zlib.error, gzip.BadGzipFile)
        reader: object
        if compression == "gzip":
            from isal import isal_zlib

            errors += (cast("type[BaseException]", isal_zlib.error),)  # the stub has an instance
            from builder.image.compress import open_decompressed  # loads ISA-L

            reader = open_decompressed(stream, "gzip")
        elif compression == "zstd":
            import zstandard

            from builder.image.compress import open_decompressed

            errors += (zstandard.ZstdError,)
            reader = open_decompressed(stream, "zstd")
        elif compression == "bzip2":
            import bz2

            errors += (OSError,)  # "Invalid data stream"
            reader = bz2.BZ2File(stream)
        elif compression == "xz":
            import lzma

            errors += (lzma.LZMAError,)
            reader = lzma.LZMAFile(stream)
        else:
            reader = stream
        self.reader = cast(BinaryIO, reader)
        self.errors = errors if compression != "none" else ()
        self.compression = compression

    def read(self, size: int = -1) -> bytes:
        try:
            return self.reader.read(size)
        except self.errors as exc:
            text = str(exc) or "compressed data ends early"
            raise _StreamBroken(text[:1].lower() + text[1:]) from exc


def _read_tar(stream: BinaryIO, compression: str, label: str,
              extractor: _Extractor | None) -> str:
    """Read a (compressed) tar stream to its end with the strict reader, decompressing and
    hashing on a reader thread, and hand each entry to ``extractor`` (None: headers are
    checked and data skipped); the sha256 digest of the uncompressed stream. Errors are
    ``LayerError`` naming ``label``; errors of ``stream`` itself pass unchanged."""
    source = _Prefetcher(cast(BinaryIO, _Decompressed(stream, compression)))
    reader = _TarReader(source, label)
    try:
        try:
            while (entry := reader.next()) is not None:
                if extractor is not None:
                    extractor.add(reader, entry)
            reader.drain()
        finally:
            source.close()
        if extractor is not None:
            extractor.finish()
    except _StreamBroken as exc:
        raise CompressedStreamError(
            f"reading {label}: truncated or corrupt {compression} stream: {exc}") from exc
    except OSError as exc:
        raise LayerError(f"extracting {label}: {exc}") from exc
    except (OverflowError, ValueError) as exc:  # out-of-range numbers in headers
        raise LayerError(f"extracting {label}: bad entry header: {exc}") from exc
    return "sha256:" + source.hash.hexdigest()


def extract_layer(
    stream: BinaryIO,
    media_type: str,
    dest: Path,
    *,
    layer_digest: str,
    diff_id: str | None = None,
    whiteouts: str = "overlay",
) -> None:
    """Extract a layer blob into ``dest`` (which must exist), verifying ``diff_id``."""
    if whiteouts not in ("overlay", "apply"):
        raise ValueError(f"whiteouts must be 'overlay' or 'apply', not {whiteouts!r}")
    label = f"layer {layer_digest}"
    extractor = _Extractor(Path(dest), label, whiteouts)
    actual = _read_tar(stream, _compression(media_type), label, extractor)
    if diff_id is not None and actual != diff_id:
        raise DigestMismatch(
            f"extracting layer {layer_digest}: diff_id is {actual}, expected {diff_id}"
        )
    _warn_skipped(label, extractor.skipped)


def _warn_skipped(label: str, skipped: list[str]) -> None:
    """One warning for the device nodes an extraction left out (in a user namespace)."""
    if not skipped:
        return
    names = ", ".join("/" + n for n in skipped[:4])
    more = len(skipped) - 4
    sys.stderr.write(
        f"WARN[0000] extracting {label}: skipped {len(skipped)} "
        f"device node{'s' if len(skipped) > 1 else ''} ({names}"
        f"{f' and {more} more' if more > 0 else ''}): device nodes cannot be created in "
        "a user namespace\n")
    sys.stderr.flush()


def scan_layer(stream: BinaryIO, media_type: str, *, layer_digest: str) -> str:
    """Read a layer blob as ``extract_layer`` does, writing nothing: decompressed and
    hashed on a reader thread, every header checked by the strict reader, entry data
    skipped (so an entry cut short is found). Returns the diff_id (sha256 of the
    uncompressed stream). A cut or corrupt compressed stream is a
    ``CompressedStreamError``, a bad tar a ``LayerError``, both naming the layer;
    errors raised by ``stream`` itself pass unchanged."""
    return _read_tar(stream, _compression(media_type), f"layer {layer_digest}", None)


class ReadStream:
    """A readable binary stream built on one ``read`` method, as decompressors and the tar
    reader want it (``readinto`` and ``readable`` follow from ``read``)."""

    def read(self, size: int = -1) -> bytes:
        raise NotImplementedError

    def readinto(self, buffer: memoryview | bytearray) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True


class _Prefixed(ReadStream):
    """``head`` (bytes already read from ``stream``), then the rest of ``stream``."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self.head = head
        self.stream = stream

    def read(self, size: int = -1) -> bytes:
        if not self.head:
            return self.stream.read(size)
        if size < 0:
            data, self.head = self.head + self.stream.read(), b""
            return data
        data, self.head = self.head[:size], self.head[size:]
        return data


def _magic(head: bytes) -> str:
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), "none")


def archive_format(stream: BinaryIO) -> str | None:
    """The compression of the tar archive ``stream`` holds ("gzip", "bzip2", "xz", "zstd"
    or "none"), read from where it is: whether ADD unpacks a local file. A file is an
    archive when it decompresses (by its magic bytes) to a first tar header with a valid
    checksum, as Docker's ``IsArchive`` decides; None otherwise. Reads a few KiB."""
    head = stream.read(8)
    compression = _magic(head)
    reader = _Decompressed(cast(BinaryIO, _Prefixed(head, stream)), compression)
    block = b""
    try:
        while len(block) < _BLOCK_SIZE and (data := reader.read(_BLOCK_SIZE - len(block))):
            block += data
    except (_StreamBroken, OSError, ValueError):
        return None
    if len(block) < _BLOCK_SIZE or block == _ZERO_BLOCK or not _checksum_ok(block):
        return None
    return compression


def extract_archive(stream: BinaryIO, root: Path, dest: str = "/", *, name: str,
                    compression: str | None = None) -> None:
    """Unpack the tar archive ``stream`` into the directory ``dest`` of the root file system
    ``root`` (``dest`` as the container sees it, resolved inside ``root``; made, with
    missing parents, when absent), as ADD unpacks a local archive and as a tarball build
    context is unpacked (``dest`` "/" of an empty directory). ``compression`` is one of
    ``ARCHIVE_COMPRESSIONS``; None detects it from the first bytes. ``name`` names the
    archive in errors.

    The layer extractor's reader and guarantees apply, with the rules of unpacking onto
    a directory that may already have content, as Buildah 1.28 does it (chrooted in the
    destination): ``dest`` is the archive's root. Names are cleaned as if rooted there
    (``..`` stops at it, a leading ``/`` is dropped); an entry's parents are resolved
    inside it, so a parent that is a symlink (a merged-/usr ``bin -> usr/bin`` when
    ``dest`` is "/") is followed, but never out of ``dest``, and one that dangles is an
    error; the entry itself is never followed: what is there is replaced, except a
    directory by a directory, whose metadata is updated; a later entry replaces an
    earlier one of the same name; ``.wh.`` names are ordinary files; the ``.`` entry
    leaves ``dest``'s metadata alone; hard link targets are resolved the same way and
    must exist; directory metadata is applied last and never through a link; device
    nodes need root as for layers; owners are kept as root and dropped otherwise.

    Errors are ``LayerError`` ("extracting archive NAME: entry ...", a cut or corrupt
    compressed stream a ``CompressedStreamError``); what was unpacked before an error
    stays. ``stream`` is read once, from where it is, and not closed.
    """
    if compression is None:
        head = stream.read(8)
        compression = _magic(head)
        stream = cast(BinaryIO, _Prefixed(head, stream))
    elif compression not in ARCHIVE_COMPRESSIONS:
        raise ValueError(f"compression must be one of {ARCHIVE_COMPRESSIONS}, not {compression!r}")
    label = f"archive {name}"
    root = Path(os.path.abspath(root))
    try:
        target = resolve_in_root(root, dest)
        rel = target.relative_to(root).as_posix()
        if rel != ".":
            _Extractor(root, label, "apply").ensure_parent(dest, f"{rel}/.")
    except OSError as exc:
        raise LayerError(f"extracting {label}: destination {dest!r}: {exc.strerror}") from exc
    extractor = _ArchiveExtractor(target, label)
    _read_tar(stream, compression, label, extractor)
    _warn_skipped(label, extractor.skipped)


def _clean_name(name: str) -> str | None:
    """The entry name relative to the root, or None when it is unsafe."""
    if name.startswith("/") or len(name) > _MAX_NAME or "\0" in name:
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    return "/".join(parts)


def _make_whiteout(path: str) -> None:
    """An overlay whiteout: a 0:0 character device, which unprivileged processes may
    create too (Linux 5.8)."""
    os.mknod(path, stat.S_IFCHR, os.makedev(0, 0))


class _Extractor:
    """Applies entries one at a time; directory metadata is set at the end.

    ``verified`` holds the directories (relative paths) this extraction has
    itself seen by ``lstat`` or created, with all their parents: they are not
    checked again. Whatever removes a directory drops it and everything below
    from the set.
    """
    def __init__(self, dest: Path, label: str, whiteouts: str) -> None:
        self.root = str(dest)
        self.label = label  # "layer sha256:..." or "archive NAME"
        self.whiteouts = whiteouts
        self.is_root = os.geteuid() == 0
        self.in_userns = userns.inside()
        self.opaque = opaque_xattr()
        self.skipped: list[str] = []  # device nodes left out (in a user namespace)
        self.seen: set[str] = set()
        self.verified: set[str] = {""}
        self.dirs: list[tuple[str, _Entry]] = []

    def fail(self, name: str, why: str) -> LayerError:
        return LayerError(f"extracting {self.label}: entry {name!r}: {why}")

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def ensure_parent(self, original: str, rel: str) -> None:
        """Create missing parents; refuse a parent that is not a real directory."""
        parent = rel.rpartition("/")[0]
        if parent in self.verified:
            return
        current = ""
        for part in parent.split("/"):
            current = f"{current}/{part}" if current else part
            if current in self.verified:
                continue
            path = self.path(current)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                os.mkdir(path, 0o755)
            else:
                if stat.S_ISLNK(st.st_mode):
                    raise self.fail(original, "parent directory is a symlink")
                if not stat.S_ISDIR(st.st_mode):
                    raise self.fail(original, "parent is not a directory")
            self.verified.add(current)

    def clear(self, rel: str) -> None:
        """Remove what is at ``rel``, if anything."""
        path = self.path(rel)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(path)
            return
        shutil.rmtree(path)
        below = rel + "/"
        self.verified = {p for p in self.verified if p != rel and not p.startswith(below)}

    def create(self, rel: str, make: Callable[[str], _T]) -> _T:
        """``make(path)``, which must refuse an existing path, after removing what a
        lower layer left at ``rel`` if there is something."""
        path = self.path(rel)
        try:
            return make(path)
        except FileExistsError:
            self.clear(rel)
            return make(path)

    def make_dir(self, rel: str) -> None:
        """A directory at ``rel``; one a lower layer left there is kept."""
        path = self.path(rel)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                self.clear(rel)
                os.mkdir(path, 0o700)
        self.verified.add(rel)

    def add(self, reader: _TarReader, entry: _Entry) -> None:
        rel = _clean_name(entry.name)
        if rel is None:
            raise self.fail(entry.name, "path escapes the layer root")
        if not rel:
            if entry.is_dir():
                self.dirs.append((rel, entry))
                return
            raise self.fail(entry.name, "the layer root must be a directory")
        base = rel.rpartition("/")[2]
        if base.startswith(WHITEOUT_PREFIX):
            self.whiteout(entry.name, rel, base)
            return
        if rel in self.seen and not (entry.is_dir() and self.seen_dir(rel)):
            raise self.fail(entry.name, "duplicate entry")
        self.seen.add(rel)
        self.ensure_parent(entry.name, rel)
        self.place(reader, entry, rel)

    def place(self, reader: _TarReader, entry: _Entry, rel: str) -> None:
        """Create the entry at ``rel``, whose parents exist and are directories."""
        kind = entry.type
        if kind == _DIR:
            self.make_dir(rel)
            self.dirs.append((rel, entry))
        elif kind in _REGULAR_TYPES:
            self.write_file(reader, entry, rel)
        elif kind == _LNK:
            self.hardlink(entry, rel)
        elif kind == _SYM:
            self.create(rel, lambda path: os.symlink(entry.linkname, path))
            self.metadata(self.path(rel), entry)
        elif kind in (_CHR, _BLK, _FIFO):
            self.device(entry, rel)
        else:
            raise self.fail(entry.name, f"unsupported entry type {kind!r}")

    def seen_dir(self, rel: str) -> bool:
        return os.path.isdir(self.path(rel)) and not os.path.islink(self.path(rel))

    def write_file(self, reader: _TarReader, entry: _Entry, rel: str) -> None:
        fd = self.create(rel, _new_file)
        try:
            reader.copy_to(fd)
            self.metadata(fd, entry)
        finally:
            os.close(fd)

    def device(self, entry: _Entry, rel: str) -> None:
        if entry.type != _FIFO and self.in_userns:
            self.skip(rel)
            return
        if entry.type != _FIFO and not self.is_root:
            raise self.fail(entry.name, "device nodes can only be created as root")
        kind = {_CHR: stat.S_IFCHR, _BLK: stat.S_IFBLK, _FIFO: stat.S_IFIFO}[entry.type]
        device = os.makedev(entry.devmajor, entry.devminor)
        self.create(rel, lambda path: os.mknod(path, kind | 0o600, device))
        self.metadata(self.path(rel), entry)

    def skip(self, rel: str) -> None:
        """Leave out a device node, as if removed: nothing below shows through."""
        self.skipped.append(rel)
        if self.whiteouts == "overlay":
            self.create(rel, _make_whiteout)
        else:
            self.clear(rel)

    def link_target(self, entry: _Entry) -> str:
        """Where a hard link entry points, relative to the root."""
        target_rel = _clean_name(entry.linkname.lstrip("/"))
        if not target_rel:
            raise self.fail(entry.name, f"hardlink target {entry.linkname!r} escapes the layer")
        return target_rel

    def hardlink(self, entry: _Entry, rel: str) -> None:
        target_rel = self.link_target(entry)
        if self.skipped and target_rel in self.skipped:
            self.skip(rel)  # a link to a device node left out
            return
        self.ensure_parent(entry.name, target_rel)
        target = self.path(target_rel)
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            raise self.fail(
                entry.name, f"hardlink target {entry.linkname!r} does not exist"
            ) from None
        if stat.S_ISDIR(st.st_mode):
            raise self.fail(entry.name, "hardlink to a directory")
        self.create(rel, lambda path: os.link(target, path, follow_symlinks=False))

    def whiteout(self, original: str, rel: str, base: str) -> None:
        parent = rel.rpartition("/")[0]
        self.ensure_parent(original, rel)
        parent_path = self.path(parent)
        if base == OPAQUE_MARKER:
            if self.whiteouts == "overlay":
                os.setxattr(parent_path, self.opaque, b"y", follow_symlinks=False)
            else:
                self.clear_lower(parent)
            return
        name = base[len(WHITEOUT_PREFIX):]
        if name in ("", ".", "..") or name.startswith(WHITEOUT_PREFIX):
            raise self.fail(original, "whiteout names an invalid path")
        target_rel = f"{parent}/{name}" if parent else name
        if target_rel in self.seen:
            return  # whiteouts only hide lower layers
        if self.whiteouts == "overlay":
            self.create(target_rel, _make_whiteout)
        else:
            self.clear(target_rel)

    def clear_lower(self, parent: str) -> None:
        """Remove everything below ``parent`` this layer did not put there: its entries
        and the directories they are in stay, whatever came from lower layers goes."""
        own: set[str] = set()
        for rel in self.seen:
            while rel and rel not in own:
                own.add(rel)
                rel = rel.rpartition("/")[0]
        pending = [parent]
        while pending:
            directory = pending.pop()
            for child in os.listdir(self.path(directory)):
                child_rel = f"{directory}/{child}" if directory else child
                if child_rel not in own:
                    self.clear(child_rel)
                elif stat.S_ISDIR(os.lstat(self.path(child_rel)).st_mode):
                    pending.append(child_rel)

    def metadata(self, target: str | int, entry: _Entry) -> None:
        """Owner, xattrs, mode and mtime of ``target``: an open fd, or a path never followed."""
        follow = isinstance(target, int)  # an fd has nothing to follow
        if self.is_root:
            try:
                os.chown(target, entry.uid, entry.gid, follow_symlinks=follow)
            except OSError as exc:
                if exc.errno != errno.EINVAL or not self.in_userns:
                    raise
                raise userns.owner_error(f"extracting {self.label}",
                                         "/" + (_clean_name(entry.name) or ""),
                                         entry.uid, entry.gid) from None
        for key, value in entry.xattrs.items():
            self.setxattr(target, key, value, follow)
        if entry.type != _SYM:
            os.chmod(target, stat.S_IMODE(entry.mode))
        os.utime(target, ns=(entry.mtime, entry.mtime), follow_symlinks=follow)

    def setxattr(self, target: str | int, key: str, value: bytes, follow: bool) -> None:
        if key.startswith(_OVERLAY_XATTRS):
            return  # only whiteouts may produce overlay metadata
        try:
            os.setxattr(target, key, value, follow_symlinks=follow)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EACCES):
                raise

    def finish(self) -> None:
        """Set directory metadata, deepest first, once children exist.

        A later entry may have replaced a directory or one of its parents (with a
        symlink, say): such a directory is no longer ``verified`` and is skipped,
        so nothing is ever changed through a link.
        """
        for rel, entry in sorted(self.dirs, key=lambda item: item[0].count("/"), reverse=True):
            if rel in self.verified:
                self.metadata(self.path(rel), entry)


class _ArchiveExtractor(_Extractor):
    """``extract_archive``'s rules on top of the layer extractor's (see there): the
    destination is the archive's root, names are cleaned as if rooted there, parents
    resolved through symlinks inside it, the entry itself never; no whiteouts; no
    duplicate check."""

    def __init__(self, dest: Path, label: str) -> None:
        super().__init__(dest, label, "apply")
        self.parents: dict[str, str] = {}  # parent in the archive -> resolved, relative

    def clean(self, name: str) -> str:
        """A name below the root: ``..`` stops at it and a leading ``/`` is dropped."""
        if "\0" in name or len(name) > _MAX_NAME:
            raise self.fail(name, "bad name")
        return posixpath.normpath("/" + name).lstrip("/")

    def resolve(self, original: str, rel: str) -> str:
        """Where the archive's ``rel`` goes, relative to the root: its parents resolved
        inside the root, its last part kept. A parent that is a symlink to nothing is
        refused, as Buildah does."""
        parent, _, base = rel.rpartition("/")
        real = self.parents.get(parent)
        if real is None:
            try:
                resolved = resolve_in_root(Path(self.root), parent, dangling=False)
            except FileNotFoundError:
                raise self.fail(original, "parent directory is a symlink to nothing") from None
            real = os.path.relpath(resolved, self.root)
            real = "" if real == "." else real
            self.parents[parent] = real
        return f"{real}/{base}" if real else base

    def add(self, reader: _TarReader, entry: _Entry) -> None:
        rel = self.clean(entry.name)
        if not rel:
            if entry.is_dir():
                return  # the destination keeps its own metadata
            raise self.fail(entry.name, "the archive root must be a directory")
        real = self.resolve(entry.name, rel)
        self.ensure_parent(entry.name, real)
        self.place(reader, entry, real)
        if entry.type == _SYM:
            self.parents.clear()  # names below it now resolve through it

    def clear(self, rel: str) -> None:
        self.parents.clear()  # names resolved through what goes may resolve elsewhere now
        super().clear(rel)

    def link_target(self, entry: _Entry) -> str:
        target = self.clean(entry.linkname)
        if not target:
            raise self.fail(entry.name, f"hardlink target {entry.linkname!r} is the archive root")
        return self.resolve(entry.name, target)
