"""A stage's root filesystem while it is being built, and what changed in it.

Two drivers:

* ``overlay``: every base layer is extracted once into a content-addressed
  cache (``<store>/layers/<diff_id hex>``, overlay-style whiteouts) and the
  stack is mounted as overlay lowerdirs with a fresh upper directory. The
  upper directory *is* the diff; ``commit()`` moves it into the cache as the
  next lower layer.
* ``vfs``: the layers are applied into one plain directory and a metadata
  snapshot is kept; ``changes()`` compares a new snapshot with it. A file
  counts as changed when its type, mode, owner, size, mtime, ctime, inode or
  link target differ. ctime cannot be set from user space and moves on every
  write, chmod, chown, xattr change or rename, so file contents are never
  read. Directories are compared without ctime (mode, owner, mtime, xattrs),
  so creating and removing a mount point inside one and restoring its mtime
  leaves it unchanged.

Overlay is used when it mounts here (root, overlay in the kernel, the store
not itself on overlay); otherwise vfs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from builder.errors import StoreError
from builder.rootfs.extract import OPAQUE_MARKER, OPAQUE_XATTR, WHITEOUT_PREFIX, extract_layer
from builder.rootfs.layercache import (
    LINKS,
    StoreLike,
    cache_layer,
    install,
    layer_cache_dir,
    promote,
    short_names,
)
from builder.rootfs.verify import record_verified

if TYPE_CHECKING:
    from builder.image.layer import LayerEntry

__all__ = ["VOLATILE", "Workspace", "detect_driver", "layer_cache_dir", "mount_overlay"]

_MOUNT_DATA_MAX = 4000  # mount(2) option data must fit in one page
_CLONE_FS = 0x00000200


_probe_results: dict[str, str] = {}
# Upper directories are mounted ``volatile`` where the kernel has it (Linux 5.10): no
# sync of the whole file system at unmount; builder.rootfs.layercache keeps their
# entries crash-safe.
VOLATILE = tuple(int(n) for n in re.findall(r"\d+", os.uname().release)[:2]) >= (5, 10)


def detect_driver(store_root: Path) -> str:
    """``overlay`` when an overlay mount works under ``store_root``, else ``vfs``."""
    key = os.fspath(store_root)
    if key not in _probe_results:
        _probe_results[key] = "overlay" if _overlay_works(Path(store_root)) else "vfs"
    return _probe_results[key]


def _overlay_works(store_root: Path) -> bool:
    if os.geteuid() != 0:
        return False
    from builder.rootfs import syscalls

    try:
        store_root.mkdir(parents=True, exist_ok=True)
        probe = Path(store_root) / f"tmp-probe-{uuid.uuid4().hex}"
        for sub in ("lower", "upper", "work", "merged"):
            (probe / sub).mkdir(parents=True)
    except OSError:
        return False
    try:
        syscalls.mount("overlay", probe / "merged", "overlay", 0, _overlay_options(
            [probe / "lower"], probe / "upper", probe / "work"))
        syscalls.umount(probe / "merged")
        return True
    except OSError:
        return False
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def _overlay_options(lowers: Sequence[Path], upper: Path, work: Path) -> str:
    lower = ":".join(os.fspath(p) for p in lowers)
    return (f"lowerdir={lower},upperdir={upper},workdir={work},"
            "redirect_dir=off,metacopy=off,index=off")


def mount_overlay(target: Path, lowers: Sequence[Path], upper: Path, work: Path, *,
                  layers: Path, volatile: bool) -> None:
    """Mount an overlay of ``lowers`` (top first) at ``target``. When absolute paths do
    not fit mount(2)'s page, the lowers (entries of the layer cache ``layers``) go by
    short links in ``layers/.links`` and every path is relative to it, resolved by a
    thread of its own with a private working directory (``unshare(CLONE_FS)``) so the
    process's never changes under other threads. Raises OSError."""
    from builder.rootfs import syscalls

    data = _overlay_options(lowers, upper, work)
    cwd = None
    if len(data) > _MOUNT_DATA_MAX:
        cwd = layers / LINKS
        data = _overlay_options(short_names(layers, lowers), Path(os.path.relpath(upper, cwd)),
                                Path(os.path.relpath(work, cwd)))
        if len(data) > _MOUNT_DATA_MAX:
            raise OSError(errno.E2BIG, f"{len(lowers)} layers are more than one overlay mount "
                                       "can stack here")
    if volatile:
        data += ",volatile"
    if cwd is None:
        syscalls.mount("overlay", target, "overlay", 0, data)
        return
    failed: list[OSError] = []

    def mount_from(directory: Path) -> None:
        try:
            syscalls.unshare(_CLONE_FS)
            os.chdir(directory)
            syscalls.mount("overlay", target, "overlay", 0, data)
        except OSError as exc:
            failed.append(exc)

    thread = threading.Thread(target=mount_from, args=(cwd,), name="overlay-mount")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]


