"""An OCI image layout directory: ``oci-layout``, ``index.json``, ``blobs/sha256/``.

Blobs are written to a temporary file while hashing, fsynced and renamed into
place, so a blob path never shows partial content; ``index.json`` is replaced
atomically the same way and written last.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from builder.errors import DigestMismatch, ImageError, StoreError
from builder.image.digest import BackgroundSha256, digest_hex
from builder.image.spec import MEDIA_OCI_LAYOUT_VERSION, Index

_COPY_BUFFER = 1 << 20
TEMP_PREFIX = ".tmp-"


def fsync_dir(path: Path) -> None:
    """Make renames in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, tmp_dir: Path | None = None) -> None:
    """Replace path with data: temp file in the same file system, fsync, rename."""
    fd, tmp = tempfile.mkstemp(dir=tmp_dir or path.parent, prefix=TEMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


class BlobWriter:
    """A writable blob in progress; hashes while writing. Use via Layout.blob_writer()."""

    def __init__(self, fd: int, tmp_path: str) -> None:
        self._file = os.fdopen(fd, "wb", buffering=_COPY_BUFFER)
        self._hash = BackgroundSha256()
        self.tmp_path = tmp_path
        self.size = 0
        self.digest = ""

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if not isinstance(data, bytes):
            data = bytes(data)  # the caller may reuse its buffer while the hash runs
        self._hash.update(data)
        n = self._file.write(data)
        self.size += len(data)
        return n

    def _finish(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self.digest = "sha256:" + self._hash.hexdigest()

    def _abort(self) -> None:
        self._hash.close()
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            os.unlink(self.tmp_path)


class Layout:
    """A content-addressed OCI image layout at ``root``."""

    def __init__(self, root: Path, create: bool = True, *, tmp_dir: Path | None = None) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs" / "sha256"
        self._tmp_dir = tmp_dir
        if create:
            self._create()
        elif not (self.root / "oci-layout").is_file():
            raise ImageError(f"opening image layout {self.root}: no oci-layout file")

    def _create(self) -> None:
        try:
            self.blobs.mkdir(parents=True, exist_ok=True)
            if self._tmp_dir is not None:
                self._tmp_dir.mkdir(parents=True, exist_ok=True)
            marker = self.root / "oci-layout"
            if not marker.exists():
                body = json.dumps({"imageLayoutVersion": MEDIA_OCI_LAYOUT_VERSION}).encode()
                write_atomic(marker, body)
            if not (self.root / "index.json").exists():
                self.write_index(Index())
        except OSError as exc:
            raise StoreError(f"creating image layout {self.root}: {exc.strerror or exc}") from exc

    @property
    def tmp_dir(self) -> Path:
        """Where blobs in progress are written (same file system as the blobs)."""
        return self._tmp_dir or self.blobs

    def blob_path(self, digest: str) -> Path:
        return self.blobs / digest_hex(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def open_blob(self, digest: str) -> BinaryIO:
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise ImageError(f"opening blob {digest}: not in {self.root}") from None

    def read_blob(self, digest: str) -> bytes:
        with self.open_blob(digest) as f:
            return f.read()

    def remove_blob(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.blob_path(digest).unlink()

    def blob_digests(self) -> list[str]:
        """Every stored blob (temp files excluded)."""
        try:
            names = os.listdir(self.blobs)
        except FileNotFoundError:
            return []
        return sorted("sha256:" + n for n in names if not n.startswith("."))

    @contextlib.contextmanager
    def blob_writer(self, expected: str | None = None) -> Iterator[BlobWriter]:
        """Yields a writer; on clean exit the content becomes a blob (``.digest``,
        ``.size`` are then set). On error, or DigestMismatch against ``expected``,
        nothing is stored."""
        try:
            fd, tmp = tempfile.mkstemp(dir=self.tmp_dir, prefix=TEMP_PREFIX)
        except OSError as exc:
            raise StoreError(f"writing blob in {self.root}: {exc.strerror or exc}") from exc
        writer = BlobWriter(fd, tmp)
        try:
            yield writer
            writer._finish()
            if expected is not None and writer.digest != expected:
                raise DigestMismatch(
                    f"writing blob: expected {expected}, got {writer.digest}"
                )
            final = self.blob_path(writer.digest)
            if final.exists():
                os.unlink(tmp)
            else:
                os.chmod(tmp, 0o644)
                os.replace(tmp, final)
        except BaseException:
            writer._abort()
            raise

    def put_blob(
        self, data: bytes | bytearray | BinaryIO, expected: str | None = None
    ) -> tuple[str, int]:
        """Store data (bytes or a readable stream); returns (digest, size)."""
        if isinstance(data, (bytes, bytearray)) and expected is None:
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            if self.has_blob(digest):
                return digest, len(data)
        with self.blob_writer(expected) as w:
            if isinstance(data, (bytes, bytearray)):
                w.write(data)
            else:
                while chunk := data.read(_COPY_BUFFER):
                    w.write(chunk)
        return w.digest, w.size

    def link_blob(self, source: Path, digest: str) -> None:
        """Store an existing, already-verified blob file by hard link, else by copy."""
        if self.has_blob(digest):
            return
        try:
            os.link(source, self.blob_path(digest))
        except FileExistsError:
            return
        except OSError:
            with open(source, "rb") as f:
                self.put_blob(f, expected=digest)

    def read_index(self) -> Index:
        try:
            data = (self.root / "index.json").read_bytes()
        except FileNotFoundError:
            return Index()
        return Index.from_json(data)

    def write_index(self, index: Index) -> None:
        write_atomic(self.root / "index.json", index.to_json(), tmp_dir=self.root)

    def copy_to(self, other: Layout, digests: list[str]) -> None:
        """Copy blobs to another layout (hard links where possible)."""
        for digest in digests:
            other.link_blob(self.blob_path(digest), digest)
