"""Safe extraction of one OCI layer tar into a directory.

The tar is read as a stream (bounded memory) and hashed while it is read, so
the diff_id is verified without a second pass. Nothing is ever written
outside ``dest``: names with ``..`` or a leading ``/``, entries below a
symlink, hardlinks leaving the layer and whiteouts aimed outside are refused
with a ``LayerError`` that names the layer and the entry.

Whiteouts are either kept in overlay form (``whiteouts="overlay"``: a
``.wh.NAME`` becomes a 0:0 character device, ``.wh..wh..opq`` the
``trusted.overlay.opaque=y`` xattr, so the directory can be an overlay
lowerdir) or applied (``whiteouts="apply"``: the named paths are deleted from
``dest``, which holds the layers below, for the vfs driver).

Duplicate entries: a directory may appear more than once (its metadata is
updated); any other name appearing twice is refused, as is a file replacing
an entry this layer created. Entries in ``dest`` from lower layers are
replaced. On error ``dest`` may be partly written; callers extract into a
temporary directory and discard it.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import shutil
import stat
import tarfile
import zlib
from pathlib import Path
from typing import BinaryIO

from builder.errors import DigestMismatch, LayerError

__all__ = ["extract_layer", "WHITEOUT_PREFIX", "OPAQUE_MARKER", "OPAQUE_XATTR"]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_XATTR_PAX = "SCHILY.xattr."
_CHUNK = 1 << 20
_MAX_NAME = 4096


class _HashingReader:
    """A read-only stream that hashes what passes through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.hash.update(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


def _decompressed(stream: BinaryIO, media_type: str) -> BinaryIO:
    if media_type.endswith(("+zstd", ".zstd")):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True)
    if media_type.endswith(("+gzip", ".gzip", ".tar.gz")):
        from isal import igzip

        return igzip.IGzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    return stream


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
    read_errors: tuple[type[BaseException], ...] = (
        tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile
    )
    if media_type.endswith(("+gzip", ".gzip", ".tar.gz")):
        from isal import isal_zlib

        read_errors += (isal_zlib.error,)
    if media_type.endswith(("+zstd", ".zstd")):
        import zstandard

        read_errors += (zstandard.ZstdError,)
    reader = _HashingReader(_decompressed(stream, media_type))
    extractor = _Extractor(Path(dest), layer_digest, whiteouts)
    try:
        with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
            for member in tar:
                extractor.add(tar, member)
        reader.drain()
        extractor.finish()
    except LayerError:
        raise
    except read_errors as exc:
        raise LayerError(f"reading layer {layer_digest}: {exc or 'truncated data'}") from exc
    except OSError as exc:
        raise LayerError(f"extracting layer {layer_digest}: {exc}") from exc
    except (OverflowError, ValueError) as exc:  # out-of-range numbers in headers
        raise LayerError(f"extracting layer {layer_digest}: bad entry header: {exc}") from exc
    actual = "sha256:" + reader.hash.hexdigest()
    if diff_id is not None and actual != diff_id:
        raise DigestMismatch(
            f"extracting layer {layer_digest}: diff_id is {actual}, expected {diff_id}"
        )


def _clean_name(name: str) -> str | None:
    """The entry name relative to the root, or None when it is unsafe."""
    if name.startswith("/") or len(name) > _MAX_NAME or "\0" in name:
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    return "/".join(parts)


