"""Content digests (``sha256:<hex>``) and readers that hash or verify what they read."""

from __future__ import annotations

import hashlib
import queue
import re
import threading
from typing import BinaryIO

from builder.errors import DigestMismatch, ImageError

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def sha256_digest(data: bytes | bytearray | memoryview) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_hex(digest: str) -> str:
    """The hex part of a sha256 digest; ImageError for anything else."""
    if not _DIGEST.match(digest):
        raise ImageError(f"parsing digest {digest!r}: not a sha256 digest")
    return digest[7:]


def is_digest(value: str) -> bool:
    return bool(_DIGEST.match(value))


class BackgroundSha256:
    """sha256 computed on its own thread (hashlib releases the GIL), so hashing a
    stream overlaps with producing it. Chunks handed to ``update`` must not change
    afterwards; ``close`` (or ``hexdigest``) ends the thread."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._queue: queue.Queue[bytes | bytearray | None] = queue.Queue(maxsize=64)
        self._thread = threading.Thread(target=self._run, name="sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            self._hash.update(data)

    def update(self, data: bytes | bytearray) -> None:
        self._queue.put(data)

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def hexdigest(self) -> str:
        self.close()
        return self._hash.hexdigest()


class HashingReader:
    """Wraps a binary stream; ``digest`` and ``size`` cover everything read so far."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self._hash.update(data)
        self.size += len(data)
        return data

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> HashingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VerifyingReader(HashingReader):
    """A HashingReader that raises DigestMismatch at EOF (or on close after reading
    everything) when the content does not match ``expected`` (and ``size`` if given)."""

    def __init__(self, stream: BinaryIO, expected: str, size: int | None = None) -> None:
        super().__init__(stream)
        self.expected = expected
        self.expected_size = size
        self._eof = False

    def read(self, n: int = -1) -> bytes:
        data = super().read(n)
        if self.expected_size is not None and self.size > self.expected_size:
            self._fail()
        if not data or n < 0:
            self._eof = True
            self.verify()
        return data

    def verify(self) -> None:
        if self.digest != self.expected or (
            self.expected_size is not None and self.size != self.expected_size
        ):
            self._fail()

    def _fail(self) -> None:
        raise DigestMismatch(
            f"verifying content: expected {self.expected} ({self.expected_size} bytes), "
            f"got {self.digest} ({self.size} bytes)"
        )

    def close(self) -> None:
        try:
            if not self._eof and self._stream.read(1):
                self._fail()
            if not self._eof:
                self.verify()
        finally:
            super().close()
