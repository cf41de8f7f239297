"""The local image store: an OCI image layout plus private directories, no daemon.

The store root is itself an OCI image layout, so other tools can read it
(``oci:ROOT:localhost/app:1.0``). Each name of an image is one descriptor in
``index.json`` annotated with ``org.opencontainers.image.ref.name``; an image
without names keeps one unannotated descriptor. Private directories: ``tmp/``
(temporary files on the same file system), ``layers/`` (root filesystems),
``cache/`` (build cache), ``workspaces/`` (root filesystems being built).
Reference updates and garbage collection run under an exclusive ``fcntl`` lock
on ``ROOT/lock``; writers of blobs not yet referenced hold a shared lock on
``ROOT/gc.lock`` (a pin), which garbage collection never waits for.

Crash safety: blobs and ``index.json`` are written to a temporary file, fsynced,
renamed into place and the directory fsynced. Each process writes its temporary
files under ``tmp/<pid>.<start time>/``, removed when it exits; the directory of
a process that is gone (killed) is a leftover, and so, once no other process
uses the store, are half-extracted layers and workspaces. Opening a store
removes leftovers and then collects the blobs a dead process left unreferenced.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from builder.errors import ImageError, ImageNotFound, PybuildError, StoreError, UsageError
from builder.image.digest import is_digest
from builder.image.layer import Layer, image_layers
from builder.image.layout import TEMP_PREFIX, BlobWriter, Layout, fsync_dir, write_atomic
from builder.image.manifest import build_manifest
from builder.image.spec import (
    ANNOTATION_REF_NAME,
    INDEX_TYPES,
    MANIFEST_TYPES,
    MEDIA_OCI_CONFIG,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
)
from builder.reference import is_qualified, normalize_name
from builder.rootfs import syscalls
from builder.rootfs.layercache import drop_dangling_links, forget

GC_PENDING = "gc.pending"  # a gc skipped while pins were held, left to the last pin
_HEX = re.compile(r"^[0-9a-f]{3,64}$")
_PROCESS_DIR = re.compile(r"^(\d+)\.(\d+)$")
_WAIT_STEP = 0.05


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

    @property
    def layers(self) -> list[Layer]:
        """The image's layers, bottom first."""
        return image_layers(self.manifest.layers, self.config.diff_ids)


@dataclass
class Pruned:
    """What ``Store.prune`` removed; sizes in bytes (disk usage for directories)."""

    images: list[str]  # IDs of the dangling images deleted
    blobs: int = 0
    blob_bytes: int = 0
    layers: int = 0
    layer_bytes: int = 0
    cache_bytes: int = 0
    leftovers: int = 0

    @property
    def total(self) -> int:
        return self.blob_bytes + self.layer_bytes + self.cache_bytes


@dataclass(frozen=True)
class Leftover:
    """Something a dead process left in the store: ``kind`` is "temp",
    "partial-layer" or "workspace"; ``path`` is absolute."""

    kind: str
    path: Path
    why: str


class _StoreLayout(Layout):
    """The store's layout: renames of blobs are made durable by fsyncing the
    directory, and ``index.json`` is staged in the process's temporary directory."""

    def write_index(self, index: Index) -> None:
        write_atomic(self.root / "index.json", index.to_json(), tmp_dir=self.tmp_dir)

    @contextlib.contextmanager
    def blob_writer(self, expected: str | None = None) -> Iterator[BlobWriter]:
        with super().blob_writer(expected) as writer:
            yield writer
        fsync_dir(self.blobs)


