"""The local image store: an OCI image layout plus private directories, no daemon.

The store root is itself an OCI image layout, so other tools can read it
(``oci:ROOT:localhost/app:1.0``). Each name of an image is one descriptor in
``index.json`` annotated with ``org.opencontainers.image.ref.name``; an image
without names keeps one unannotated descriptor. Private directories: ``tmp/``
(temporary files on the same file system), ``layers/`` (root filesystems),
``cache/`` (build cache). Reference updates and garbage collection run under
an exclusive ``fcntl`` lock on ``ROOT/lock``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from builder.errors import ImageError, ImageNotFound, StoreError, UsageError
from builder.image.digest import is_digest
from builder.image.layout import TEMP_PREFIX, Layout
from builder.image.spec import (
    ANNOTATION_REF_NAME,
    INDEX_TYPES,
    MANIFEST_TYPES,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
)

DEFAULT_REGISTRY = "localhost"
DOCKER_HUB = "docker.io"
_NAME = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_HEX = re.compile(r"^[0-9a-f]{3,64}$")


def normalize_name(name: str) -> str:
    """The one rule for image names: a registry and a tag (or digest) are always present.

    "app" -> "localhost/app:latest", "app:1.0" -> "localhost/app:1.0",
    "quay.io/x/y" -> "quay.io/x/y:latest", "docker.io/x" -> "docker.io/library/x:latest".
    """
    original = name
    name = name.strip()
    digest = ""
    if "@" in name:
        name, _, digest = name.partition("@")
        if not is_digest(digest):
            raise UsageError(f"parsing image name {original!r}: invalid digest {digest!r}")
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, rest
    else:
        domain, path = DEFAULT_REGISTRY, name
    tag = ""
    last_slash = path.rfind("/")
    colon = path.rfind(":")
    if colon > last_slash:
        path, tag = path[:colon], path[colon + 1:]
        if not _TAG.match(tag):
            raise UsageError(f"parsing image name {original!r}: invalid tag {tag!r}")
    if domain == "index.docker.io":
        domain = DOCKER_HUB
    if domain == DOCKER_HUB and "/" not in path:
        path = "library/" + path
    if not _NAME.match(path):
        raise UsageError(
            f"parsing image name {original!r}: repository names must be lowercase "
            "letters, digits and separators"
        )
    if digest:
        return f"{domain}/{path}@{digest}"
    return f"{domain}/{path}:{tag or 'latest'}"


def split_name(name: str) -> tuple[str, str]:
    """(repository, tag) of a normalized name; the tag of a digest reference is "<none>"."""
    if "@" in name:
        return name.partition("@")[0], "<none>"
    repo, _, tag = name.rpartition(":")
    return repo, tag


@dataclass(frozen=True)
class ImageRecord:
    id: str
    manifest_digest: str
    manifest: Manifest
    config: ImageConfig
    names: tuple[str, ...]
    created: str | None
    size: int


class Store:
    """The image store at ``root``; directories are created on first write."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock_depth = 0
        self._lock_fd: int | None = None
        self._thread_lock = threading.RLock()
        self._layout: Layout | None = None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"opening image store {self.root}: {exc.strerror or exc}",
                hint="pass a writable directory with --root or PYBUILD_ROOT",
            ) from exc
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StoreError(
                f"opening image store {self.root}: directory is not writable",
                hint="pass a writable directory with --root or PYBUILD_ROOT",
            )

    @property
    def layout(self) -> Layout:
        if self._layout is None:
            self._layout = Layout(self.root, tmp_dir=self.tmp_dir())
        return self._layout

    def tmp_dir(self) -> Path:
        path = self.root / "tmp"
        path.mkdir(exist_ok=True)
        return path

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive store lock (re-entrant within this Store object)."""
        with self._thread_lock:
            if self._lock_depth == 0:
                fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)
                    raise
                self._lock_fd = fd
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0 and self._lock_fd is not None:
                    os.close(self._lock_fd)  # closing releases the flock
                    self._lock_fd = None

    @contextlib.contextmanager
    def pin(self) -> Iterator[None]:
        """Hold while writing blobs no manifest references yet: gc() does nothing
        while any process holds a pin."""
        fd = os.open(self.root / "gc.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    # -- reading

    def _records(self, index: Index) -> list[ImageRecord]:
        by_digest: dict[str, list[str]] = {}
        order: list[Descriptor] = []
        for desc in index.manifests:
            if desc.digest not in by_digest:
                by_digest[desc.digest] = []
                order.append(desc)
            name = (desc.annotations or {}).get(ANNOTATION_REF_NAME)
            if name and name not in by_digest[desc.digest]:
                by_digest[desc.digest].append(name)
        records = []
        for desc in order:
            if desc.media_type in INDEX_TYPES:
                continue
            records.append(self._record(desc.digest, tuple(by_digest[desc.digest])))
        return records

    def _record(self, manifest_digest: str, names: tuple[str, ...]) -> ImageRecord:
        layout = self.layout
        try:
            manifest_bytes = layout.read_blob(manifest_digest)
            manifest = Manifest.from_json(manifest_bytes)
            config = ImageConfig.from_json(layout.read_blob(manifest.config.digest))
        except ImageError as exc:
            raise StoreError(f"reading image {manifest_digest}: {exc}") from exc
        size = len(manifest_bytes) + manifest.config.size + sum(x.size for x in manifest.layers)
        return ImageRecord(
            id=manifest.config.digest, manifest_digest=manifest_digest, manifest=manifest,
            config=config, names=names, created=config.created, size=size,
        )

    def images(self) -> list[ImageRecord]:
        if not (self.root / "index.json").exists():
            return []
        return self._records(self.layout.read_index())

    def lookup(self, ref: str) -> ImageRecord:
        """An image by name, short name, full or abbreviated ID, or manifest digest."""
        images = self.images()
        ref = ref.strip()
        if ref.startswith("sha256:") and not is_digest(ref) and _HEX.match(ref[7:]):
            matches = _by_id_prefix(images, ref[7:])
            return _one(matches, ref)
        if is_digest(ref):
            matches = [r for r in images if ref in (r.id, r.manifest_digest)]
            return _one(matches, ref)
        try:
            name = normalize_name(ref)
        except UsageError:
            name = None
        if name is not None:
            if "@" in name:
                repo, _, digest = name.partition("@")
                exact = [r for r in images if r.manifest_digest == digest
                         and any(split_name(n)[0] == repo for n in r.names)]
            else:
                exact = [r for r in images if name in r.names]
            if exact:
                return exact[0]
        if _HEX.match(ref):
            matches = _by_id_prefix(images, ref)
            if matches:
                return _one(matches, ref)
        if name is not None and not _is_qualified(ref):
            # a short name also matches the same repository path on any registry
            want = "/" + name.partition("/")[2]
            if want.startswith("/library/"):
                want_also = "/" + want[len("/library/"):]
            else:
                want_also = want
            matches = [r for r in images
                       if any(n.endswith(want) or n.endswith(want_also) for n in r.names)]
            if matches:
                return _one(matches, ref)
        raise ImageNotFound(f"looking up image {ref!r}: image not known")

    # -- writing

    def put_manifest(self, manifest_bytes: bytes, names: Sequence[str]) -> ImageRecord:
        """Store a manifest whose config and layers are already blobs, and name it."""
        manifest = Manifest.from_json(manifest_bytes)
        if manifest.media_type not in MANIFEST_TYPES:
            raise ImageError(f"storing manifest: unsupported media type {manifest.media_type!r}")
        layout = self.layout
        for desc in [manifest.config, *manifest.layers]:
            if not layout.has_blob(desc.digest):
                raise ImageError(f"storing manifest: blob {desc.digest} is missing from the store")
        digest, size = layout.put_blob(manifest_bytes)
        wanted = [normalize_name(n) for n in names]
        with self.lock():
            index = layout.read_index()
            desc = Descriptor(manifest.media_type, digest, size)
            if not any(d.digest == digest for d in index.manifests):
                index.manifests.append(desc)
            index = _set_names(index, desc, wanted)
            layout.write_index(index)
            return self._record(digest, _names_of(index, digest))

    def tag(self, ref: str, *names: str) -> ImageRecord:
        wanted = [normalize_name(n) for n in names]
        with self.lock():
            record = self.lookup(ref)
            index = self.layout.read_index()
            desc = next(d for d in index.manifests if d.digest == record.manifest_digest)
            index = _set_names(index, desc, wanted)
            self.layout.write_index(index)
            return self._record(record.manifest_digest, _names_of(index, record.manifest_digest))

    def untag(self, ref: str, *names: str) -> ImageRecord:
        """Remove names from an image (all of them when none are given); it stays stored."""
        with self.lock():
            record = self.lookup(ref)
            drop = {normalize_name(n) for n in names} if names else set(record.names)
            missing = drop - set(record.names)
            if missing:
                raise ImageNotFound(
                    f"untagging image {record.id[7:19]}: not tagged {', '.join(sorted(missing))}"
                )
            index = self.layout.read_index()
            index = _drop_names(index, drop)
            self.layout.write_index(index)
            return self._record(record.manifest_digest, _names_of(index, record.manifest_digest))

    def remove(self, ref: str, force: bool = False) -> list[str]:
        """Remove a name or an image. Returns what happened, one line each:
        "untagged: NAME" for dropped names, then the ID of a deleted image.

        A name of an image with several names only drops that name; an ID of an
        image with several names needs ``force``. Unreferenced blobs are collected.
        """
        lines: list[str] = []
        with self.lock():
            record = self.lookup(ref)
            try:
                by_name = normalize_name(ref) in record.names
            except UsageError:
                by_name = False
            if by_name and len(record.names) > 1 and not force:
                name = normalize_name(ref)
                self.layout.write_index(_drop_names(self.layout.read_index(), {name}))
                return [f"untagged: {name}"]
            if len(record.names) > 1 and not force:
                raise StoreError(
                    f"removing image {record.id[7:19]}: it has several names "
                    f"({', '.join(record.names)})",
                    hint="remove the names one by one, or use --force",
                )
            index = self.layout.read_index()
            index.manifests = [d for d in index.manifests if d.digest != record.manifest_digest]
            self.layout.write_index(index)
            lines.extend(f"untagged: {n}" for n in record.names)
            lines.append(record.id[7:])
            self.gc()
        return lines

    def gc(self) -> int:
        """Remove blobs no image references and stale temporary files; returns the
        number of blobs removed (0 while another process holds a pin)."""
        layout = self.layout
        with self.lock():
            fd = os.open(self.root / "gc.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return 0
                keep = self._referenced(layout.read_index())
                removed = 0
                for digest in layout.blob_digests():
                    if digest not in keep:
                        layout.remove_blob(digest)
                        removed += 1
                for directory in (layout.blobs, self.tmp_dir()):
                    for name in os.listdir(directory):
                        if name.startswith(TEMP_PREFIX):
                            with contextlib.suppress(OSError):
                                os.unlink(directory / name)
                return removed
            finally:
                os.close(fd)

    def _referenced(self, index: Index) -> set[str]:
        keep: set[str] = set()
        pending = list(index.manifests)
        while pending:
            desc = pending.pop()
            if desc.digest in keep:
                continue
            keep.add(desc.digest)
            if not self.layout.has_blob(desc.digest):
                continue
            data = self.layout.read_blob(desc.digest)
            if desc.media_type in INDEX_TYPES:
                pending.extend(Index.from_json(data).manifests)
            elif desc.media_type in MANIFEST_TYPES:
                manifest = Manifest.from_json(data)
                keep.add(manifest.config.digest)
                keep.update(layer.digest for layer in manifest.layers)
        return keep


def _is_qualified(ref: str) -> bool:
    first, slash, _ = ref.partition("/")
    return bool(slash) and ("." in first or ":" in first or first == "localhost")


def _by_id_prefix(images: list[ImageRecord], prefix: str) -> list[ImageRecord]:
    return [r for r in images if r.id[7:].startswith(prefix)]


def _one(matches: list[ImageRecord], ref: str) -> ImageRecord:
    ids = {r.id for r in matches}
    if not matches:
        raise ImageNotFound(f"looking up image {ref!r}: image not known")
    if len(ids) > 1:
        raise StoreError(f"looking up image {ref!r}: ambiguous, it matches {len(ids)} images")
    return matches[0]


def _names_of(index: Index, digest: str) -> tuple[str, ...]:
    names = []
    for d in index.manifests:
        name = (d.annotations or {}).get(ANNOTATION_REF_NAME)
        if d.digest == digest and name:
            names.append(name)
    return tuple(names)


def _drop_names(index: Index, drop: set[str]) -> Index:
    """Remove descriptors carrying the names; an image left nameless keeps one
    unannotated descriptor (it becomes dangling, not deleted)."""
    kept: list[Descriptor] = []
    orphans: dict[str, Descriptor] = {}
    for d in index.manifests:
        name = (d.annotations or {}).get(ANNOTATION_REF_NAME)
        if name in drop:
            orphans.setdefault(d.digest, d)
        else:
            kept.append(d)
    for digest, d in orphans.items():
        if not any(k.digest == digest for k in kept):
            kept.append(Descriptor(d.media_type, d.digest, d.size, platform=d.platform))
    return Index(kept, index.annotations, index.media_type)


def _set_names(index: Index, desc: Descriptor, names: list[str]) -> Index:
    """Give names to desc's image, moving them away from any other image."""
    if not names:
        return index
    index = _drop_names(index, set(names))
    kept = [d for d in index.manifests
            if not (d.digest == desc.digest and not (d.annotations or {}).get(ANNOTATION_REF_NAME))]
    for name in names:
        kept.append(Descriptor(desc.media_type, desc.digest, desc.size,
                               annotations={ANNOTATION_REF_NAME: name}, platform=desc.platform))
    return Index(kept, index.annotations, index.media_type)
