"""Layer compression: parallel gzip, multi-threaded zstd, or none.

Deflate is Intel's ISA-L (through ``isal``): at its level 3 it runs about five
times faster than zlib at level 6 on layer data, for output about 2% larger.
Parallel gzip works as pigz does: the input is cut into fixed 1 MiB chunks,
each deflated independently on a thread pool (ISA-L releases the GIL), primed
with the previous chunk's last 32 KiB as dictionary and ended with a sync
flush, and the pieces are concatenated into one gzip member with the CRC32 and
size of the whole input. Chunk boundaries depend only on the input, so the
output is the same bytes whatever the number of threads (for one ISA-L
version, as zlib's output is for one zlib version).
"""

from __future__ import annotations

import os
import struct
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Protocol, cast

from builder.errors import ImageError

CHUNK = 1 << 20
_WINDOW = 32 * 1024
GZIP_LEVEL = 3  # ISA-L's highest level
ZSTD_LEVEL = 3
COMPRESSIONS = ("gzip", "zstd", "none")
# fixed header: magic, deflate, no flags, mtime 0, no extra flags, OS unknown
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


class Sink(Protocol):
    def write(self, data: bytes | bytearray | memoryview, /) -> int: ...


class Compressor(Protocol):
    def write(self, data: bytes | bytearray | memoryview, /) -> int: ...

    def close(self) -> None: ...


def _deflate(chunk: bytes, zdict: bytes, last: bool, level: int) -> bytes:
    from isal import isal_zlib  # ISA-L is loaded when a layer is deflated, not before

    if zdict:
        c = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15, 9, 0, zdict)
    else:
        c = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15, 9)
    out = c.compress(chunk)
    return out + c.flush(isal_zlib.Z_FINISH if last else isal_zlib.Z_SYNC_FLUSH)