@dataclass(frozen=True)
class _Meta:
    """What the vfs driver compares."""

    mode: int
    uid: int
    gid: int
    size: int
    mtime: int
    ctime: int
    ino: int
    link: str | None
    xattrs: tuple[tuple[str, bytes], ...]


class Workspace:
    """One stage's root filesystem being built (see the module docstring)."""

    def __init__(self, store: StoreLike, driver: str, base: Path) -> None:
        self.store = store
        self.driver = driver
        self.base = base
        self.root = base / "merged" if driver == "overlay" else base / "root"
        self.lowers: list[Path] = []  # top first
        self._snapshot: dict[str, _Meta] = {}
        self._mounted = False
        self._closed = False

    @classmethod
    def create(
        cls,
        store: StoreLike,
        layers: Sequence[tuple[str, str, str]],
        *,
        driver: str | None = None,
    ) -> Workspace:
        """Assemble the root from ``(digest, diff_id, media_type)`` layers, bottom first."""
        store_root = Path(store.root)
        driver = driver or detect_driver(store_root)
        if driver not in ("overlay", "vfs"):
            raise StoreError(f"creating workspace: unknown storage driver {driver!r}")
        base = store_root / "workspaces" / uuid.uuid4().hex
        base.mkdir(parents=True)
        workspace = cls(store, driver, base)
        try:
            if driver == "overlay":
                promote(store)
                workspace.lowers = [cache_layer(store, *layer) for layer in reversed(layers)]
                workspace._mount()
            else:
                workspace.root.mkdir()
                for digest, diff_id, media_type in layers:
                    with store.layout.open_blob(digest) as blob:
                        extract_layer(blob, media_type, workspace.root, layer_digest=digest,
                                      diff_id=diff_id, whiteouts="apply")
                    record_verified(store_root, digest, diff_id)
                workspace._snapshot = _snapshot(workspace.root)
        except BaseException:
            workspace.close()
            raise
        return workspace

    # overlay plumbing

    def _mount(self) -> None:
        upper, work = self.base / "upper", self.base / "work"
        for path in (upper, work, self.root):
            path.mkdir(exist_ok=True)
        # A layer may sit in the stack twice (the same COPY in two steps); overlay
        # refuses a repeated lowerdir, and the upper copy makes the lower one moot.
        lowers = list(dict.fromkeys(self.lowers)) or [self._empty_lower()]
        try:
            mount_overlay(self.root, lowers, upper, work, layers=Path(self.store.root) / "layers",
                          volatile=VOLATILE)
        except OSError as exc:
            raise StoreError(f"mounting overlay for {self.root}: {exc.strerror}") from exc
        self._mounted = True

    def _empty_lower(self) -> Path:
        empty = self.base / "empty"
        empty.mkdir(exist_ok=True)
        return empty

    def _unmount(self) -> None:
        """Unmount; a mount still in use is detached, and StoreError says so."""
        from builder.rootfs import syscalls

        if self._mounted:
            self._mounted = False
            try:
                syscalls.umount(self.root)
            except OSError as exc:
                syscalls.umount(self.root, syscalls.MNT_DETACH)
                raise StoreError(f"unmounting {self.root}: {exc.strerror}; a process may still "
                                 "be writing to it") from exc

    # the public API

    def changes(self) -> list[LayerEntry]:
        """What changed since creation or the last ``commit()``, sorted by path."""
        if self.driver == "overlay":
            entries = _OverlayDiff(self.base / "upper", self.lowers).entries()
        else:
            entries = _vfs_diff(self.root, self._snapshot, _snapshot(self.root))
        return sorted(entries, key=lambda e: e.path)

    def commit(self, diff_id: str) -> None:
        """Make the current changes a lower layer known as ``diff_id``."""
        if self.driver == "vfs":
            self._snapshot = _snapshot(self.root)
            return
        self._unmount()  # a still-busy upper directory never becomes a layer
        target = install(self.store, self.base / "upper",
                         layer_cache_dir(Path(self.store.root), diff_id),
                         synced=not VOLATILE)
        shutil.rmtree(self.base / "work", ignore_errors=True)
        self.lowers.insert(0, target)
        self._mount()

    def close(self) -> None:
        """Unmount and remove everything but the shared layer cache; idempotent."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(StoreError):  # detached: what is left goes with the directory
            self._unmount()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _entry(path: str, source: Path | None) -> LayerEntry:
    from builder.image.layer import LayerEntry

    return LayerEntry(path, source)


def _whiteout_path(rel: str) -> str:
    parent, _, name = rel.rpartition("/")
    return f"{parent}/{WHITEOUT_PREFIX}{name}" if parent else WHITEOUT_PREFIX + name


class _OverlayDiff:
    """Reads an overlay upper directory as OCI layer entries."""

    def __init__(self, upper: Path, lowers: Sequence[Path]) -> None:
        self.upper = upper
        self.lowers = lowers

    def entries(self) -> list[LayerEntry]:
        out: list[LayerEntry] = []
        self.walk("", os.fspath(self.upper), out)
        return out

    def walk(self, rel: str, directory: str, out: list[LayerEntry]) -> None:
        with os.scandir(directory) as it:
            children = sorted(it, key=lambda e: e.name)
        for child in children:
            path = f"{rel}/{child.name}" if rel else child.name
            st = child.stat(follow_symlinks=False)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                out.append(_entry(_whiteout_path(path), None))
                continue
            if not stat.S_ISDIR(st.st_mode):
                out.append(_entry(path, Path(child.path)))
                continue
            inner: list[LayerEntry] = []
            opaque = _opaque(child.path)
            if opaque:
                inner.append(_entry(f"{path}/{OPAQUE_MARKER}", None))
            self.walk(path, child.path, inner)
            if inner or not self.same_as_lower(path, st):
                out.append(_entry(path, Path(child.path)))
                out.extend(inner)

    def same_as_lower(self, rel: str, st: os.stat_result) -> bool:
        """True when a copied-up directory has the metadata it has below."""
        for lower in self.lowers:
            try:
                below = os.lstat(lower / rel)
            except (FileNotFoundError, NotADirectoryError):
                continue
            return (stat.S_ISDIR(below.st_mode) and below.st_mode == st.st_mode
                    and below.st_uid == st.st_uid and below.st_gid == st.st_gid
                    and below.st_mtime_ns == st.st_mtime_ns)
        return False


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _xattrs(path: str) -> tuple[tuple[str, bytes], ...]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    out = []
    for name in sorted(names):
        try:
            out.append((name, os.getxattr(path, name, follow_symlinks=False)))
        except OSError:
            continue
    return tuple(out)


def _snapshot(root: Path) -> dict[str, _Meta]:
    """Metadata of every path under root (not root itself)."""
    out: dict[str, _Meta] = {}
    stack = [("", os.fspath(root))]
    while stack:
        rel, directory = stack.pop()
        with os.scandir(directory) as it:
            for child in it:
                path = f"{rel}/{child.name}" if rel else child.name
                st = child.stat(follow_symlinks=False)
                is_dir = stat.S_ISDIR(st.st_mode)
                out[path] = _Meta(
                    mode=st.st_mode, uid=st.st_uid, gid=st.st_gid,
                    size=0 if is_dir else st.st_size, mtime=st.st_mtime_ns,
                    ctime=0 if is_dir else st.st_ctime_ns, ino=0 if is_dir else st.st_ino,
                    link=os.readlink(child.path) if stat.S_ISLNK(st.st_mode) else None,
                    xattrs=_xattrs(child.path) if is_dir else (),
                )
                if is_dir:
                    stack.append((path, child.path))
    return out


def _vfs_diff(root: Path, before: dict[str, _Meta], after: dict[str, _Meta]) -> list[LayerEntry]:
    out: list[LayerEntry] = []
    for path, meta in after.items():
        if before.get(path) != meta:
            out.append(_entry(path, root / path))
    for path in before:
        if path in after:
            continue
        parent = path.rpartition("/")[0]
        if parent:
            new_parent, old_parent = after.get(parent), before.get(parent)
            if new_parent is None or not stat.S_ISDIR(new_parent.mode):
                continue  # the parent went too, or became a non-directory
            if old_parent is not None and not stat.S_ISDIR(old_parent.mode):
                continue
        out.append(_entry(_whiteout_path(path), None))
    return out