class Store:
    """The image store at ``root``; directories are created on first write.

    Opening a store registers this process in ``tmp/`` and, unless ``recover``
    is false, removes what dead processes left behind (see ``clean_leftovers``).
    """

    def __init__(self, root: Path, *, recover: bool = True) -> None:
        self.root = Path(root)
        self._lock_depth = 0
        self._lock_fd: int | None = None
        self._thread_lock = threading.RLock()
        self._layout: Layout | None = None
        self._exclusive = False
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
        self._tmp = self._register()
        if recover and self.clean_leftovers():
            with contextlib.suppress(PybuildError):  # a damaged store is for `check` to report
                self.gc()

    @property
    def layout(self) -> Layout:
        if self._layout is None:
            if (self.root / "index.json").exists() and (self.root / "oci-layout").exists():
                self._layout = _StoreLayout(self.root, tmp_dir=self.tmp_dir())
            else:
                with self.lock():  # two processes creating one store
                    self._layout = _StoreLayout(self.root, tmp_dir=self.tmp_dir())
        return self._layout

    def tmp_dir(self) -> Path:
        """This process's directory for temporary files (same file system as the blobs)."""
        self._tmp.mkdir(parents=True, exist_ok=True)
        return self._tmp

    def _register(self) -> Path:
        key = process_key(os.getpid())
        if key is None:  # no /proc: fall back to the PID alone
            key = f"{os.getpid()}.0"
        path = self.root / "tmp" / key
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"opening image store {self.root}: {exc.strerror or exc}") from exc
        if path not in _REGISTERED:
            _REGISTERED.add(path)
            atexit.register(_unregister, path, os.getpid())
        return path

    # -- leftovers of dead processes

    def other_processes(self) -> list[str]:
        """Keys ("<pid>.<start>") of the other live processes using this store."""
        try:
            names = os.listdir(self.root / "tmp")
        except FileNotFoundError:
            return []
        return [n for n in names if n != self._tmp.name and _PROCESS_DIR.match(n)
                and process_alive(n)]

    def leftovers(self) -> list[Leftover]:
        """What dead processes left: their temporary directories always; temporary
        files outside them, half-extracted layers and workspaces only when no
        other process uses the store (their owner cannot be told)."""
        found: list[Leftover] = []
        tmp = self.root / "tmp"
        alone = not self.other_processes()
        for name in _listdir(tmp):
            if name == self._tmp.name:
                continue
            if _PROCESS_DIR.match(name):
                if not process_alive(name):
                    found.append(Leftover("temp", tmp / name,
                                          f"process {name.partition('.')[0]} is gone"))
            elif alone:
                found.append(Leftover("temp", tmp / name, "no process owns it"))
        if not alone:
            return found
        for directory in (self.root, self.root / "blobs" / "sha256"):
            for name in _listdir(directory):
                if name.startswith(TEMP_PREFIX):
                    found.append(Leftover("temp", directory / name, "no process owns it"))
        for name in _listdir(self.root / "layers"):
            if name.startswith(TEMP_PREFIX):
                found.append(Leftover("partial-layer", self.root / "layers" / name,
                                      "extraction never finished"))
        for name in _listdir(self.root / "workspaces"):
            found.append(Leftover("workspace", self.root / "workspaces" / name,
                                  "no build is using it"))
        return found

    def clean_leftovers(self) -> list[Leftover]:
        """Remove ``leftovers()`` (unmounting workspaces first); returns them."""
        found = self.leftovers()
        for item in found:
            if item.kind == "workspace":
                _unmount_below(item.path)
            _remove(item.path)
        return found

    @property
    def holds_exclusive(self) -> bool:
        """Whether this Store is inside ``exclusive()``."""
        return self._exclusive

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """The store lock with no pins held by anyone: waits until other processes'
        writes of unreferenced blobs are done (releasing the lock meanwhile)."""
        fd = os.open(self.root / "gc.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            while True:
                with self.lock():
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        pass
                    else:
                        self._exclusive = True
                        try:
                            yield
                        finally:
                            self._exclusive = False
                        return
                time.sleep(_WAIT_STEP)
        finally:
            os.close(fd)

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
        while any process holds a pin, and leaves it to the last pin to end."""
        fd = os.open(self.root / "gc.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)
            if (self.root / GC_PENDING).exists():
                with contextlib.suppress(OSError):
                    self.gc()

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

    def stored(self, manifest_digest: str) -> ImageRecord | None:
        """The image whose manifest has this digest when ``index.json`` lists it and all
        its blobs are present, else None (nothing is hashed again)."""
        if not (self.root / "index.json").exists():
            return None
        index = self.layout.read_index()
        if not any(d.digest == manifest_digest for d in index.manifests):
            return None
        try:
            record = self._record(manifest_digest, _names_of(index, manifest_digest))
        except StoreError:  # a blob is missing: import it again
            return None
        blobs = [record.manifest.config, *record.manifest.layers]
        if not all(self.layout.has_blob(d.digest) for d in blobs):
            return None
        return record

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
        if name is not None and not is_qualified(ref):
            # a short name also matches the same repository path on any registry
            want = "/" + name.partition("/")[2]
            if want.startswith("/library/"):
                want_also = "/" + want[len("/library/"):]
            else:
                want_also = want
            matches = [r for r in images
                       if any(n.endswith((want, want_also)) for n in r.names)]
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
        wanted = [normalize_name(n) for n in names]
        with self.pin(), self.lock():
            for desc in [manifest.config, *manifest.layers]:
                if not layout.has_blob(desc.digest):
                    raise ImageError(
                        f"storing manifest: blob {desc.digest} is missing from the store")
            digest, size = layout.put_blob(manifest_bytes)
            index = layout.read_index()
            before = index.to_json()
            desc = Descriptor(manifest.media_type, digest, size)
            if not any(d.digest == digest for d in index.manifests):
                index.manifests.append(desc)
            index = _set_names(index, desc, wanted)
            if index.to_json() != before:  # a no-change rebuild leaves index.json alone
                layout.write_index(index)
            return self._record(digest, _names_of(index, digest))

    def commit(self, config: ImageConfig, layers: Sequence[Layer], *, format: str = "oci",
               annotations: dict[str, str] | None = None, names: Sequence[str] = ()
               ) -> ImageRecord:
        """Write the config and a manifest of ``layers`` (whose blobs are stored) and name
        the image. ``config.diff_ids`` is set from the layers."""
        config.diff_ids = [layer.diff_id for layer in layers]
        config_digest, config_size = self.layout.put_blob(config.to_json(format))
        manifest = build_manifest(
            Descriptor(MEDIA_OCI_CONFIG, config_digest, config_size),
            [layer.descriptor() for layer in layers], format=format, annotations=annotations)
        return self.put_manifest(manifest.to_json(), names)

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
                if not self._exclusive:  # exclusive() holds the gc lock already
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        (self.root / GC_PENDING).touch()  # for the last pin to end
                        return 0
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.root / GC_PENDING)
                keep = self._referenced(layout.read_index())
                removed = 0
                for digest in layout.blob_digests():
                    if digest not in keep:
                        layout.remove_blob(digest)
                        removed += 1
                for name in _listdir(layout.blobs):
                    if name.startswith(TEMP_PREFIX):
                        with contextlib.suppress(OSError):
                            os.unlink(layout.blobs / name)
                self.clean_leftovers()
                return removed
            finally:
                os.close(fd)

    def prune(self, *, all_layers: bool = False) -> Pruned:
        """Remove dangling (unnamed) images, unused blobs, the build cache, leftovers
        and extracted layers no image or working container needs (``all_layers``:
        every extracted layer no working container needs). Waits for pins."""
        with self.exclusive():
            pruned = Pruned(images=[], leftovers=len(self.clean_leftovers()))
            index = self.layout.read_index()
            named = {d.digest for d in index.manifests
                     if (d.annotations or {}).get(ANNOTATION_REF_NAME)}
            for desc in index.manifests:
                if desc.digest not in named and desc.media_type in MANIFEST_TYPES:
                    with contextlib.suppress(PybuildError):
                        pruned.images.append(self._record(desc.digest, ()).id)
            index.manifests = [d for d in index.manifests if d.digest in named]
            self.layout.write_index(index)
            for name in _listdir(self.root / "cache"):  # first: its blobs go with gc()
                pruned.cache_bytes += _disk_usage(self.root / "cache" / name)
                _remove(self.root / "cache" / name)
            before = {d: _size(self.layout.blob_path(d)) for d in self.layout.blob_digests()}
            self.gc()
            after = set(self.layout.blob_digests())
            gone = [d for d in before if d not in after]
            pruned.blobs, pruned.blob_bytes = len(gone), sum(before[d] for d in gone)
            needed = set() if all_layers else {
                diff_id.partition(":")[2] for record in self.images()
                for diff_id in record.config.diff_ids}
            needed |= {diff_id.partition(":")[2] for roots in self._gc_roots()
                       for diff_id in roots.layers(self)}

            for name in _listdir(self.root / "layers"):
                if name not in needed and not name.startswith("."):
                    pruned.layers += 1
                    pruned.layer_bytes += _disk_usage(self.root / "layers" / name)
                    forget(self.root / "layers" / name)
            drop_dangling_links(self.root / "layers")
            return pruned

    def retained_blobs(self) -> set[str]:
        """Blobs kept though no image names them: those of the registered ``GcRoots``
        (working containers', the build cache's)."""
        return {digest for roots in self._gc_roots() for digest in roots.blobs(self)}

    def _gc_roots(self) -> list[GcRoots]:
        """The registered roots; a private directory in use whose owner has not
        registered is an error (collecting then could drop what it needs)."""
        for directory in ROOT_DIRECTORIES:
            if directory not in _GC_ROOTS and _listdir(self.root / directory):
                raise StoreError(f"collecting unused blobs: nothing that knows {directory}/ "
                                 "is loaded (a bug: import its module first)")
        return list(_GC_ROOTS.values())

    def _referenced(self, index: Index) -> set[str]:
        keep: set[str] = self.retained_blobs()
        pending = list(index.manifests)
        while pending:
            desc = pending.pop()
            if desc.digest in keep:
                continue
            keep.add(desc.digest)
            if not self.layout.has_blob(desc.digest):
                continue
            try:
                data = self.layout.read_blob(desc.digest)
                if desc.media_type in INDEX_TYPES:
                    pending.extend(Index.from_json(data).manifests)
                elif desc.media_type in MANIFEST_TYPES:
                    manifest = Manifest.from_json(data)
                    keep.add(manifest.config.digest)
                    keep.update(layer.digest for layer in manifest.layers)
            except ImageError as exc:
                raise StoreError(f"collecting unused blobs: {exc}",
                                 hint="run `pybuild check --repair`") from exc
        return keep


_REGISTERED: set[Path] = set()

# private directories whose contents hold blobs and layers no image names
ROOT_DIRECTORIES = ("containers", "cache")


class GcRoots(Protocol):
    """What one of ``ROOT_DIRECTORIES`` keeps alive, told to garbage collection. The
    modules that own those directories register one each (``register_gc_roots``), so
    the store knows neither of them."""

    directory: str

    def blobs(self, store: Store) -> set[str]:
        """Digests of blobs to keep."""
        ...

    def layers(self, store: Store) -> set[str]:
        """diff_ids of extracted layers to keep."""
        ...


_GC_ROOTS: dict[str, GcRoots] = {}


def register_gc_roots(roots: GcRoots, *, replace: bool = True) -> None:
    """Tell garbage collection what ``roots.directory`` keeps alive; ``replace=False``
    leaves a registration already made (by the owning module itself) alone."""
    if roots.directory not in ROOT_DIRECTORIES:
        raise ValueError(f"register_gc_roots: {roots.directory!r} is not a store directory")
    if replace or roots.directory not in _GC_ROOTS:
        _GC_ROOTS[roots.directory] = roots


def _unregister(path: Path, pid: int) -> None:
    if os.getpid() == pid:  # not in a forked child
        shutil.rmtree(path, ignore_errors=True)


def process_key(pid: int) -> str | None:
    """"<pid>.<start time in clock ticks>", naming one process across PID reuse;
    None when the process does not exist or is a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
    except OSError:
        return None
    if len(fields) < 20 or fields[0] in (b"Z", b"X"):
        return None
    return f"{pid}.{int(fields[19])}"


def process_alive(key: str) -> bool:
    """Whether the process a ``process_key`` names still runs."""
    pid_text, _, start = key.partition(".")
    pid = int(pid_text)
    if start == "0" or not os.path.exists("/proc/self/stat"):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return process_key(pid) == key


def _listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _disk_usage(path: Path) -> int:
    """Bytes of disk a file or directory tree takes (hard links counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    paths = [os.fspath(path)]
    for directory, dirs, files in os.walk(path):
        paths.extend(os.path.join(directory, name) for name in [*dirs, *files])
    for full in paths:
        try:
            st = os.lstat(full)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _unmount_below(path: Path) -> None:
    """Detach every mount at or below ``path`` (a killed build's overlay), deepest first."""
    prefix = os.fspath(path)
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            points = [_unescape(line.split()[4]) for line in f if len(line.split()) > 4]
    except OSError:
        return
    inside = [p for p in points if p == prefix or p.startswith(prefix + "/")]
    if not inside:
        return
    for point in sorted(set(inside), key=len, reverse=True):
        with contextlib.suppress(OSError):
            syscalls.umount(point, syscalls.MNT_DETACH)


def _unescape(field: str) -> str:
    """Mount points in mountinfo escape space, tab, newline and backslash as octal."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


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