class ParallelGzip:
    """A write-only gzip stream that deflates 1 MiB chunks on a thread pool."""

    def __init__(self, sink: Sink, *, level: int = GZIP_LEVEL, threads: int | None = None) -> None:
        from isal import isal_zlib  # ISA-L is loaded when a layer is deflated, not before

        self._crc32 = isal_zlib.crc32
        self._sink = sink
        self._level = level
        self._threads = threads or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="pgzip")
        self._pending: deque[Future[bytes]] = deque()
        self._buf = bytearray()
        self._prev_tail = b""
        self._crc = 0
        self._size = 0
        sink.write(_GZIP_HEADER)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._buf += data
        if len(self._buf) >= CHUNK:
            view = memoryview(self._buf)
            end = len(self._buf) - len(self._buf) % CHUNK
            for start in range(0, end, CHUNK):
                self._submit(bytes(view[start:start + CHUNK]), last=False)
            view.release()
            del self._buf[:end]
        return len(data)

    def _submit(self, chunk: bytes, last: bool) -> None:
        self._crc = self._crc32(chunk, self._crc)
        self._size += len(chunk)
        self._pending.append(
            self._pool.submit(_deflate, chunk, self._prev_tail, last, self._level)
        )
        self._prev_tail = chunk[-_WINDOW:]
        while len(self._pending) > 2 * self._threads + 1 or (
            self._pending and self._pending[0].done()
        ):
            self._sink.write(self._pending.popleft().result())

    def close(self) -> None:
        try:
            self._submit(bytes(self._buf), last=True)
            self._buf.clear()
            while self._pending:
                self._sink.write(self._pending.popleft().result())
            self._sink.write(struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF))
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def abort(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class _Zstd:
    def __init__(self, sink: Sink, level: int = ZSTD_LEVEL) -> None:
        import zstandard

        # threads fixed at 2 (not the CPU count) so the bytes never depend on the machine
        cctx = zstandard.ZstdCompressor(level=level, threads=2)
        # the stub asks for IO[bytes]; the writer calls only write() (flush, close
        # and fileno only when the object has them)
        self._writer: Compressor = cctx.stream_writer(
            cast("IO[bytes]", sink), closefd=False, write_size=CHUNK
        )

    def write(self, data: bytes | bytearray | memoryview) -> int:
        return self._writer.write(data)

    def close(self) -> None:
        self._writer.close()  # ends the frame; the sink stays open


class _Plain:
    def __init__(self, sink: Sink) -> None:
        self._sink = sink

    def write(self, data: bytes | bytearray | memoryview) -> int:
        return self._sink.write(data)

    def close(self) -> None:
        pass


def open_compressor(compression: str, sink: Sink) -> Compressor:
    """A stream that compresses what is written to it into sink; close() finishes it."""
    if compression == "gzip":
        return ParallelGzip(sink)
    if compression == "zstd":
        return _Zstd(sink)
    if compression == "none":
        return _Plain(sink)
    raise ImageError(
        f"compressing layer: unknown compression {compression!r} "
        f"(expected one of {', '.join(COMPRESSIONS)})"
    )


def detect_compression(head: bytes) -> str:
    """gzip, zstd or none, from a blob's first bytes."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    return "none"


def open_decompressed(stream: object, compression: str) -> object:
    """A readable stream of the decompressed content of a binary stream. A stream cut
    short raises ``EOFError`` (gzip's own check; for zstd ``ZstdFrames``)."""
    if compression == "gzip":
        from isal import igzip

        return igzip.IGzipFile(fileobj=stream, mode="rb")
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(
            ZstdFrames(stream), read_across_frames=True)  # type: ignore[arg-type]
    return stream


_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_FCS_BYTES = (0, 2, 4, 8)
_DID_BYTES = (0, 1, 2, 4)


class ZstdFrames:
    """Passes a zstd stream through while following its frame structure (frame headers,
    block headers, checksums, skippable frames; block contents are skipped), so that a
    stream ending inside a frame raises ``EOFError``: zstandard's stream reader returns
    a clean end of data there. Anything but a frame where one must start is a
    ``zstandard.ZstdError``."""

    def __init__(self, raw: object) -> None:
        self.raw = raw
        self.head = b""  # bytes of a header being collected
        self.want = 4  # header bytes still needed before the next decision
        self.state = "magic"  # magic, frame, block, skip-size
        self.skip = 0  # bytes to pass through unread (block contents, checksums)
        self.last = False  # the block being skipped ends its frame
        self.checksum = False

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.raw.read(size)  # type: ignore[attr-defined]
        if not data:
            if self.state != "magic" or self.head or self.skip:
                raise EOFError("zstd stream ends inside a frame")
            return data
        self.follow(memoryview(data))
        return data

    def readinto(self, buffer: memoryview | bytearray) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def follow(self, view: memoryview) -> None:
        while view:
            if self.skip:
                step = min(self.skip, len(view))
                self.skip -= step
                view = view[step:]
                if not self.skip and self.last:
                    self.last = False
                    self.end_frame()
                continue
            take = min(self.want - len(self.head), len(view))
            self.head += bytes(view[:take])
            view = view[take:]
            if len(self.head) == self.want:
                self.decide()

    def end_frame(self) -> None:
        if self.checksum:
            self.checksum = False
            self.skip = 4
        self.state, self.want = "magic", 4

    def decide(self) -> None:
        import zstandard

        head, self.head = self.head, b""
        if self.state == "magic":
            if head == _ZSTD_MAGIC:
                self.state, self.want = "descriptor", 1
            elif head[1:] == b"\x2a\x4d\x18" and head[0] & 0xF0 == 0x50:
                self.state, self.want = "skip-size", 4
            else:
                raise zstandard.ZstdError("not a zstd frame")
        elif self.state == "skip-size":
            self.skip = int.from_bytes(head, "little")
            self.state, self.want = "magic", 4
        elif self.state == "descriptor":
            flags = head[0]
            single = bool(flags & 0x20)
            self.checksum = bool(flags & 0x04)
            fcs = _FCS_BYTES[flags >> 6] or (1 if single else 0)
            rest = (0 if single else 1) + _DID_BYTES[flags & 0x03] + fcs
            if rest:
                self.state, self.want = "frame", rest
            else:
                self.state, self.want = "block", 3
        elif self.state == "frame":
            self.state, self.want = "block", 3
        else:  # a block header
            value = int.from_bytes(head, "little")
            kind, size = (value >> 1) & 3, value >> 3
            if kind == 3:
                raise zstandard.ZstdError("reserved zstd block type")
            self.skip = 1 if kind == 1 else size
            self.last = bool(value & 1)
            self.want = 3
            if not self.skip and self.last:
                self.last = False
                self.end_frame()
