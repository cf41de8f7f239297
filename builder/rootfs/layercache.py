"""The extracted-layer cache: ``<store>/layers/<diff_id hex>``, the overlay lowerdirs.

Entries are written without waiting for the disk: an extraction is not
fsynced, and a step's overlay is mounted ``volatile`` so unmounting it does not
sync the whole file system before its upper directory becomes the next entry.
What a crash can tear must then never be used, so an entry is *trusted* only
with a marker in ``layers/.trust/`` that names it by inode and ctime (a
directory later made under the same name does not match):

* ``pending/<hex>`` holds the boot ID it was written in; it vouches for the
  entry until the machine reboots, since nothing written in this boot can
  have been lost yet;
* ``synced/<hex>`` is written after a sync that began once the entry was
  complete; it vouches for the entry across reboots.

``promote()`` turns pending markers older than a minute into synced ones with
one ``syncfs()``, which by then finds the data long written back. An entry
trusted by neither (written before a crash or a reboot that came too soon) is
moved aside and extracted again from its blob. Installing and evicting happen
under the store lock, so no process evicts an entry another has just made.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from builder.errors import LayerError
from builder.image.layer import Layer
from builder.image.layout import TEMP_PREFIX, Layout
from builder.rootfs import syscalls
from builder.rootfs.extract import extract_layer
from builder.rootfs.verify import record_verified

__all__ = [
    "LINKS", "StoreLike", "cache_layer", "drop_dangling_links", "forget", "install",
    "layer_cache_dir", "promote", "short_names", "trusted",
]

LINKS = ".links"  # short names of entries, for deep overlay stacks
PROMOTE_AFTER = 60.0  # seconds: by then the kernel has written an entry back on its own
_SYNCED = "synced"


class StoreLike(Protocol):
    """What the layer cache and workspaces need of a store."""

    @property
    def root(self) -> Path: ...
    @property
    def layout(self) -> Layout: ...
    def lock(self) -> AbstractContextManager[None]: ...


def short_names(layers: Path, entries: Sequence[Path]) -> list[Path]:
    """Names relative to ``layers/.links`` for cache ``entries``, for mounts too deep to
    name them in full: symlinks named by the first 12 hex digits of the diff_id, or all
    64 where two layers share those."""
    links = layers / LINKS
    links.mkdir(exist_ok=True)
    names = []
    for entry in entries:
        target = f"../{entry.name}"
        for short in (entry.name[:12], entry.name):
            try:
                os.symlink(target, links / short)
            except FileExistsError:
                if os.readlink(links / short) != target:
                    continue
            names.append(Path(short))
            break
    return names


def drop_dangling_links(layers: Path) -> None:
    """Remove the short names whose entries are gone."""
    try:
        names = os.listdir(layers / LINKS)
    except FileNotFoundError:
        return
    for name in names:
        if not (layers / LINKS / name).exists():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(layers / LINKS / name)


def layer_cache_dir(store_root: Path, diff_id: str) -> Path:
    """Where the overlay form of the layer with ``diff_id`` is kept."""
    return Path(store_root) / "layers" / diff_id.split(":", 1)[-1]


@functools.cache
def boot_id() -> str:
    """This boot's ID; empty without /proc, and then entries are synced as they are installed."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def _markers(layers: Path, kind: str) -> Path:
    return layers / ".trust" / kind


def _identity(entry: Path) -> str:
    st = os.lstat(entry)
    return f"{st.st_ino}:{st.st_ctime_ns}"


def _read(marker: Path) -> str | None:
    try:
        return marker.read_text(encoding="ascii")
    except (FileNotFoundError, NotADirectoryError):
        return None


def _write(marker: Path, text: str) -> None:
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
    try:
        tmp.write_text(text, encoding="ascii")
        os.replace(tmp, marker)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def trusted(entry: Path) -> bool:
    """Whether ``entry`` (a directory in the cache) is complete on this boot."""
    try:
        identity = _identity(entry)
    except FileNotFoundError:
        return False
    layers, name = entry.parent, entry.name
    if _read(_markers(layers, _SYNCED) / name) == identity:
        return True
    boot = boot_id()
    return bool(boot) and _read(_markers(layers, "pending") / name) == f"{boot} {identity}"