class _Extractor:
    """Applies entries one at a time; directory metadata is set at the end."""

    def __init__(self, dest: Path, layer_digest: str, whiteouts: str) -> None:
        self.dest = dest
        self.layer = layer_digest
        self.whiteouts = whiteouts
        self.is_root = os.geteuid() == 0
        self.seen: set[str] = set()
        self.dirs: list[tuple[str, tarfile.TarInfo]] = []

    def fail(self, name: str, why: str) -> LayerError:
        return LayerError(f"extracting layer {self.layer}: entry {name!r}: {why}")

    def path(self, rel: str) -> str:
        return os.path.join(self.dest, rel) if rel else str(self.dest)

    def ensure_parent(self, original: str, rel: str) -> None:
        """Create missing parents; refuse a parent that is not a real directory."""
        current = str(self.dest)
        for part in rel.split("/")[:-1]:
            current = os.path.join(current, part)
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                os.mkdir(current, 0o755)
                continue
            if stat.S_ISLNK(st.st_mode):
                raise self.fail(original, "parent directory is a symlink")
            if not stat.S_ISDIR(st.st_mode):
                raise self.fail(original, "parent is not a directory")

    def clear(self, path: str, keep_dir: bool) -> None:
        """Remove what is at ``path`` unless it is a directory and ``keep_dir``."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if not keep_dir:
                shutil.rmtree(path)
        else:
            os.unlink(path)

    def add(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        rel = _clean_name(member.name)
        if rel is None:
            raise self.fail(member.name, "path escapes the layer root")
        if not rel:
            if member.isdir():
                self.dirs.append((rel, member))
                return
            raise self.fail(member.name, "the layer root must be a directory")
        base = rel.rsplit("/", 1)[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self.whiteout(member.name, rel, base)
            return
        if rel in self.seen and not (member.isdir() and self.seen_dir(rel)):
            raise self.fail(member.name, "duplicate entry")
        self.seen.add(rel)
        self.ensure_parent(member.name, rel)
        path = self.path(rel)
        self.clear(path, keep_dir=member.isdir())
        if member.isdir():
            if not os.path.isdir(path):
                os.mkdir(path, 0o700)
            self.dirs.append((rel, member))
            return
        if member.islnk():
            self.hardlink(member, path)
            return
        if member.issym():
            os.symlink(member.linkname, path)
        elif member.isreg():
            self.write_file(tar, member, path)
        elif member.ischr() or member.isblk() or member.isfifo():
            if not member.isfifo() and not self.is_root:
                raise self.fail(member.name, "device nodes can only be created as root")
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK if member.isblk() else stat.S_IFIFO
            os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))
        else:
            raise self.fail(member.name, f"unsupported entry type {member.type!r}")
        self.metadata(path, member)

    def seen_dir(self, rel: str) -> bool:
        return os.path.isdir(self.path(rel)) and not os.path.islink(self.path(rel))

    def write_file(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        source = tar.extractfile(member)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            if source is not None:
                shutil.copyfileobj(source, out, _CHUNK)

    def hardlink(self, member: tarfile.TarInfo, path: str) -> None:
        target_rel = _clean_name(member.linkname.lstrip("/"))
        if not target_rel:
            raise self.fail(member.name, f"hardlink target {member.linkname!r} escapes the layer")
        self.ensure_parent(member.name, target_rel)
        target = self.path(target_rel)
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            raise self.fail(
                member.name, f"hardlink target {member.linkname!r} does not exist"
            ) from None
        if stat.S_ISDIR(st.st_mode):
            raise self.fail(member.name, "hardlink to a directory")
        os.link(target, path, follow_symlinks=False)

    def whiteout(self, original: str, rel: str, base: str) -> None:
        parent = rel.rsplit("/", 1)[0] if "/" in rel else ""
        self.ensure_parent(original, rel)
        parent_path = self.path(parent)
        if base == OPAQUE_MARKER:
            if self.whiteouts == "overlay":
                if not os.path.isdir(parent_path):
                    os.mkdir(parent_path, 0o755)
                os.setxattr(parent_path, OPAQUE_XATTR, b"y", follow_symlinks=False)
            else:
                for child in os.listdir(parent_path) if os.path.isdir(parent_path) else ():
                    child_rel = f"{parent}/{child}" if parent else child
                    if child_rel not in self.seen:
                        self.clear(os.path.join(parent_path, child), keep_dir=False)
            return
        name = base[len(WHITEOUT_PREFIX):]
        if name in ("", ".", "..") or name.startswith(WHITEOUT_PREFIX):
            raise self.fail(original, "whiteout names an invalid path")
        target_rel = f"{parent}/{name}" if parent else name
        if target_rel in self.seen:
            return  # whiteouts only hide lower layers
        target = self.path(target_rel)
        if self.whiteouts == "overlay":
            self.clear(target, keep_dir=False)
            os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        else:
            self.clear(target, keep_dir=False)

    def metadata(self, path: str, member: tarfile.TarInfo) -> None:
        if self.is_root:
            os.chown(path, member.uid, member.gid, follow_symlinks=False)
        for key, value in member.pax_headers.items():
            if key.startswith(_XATTR_PAX):
                self.setxattr(path, key[len(_XATTR_PAX):], value)
        if not member.issym():
            os.chmod(path, stat.S_IMODE(member.mode))
        mtime = int(member.mtime * 1_000_000_000)
        os.utime(path, ns=(mtime, mtime), follow_symlinks=False)

    def setxattr(self, path: str, key: str, value: str) -> None:
        if key.startswith("trusted.overlay."):
            return  # only whiteouts may produce overlay metadata
        raw = value.encode("utf-8", "surrogateescape")
        try:
            os.setxattr(path, key, raw, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EACCES):
                raise

    def finish(self) -> None:
        """Set directory metadata, deepest first, once children exist.

        A later entry may have replaced a directory or one of its parents (with a
        symlink, say): such a directory is gone from the layer and is skipped, so
        nothing is ever changed through a link.
        """
        for rel, member in sorted(self.dirs, key=lambda item: item[0].count("/"), reverse=True):
            if self.real_directory(rel):
                self.metadata(self.path(rel), member)

    def real_directory(self, rel: str) -> bool:
        """Whether ``rel`` and all its parents are directories, not links, under the root."""
        current = str(self.dest)
        for part in rel.split("/") if rel else ():
            current = os.path.join(current, part)
            try:
                if not stat.S_ISDIR(os.lstat(current).st_mode):
                    return False
            except FileNotFoundError:
                return False
        return True
