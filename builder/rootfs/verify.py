"""Verifying images as they come into the store, whatever the transport.

Every import (``oci:``, ``oci-archive:``, ``docker-archive:``, registry pulls,
``--cache-from`` layers) goes through an ``ImageImport``:

* the manifest, config and any index are checked against their descriptors
  (size and sha256 digest) before they are parsed further;
* each layer is read once, as one stream: the compressed bytes are counted,
  hashed and written to the store's temporary directory while a reader thread
  decompresses and hashes them and the extractor's strict tar reader walks the
  tar (``builder.rootfs.extract.scan_layer``), so a size or digest that differs
  from the descriptor, a diff_id that differs from the config, a truncated
  gzip/zstd stream and a tar entry that ends early are all found before the
  blob is stored;
* only when every blob passed are the blobs moved into the store and the image
  named (``commit``); a refusal (``VerificationError`` naming the image, the
  blob and what differs) leaves the store as it was.

A verified layer is recorded in ``<store>/verified/sha256/<blob hex>`` (its
diff_id), so no layer is checked twice: a later import finds it there, and
layer extraction, which computes the diff_id anyway, records what it checked
(``record_verified``). The record is a fact about content (the blob with this
digest decompresses to a well-formed tar with this diff_id), so it never goes
stale.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

from builder.errors import CompressedStreamError, ImageError, LayerError, VerificationError
from builder.image.digest import BackgroundSha256, digest_hex, is_digest
from builder.image.encrypted import refuse_encrypted_layer
from builder.image.layout import TEMP_PREFIX, fsync_dir
from builder.image.spec import MANIFEST_TYPES, Descriptor, ImageConfig, Manifest
from builder.rootfs.extract import ReadStream, scan_layer

__all__ = ["BlobSource", "ImageImport", "check_blob", "record_verified", "verified_diff_id"]

RECORDS = Path("verified") / "sha256"
_CHUNK = 1 << 20


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class BlobSource(Readable, Protocol):
    """A blob's bytes as a stream to read once: a file, or a registry's response."""

    def __enter__(self) -> Readable: ...
    def __exit__(self, kind: Any, value: Any, traceback: Any, /) -> Any: ...


class StoreLike(Protocol):
    """What an import needs of ``builder.store.Store``."""

    @property
    def root(self) -> Path: ...
    @property
    def layout(self) -> Any: ...
    def tmp_dir(self) -> Path: ...
    def pin(self) -> AbstractContextManager[None]: ...
    def put_manifest(self, manifest_bytes: bytes, names: Any) -> Any: ...


def verified_diff_id(store_root: Path, digest: str) -> str | None:
    """The diff_id recorded for the layer blob ``digest``, or None when it was never
    verified here."""
    try:
        text = (Path(store_root) / RECORDS / digest_hex(digest)).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None
    return text if is_digest(text) else None


def record_verified(store_root: Path, digest: str, diff_id: str) -> None:
    """Record that the layer blob ``digest`` decompresses to a well-formed tar whose
    sha256 is ``diff_id`` (a failure to write it is not an error: the layer is checked
    again next time)."""
    directory = Path(store_root) / RECORDS
    path = directory / digest_hex(digest)
    if verified_diff_id(store_root, digest) == diff_id:
        return
    tmp = directory / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp.write_text(diff_id, encoding="ascii")
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _refusal(image: str, what: str, digest: str, problem: str, detail: str
             ) -> VerificationError:
    return VerificationError(f'verifying image "{image}": {what} {digest}: {detail}',
                             image=image, digest=digest, problem=problem)


def _check_identity(image: str, what: str, desc: Descriptor, digest: str, size: int) -> None:
    """Refuse a blob whose digest or size is not its descriptor's. Other content than the
    descriptor's ("digest": perhaps damaged on the way) is told apart from the right
    content with a wrong size in the descriptor ("size")."""
    if digest != desc.digest:
        sizes = f" ({size} bytes, the manifest says {desc.size})" if size != desc.size else ""
        raise _refusal(image, what, desc.digest, "digest",
                       f"content digest is {digest}{sizes}")
    if size != desc.size:
        raise _refusal(image, what, desc.digest, "size",
                       f"size is {size} bytes, the manifest says {desc.size}")


def check_blob(image: str, what: str, desc: Descriptor, data: bytes) -> bytes:
    """``data`` when it is the blob ``desc`` describes (digest and size); a
    ``VerificationError`` naming ``image`` and the blob (``what``: "manifest", "config",
    "index") otherwise."""
    _check_identity(image, what, desc, "sha256:" + hashlib.sha256(data).hexdigest(), len(data))
    return data


class _Tee(ReadStream):
    """The compressed side of a layer's one pass: what the decompressor reads is counted,
    hashed (on a thread) and written to a staging file. More bytes than ``limit`` is a
    refusal at once, so a source cannot send without end."""

    def __init__(self, raw: Readable, fd: int, limit: int | None,
                 too_long: Callable[[int], VerificationError]) -> None:
        self.raw = raw
        self.fd = fd
        self.limit = limit
        self.too_long = too_long
        self.hash = BackgroundSha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(_CHUNK if size is None or size < 0 else size)
        if data:
            self.size += len(data)
            if self.limit is not None and self.size > self.limit:
                raise self.too_long(self.size)
            data = bytes(data)
            self.hash.update(data)
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view):]
        return data

    def drain(self) -> None:
        """Read the rest of the source (after the tar's end, or after a failure)."""
        while self.read(_CHUNK):
            pass

    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


class ImageImport:
    """One image coming into ``store``, named ``image`` in refusals (as the user wrote
    it). Use as a context manager (it holds a store pin, so garbage collection leaves
    the new blobs alone, and removes what it staged on the way out); thread-safe, so
    layers may be verified in parallel."""

    def __init__(self, store: StoreLike, image: str) -> None:
        self.store = store
        self.image = image
        self._lock = threading.Lock()
        self._staged: dict[str, Path] = {}  # digest -> verified file waiting in staging
        self._diff_ids: dict[str, str] = {}  # layer digest -> diff_id, checked here
        self._records: dict[str, str] = {}  # layer digest -> diff_id, to record at commit
        self._staging: Path | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> ImageImport:
        self._stack.enter_context(self.store.pin())
        self._staging = Path(tempfile.mkdtemp(dir=self.store.tmp_dir(), prefix="import-"))
        self._stack.callback(shutil.rmtree, self._staging, True)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    # small blobs

    def check(self, what: str, desc: Descriptor, data: bytes) -> bytes:
        """``check_blob`` for this image."""
        return check_blob(self.image, what, desc, data)

    def config(self, desc: Descriptor, data: bytes) -> ImageConfig:
        """The config ``desc`` describes, checked, parsed and staged."""
        config = ImageConfig.from_json(self.check("config", desc, data))
        self._stage_bytes(desc.digest, data)
        return config

    def _stage_bytes(self, digest: str, data: bytes) -> None:
        if self.store.layout.has_blob(digest):
            return
        assert self._staging is not None, "use ImageImport as a context manager"
        path = self._staging / digest_hex(digest)
        with open(path, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        with self._lock:
            self._staged[digest] = path

    # layers

    def layer(self, desc: Descriptor, diff_id: str, opener: Callable[[], BlobSource]) -> None:
        """Verify the layer ``desc`` (``diff_id`` from the config) and stage its blob;
        ``opener`` gives its bytes (called at most once, not at all when the store
        already holds the blob verified)."""
        digest = desc.digest
        digest_hex(digest)  # a malformed digest is refused before any path is made of it
        refuse_encrypted_layer(desc, self.image)  # ciphertext is no tar to verify
        with self._lock:
            known = self._diff_ids.get(digest)
        if known is None:
            known = self._stored(desc)
        if known is None:
            with opener() as raw:
                known, _, _ = self._pass(raw, desc, desc.media_type, desc.digest)
        if known != diff_id:
            raise _refusal(self.image, "layer", digest, "diff_id",
                           f"diff_id is {known}, the config says {diff_id}")

    def new_layer(self, raw: Readable, media_type: str, diff_id: str, *, name: str
                  ) -> Descriptor:
        """Verify and stage a layer known only by its diff_id (a docker archive's); its
        descriptor. ``name`` names it in refusals until its digest is known."""
        actual, digest, size = self._pass(raw, None, media_type, name)
        if actual != diff_id:
            raise _refusal(self.image, "layer", name, "diff_id",
                           f"diff_id is {actual}, the config says {diff_id}")
        return Descriptor(media_type, digest, size)

    def _stored(self, desc: Descriptor) -> str | None:
        """The diff_id of a layer blob the store holds (scanned now unless recorded),
        or None when the store does not have it."""
        layout = self.store.layout
        path = layout.blob_path(desc.digest)
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            return None
        if size != desc.size:
            raise _refusal(self.image, "layer", desc.digest, "size",
                           f"size is {size} bytes, the manifest says {desc.size}")
        known = verified_diff_id(self.store.root, desc.digest)
        if known is None:
            with open(path, "rb") as f:  # the store named it by its digest: only scan
                known = self._scan(f, desc.digest, desc.media_type)
            with self._lock:
                self._records[desc.digest] = known
        with self._lock:
            self._diff_ids[desc.digest] = known
        return known

    def _scan(self, stream: BinaryIO, digest: str, media_type: str) -> str:
        """The diff_id of a layer stream; its compression or tar problems as refusals."""
        try:
            return scan_layer(stream, media_type, layer_digest=digest)
        except LayerError as exc:
            raise self._stream_refusal(digest, exc) from exc

    def _stream_refusal(self, digest: str, exc: LayerError) -> VerificationError:
        detail = exc.message
        for prefix in (f"reading layer {digest}: ", f"extracting layer {digest}: "):
            detail = detail.removeprefix(prefix)
        if isinstance(exc, CompressedStreamError):
            return _refusal(self.image, "layer", digest, "truncated stream", detail)
        return _refusal(self.image, "layer", digest, "bad tar", f"bad tar: {detail}")

    def _pass(self, raw: Readable, desc: Descriptor | None, media_type: str, label: str
              ) -> tuple[str, str, int]:
        """The one pass over a layer's bytes (see the module docstring): (diff_id, digest,
        size), the size and digest checked against ``desc`` when there is one. ``label``
        names the layer in refusals."""
        assert self._staging is not None, "use ImageImport as a context manager"
        fd, tmp = tempfile.mkstemp(dir=self._staging, prefix=TEMP_PREFIX)
        tee = _Tee(raw, fd, desc.size if desc is not None else None,
                   lambda size: _refusal(self.image, "layer", label, "size",
                                         f"more than the {desc.size if desc else 0} bytes "
                                         "the manifest says"))
        failure: VerificationError | None = None
        try:
            try:
                diff_id = scan_layer(cast(BinaryIO, tee), media_type, layer_digest=label)
            except LayerError as exc:
                failure = self._stream_refusal(label, exc)
                diff_id = ""
            tee.drain()
            os.fsync(fd)
        except BaseException:
            tee.hash.close()
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        digest = tee.digest()
        try:
            if desc is not None:  # what the blob is comes before what it contains
                _check_identity(self.image, "layer", desc, digest, tee.size)
            if failure is not None:
                raise failure
        except BaseException:
            os.unlink(tmp)
            raise
        path = self._staging / digest_hex(digest)
        os.replace(tmp, path)
        with self._lock:
            self._staged[digest] = path
            self._diff_ids[digest] = diff_id
            self._records[digest] = diff_id
        return diff_id, digest, tee.size

    # the end

    def commit_blobs(self) -> None:
        """Move every staged blob into the store and record the verified layers."""
        layout = self.store.layout
        with self._lock:
            staged = dict(self._staged)
            records = dict(self._records)
        for digest, path in staged.items():
            layout.link_blob(path, digest)
        if staged:
            fsync_dir(layout.blobs)
        for digest, diff_id in records.items():
            record_verified(self.store.root, digest, diff_id)

    def commit(self, manifest_bytes: bytes, names: Any = ()) -> Any:
        """Store the verified blobs, then the manifest, and name it; the image record."""
        manifest = Manifest.from_json(manifest_bytes)
        if manifest.media_type not in MANIFEST_TYPES:  # before any blob is moved in
            raise ImageError(f"storing manifest: unsupported media type {manifest.media_type!r}")
        self.commit_blobs()
        return self.store.put_manifest(manifest_bytes, names)