def forget(entry: Path) -> None:
    """Remove ``entry`` and its markers (markers first: never a marker without its entry)."""
    layers, name = entry.parent, entry.name
    for kind in (_SYNCED, "pending"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_markers(layers, kind) / name)
    if entry.is_symlink() or entry.is_file():
        entry.unlink()
    else:
        shutil.rmtree(entry, ignore_errors=True)


def install(store: StoreLike, made: Path, entry: Path, *, synced: bool) -> Path:
    """Move the complete directory ``made`` into the cache as ``entry`` and mark it
    (``synced``: its data is known to be on disk). An entry another process
    installed first wins and ``made`` is removed; an untrusted one is evicted."""
    evicted: Path | None = None
    entry.parent.mkdir(parents=True, exist_ok=True)
    with store.lock():
        if os.path.lexists(entry):
            if trusted(entry):
                shutil.rmtree(made, ignore_errors=True)
                return entry
            evicted = entry.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
            os.rename(entry, evicted)
        try:
            os.rename(made, entry)
        except OSError as exc:
            raise LayerError(f"caching layer {entry.name}: {exc.strerror}") from exc
        identity = _identity(entry)
        boot = boot_id()
        if synced or not boot:
            if not synced:
                syscalls.syncfs(entry)
            _write(_markers(entry.parent, _SYNCED) / entry.name, identity)
        else:
            _write(_markers(entry.parent, "pending") / entry.name, f"{boot} {identity}")
    if evicted is not None:
        forget(evicted)
    return entry


def promote(store: StoreLike) -> int:
    """Sync once and mark synced every entry pending for ``PROMOTE_AFTER`` seconds;
    drop markers of earlier boots. Returns how many were promoted."""
    pending = _markers(Path(store.root) / "layers", "pending")
    try:
        names = os.listdir(pending)
    except FileNotFoundError:
        return 0
    now, boot = time.time(), boot_id()
    due = []
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            if name.startswith(TEMP_PREFIX) or now - os.lstat(pending / name).st_mtime < PROMOTE_AFTER:
                continue
            due.append(name)
    if not due:
        return 0
    started = time.time()
    syscalls.syncfs(pending)  # what was written before now, the due entries included, is on disk
    promoted = 0
    with store.lock():
        for name in due:
            marker = pending / name
            try:  # replaced since it was listed, perhaps after the sync began (a second
                # of margin for the coarse clock that file times come from)
                if os.lstat(marker).st_mtime > started - 1.0:
                    continue
            except FileNotFoundError:
                continue
            marked_boot, _, identity = marker.read_text(encoding="ascii").partition(" ")
            entry = pending.parent.parent / name
            with contextlib.suppress(FileNotFoundError):
                if marked_boot == boot and _identity(entry) == identity:
                    _write(_markers(entry.parent, _SYNCED) / name, identity)
                    promoted += 1
            os.unlink(marker)
    return promoted


@contextlib.contextmanager
def _staging(layers: Path) -> Iterator[Path]:
    tmp = layers / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
    tmp.mkdir(parents=True)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cache_layer(store: StoreLike, layer: Layer) -> Path:
    """The cache entry of a layer, extracted from its blob unless a trusted one exists;
    concurrent callers are safe."""
    target = layer_cache_dir(Path(store.root), layer.diff_id)
    if trusted(target):
        return target
    with _staging(target.parent) as tmp:
        with store.layout.open_blob(layer.digest) as blob:
            extract_layer(blob, layer.media_type, tmp, layer_digest=layer.digest,
                          diff_id=layer.diff_id)
        record_verified(Path(store.root), layer.digest, layer.diff_id)  # as an import would
        return install(store, tmp, target, synced=False)
