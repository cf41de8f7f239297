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

Overlay is mounted, in this order, by the kernel where a test mount under the
store works (as root; in a rootless user namespace from Linux 5.11, with
``userxattr``), else by ``fuse-overlayfs`` where it is installed and can mount
(``/dev/fuse`` usable; it also serves a store that is itself on overlay);
otherwise the driver is vfs. ``describe_driver`` says which (``pybuild info``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import re
import shutil
import stat
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from builder import userns
from builder.errors import StoreError
from builder.image.layer import Layer, LayerEntry
from builder.image.layout import write_atomic
from builder.rootfs import syscalls
from builder.rootfs.extract import OPAQUE_MARKER, OPAQUE_XATTRS, WHITEOUT_PREFIX, extract_layer
from builder.rootfs.layercache import (
    LINKS,
    StoreLike,
    cache_layer,
    install,
    layer_cache_dir,
    promote,
    short_names,
)
from builder.rootfs.paths import resolve_in_root
from builder.rootfs.verify import record_verified

__all__ = ["VOLATILE", "Workspace", "describe_driver", "detect_driver", "layer_cache_dir",
           "mount_overlay"]

_MOUNT_DATA_MAX = 4000  # mount(2) option data must fit in one page
_CLONE_FS = 0x00000200


_SNAPSHOT = "snapshot.pickle"  # a persistent vfs root's metadata when it was prepared
# store root -> how overlays mount there: "kernel", a fuse-overlayfs path, or "" (vfs)
_probe_results: dict[str, str] = {}
FUSE_OVERLAYFS = "fuse-overlayfs"
# Upper directories are mounted ``volatile`` where the kernel has it (Linux 5.10): no
# sync of the whole file system at unmount; builder.rootfs.layercache keeps their
# entries crash-safe.
VOLATILE = tuple(int(n) for n in re.findall(r"\d+", os.uname().release)[:2]) >= (5, 10)


def detect_driver(store_root: Path) -> str:
    """``overlay`` when an overlay mounts under ``store_root`` (by the kernel or by
    fuse-overlayfs), else ``vfs``."""
    return "overlay" if _mounter(Path(store_root)) else "vfs"


def describe_driver(store_root: Path, driver: str | None = None) -> str:
    """The driver as ``pybuild info`` shows it: ``overlay`` (the kernel's),
    ``overlay (fuse-overlayfs)`` or ``vfs``, and whether in a user namespace."""
    driver = driver or detect_driver(store_root)
    text = driver
    if driver == "overlay" and _mounter(Path(store_root)) not in ("", "kernel"):
        text += " (fuse-overlayfs)"
    if userns.inside():
        text += ", in a user namespace"
    return text


def _mounter(store_root: Path) -> str:
    key = os.fspath(store_root)
    if key not in _probe_results:
        _probe_results[key] = _probe(store_root)
    return _probe_results[key]


def _probe(store_root: Path) -> str:
    """How a test overlay mounts under ``store_root``: "kernel", fuse-overlayfs's path,
    or "" when neither mounts (or this process may not mount at all)."""
    if os.geteuid() != 0:
        return ""  # not root, not in a user namespace: no mounts at all

    try:
        store_root.mkdir(parents=True, exist_ok=True)
        probe = Path(store_root) / f"tmp-probe-{uuid.uuid4().hex}"
        for sub in ("lower", "upper", "work", "merged"):
            (probe / sub).mkdir(parents=True)
    except OSError:
        return ""
    try:
        try:
            syscalls.mount("overlay", probe / "merged", "overlay", 0, _overlay_options(
                [probe / "lower"], probe / "upper", probe / "work"))
            syscalls.umount(probe / "merged")
            return "kernel"
        except OSError:
            pass
        fuse = shutil.which(FUSE_OVERLAYFS)
        if fuse is None:
            return ""
        try:
            _fuse_mount(fuse, probe / "merged", [probe / "lower"], probe / "upper", probe / "work",
                        volatile=False)
            syscalls.umount(probe / "merged")
            return fuse
        except OSError:
            return ""
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def _overlay_options(lowers: Sequence[Path], upper: Path, work: Path) -> str:
    lower = ":".join(os.fspath(p) for p in lowers)
    # in a user namespace overlay keeps its metadata in user.overlay.* xattrs, and
    # follows no redirects (userxattr refuses redirect_dir=off, which may follow them)
    features = ("userxattr,redirect_dir=nofollow" if userns.inside() else "redirect_dir=off")
    return (f"lowerdir={lower},upperdir={upper},workdir={work},"
            f"{features},metacopy=off,index=off")


def _fuse_mount(program: str, target: Path, lowers: Sequence[Path], upper: Path, work: Path,
                *, volatile: bool) -> None:
    """Mount with fuse-overlayfs, which returns once the mount is up; raises OSError."""
    import subprocess

    lower = ":".join(os.fspath(p) for p in lowers)
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    if volatile:
        options += ",fsync=0"
    proc = subprocess.run([program, "-o", options, os.fspath(target)], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        detail = "; ".join(line for line in proc.stderr.splitlines()
                           if "unknown argument ignored" not in line)
        raise OSError(errno.EIO, f"fuse-overlayfs: {detail or f'exit status {proc.returncode}'}")


def mount_overlay(target: Path, lowers: Sequence[Path], upper: Path, work: Path, *,
                  layers: Path, volatile: bool) -> None:
    """Mount an overlay of ``lowers`` (top first) at ``target``. When absolute paths do
    not fit mount(2)'s page, the lowers (entries of the layer cache ``layers``) go by
    short links in ``layers/.links`` and every path is relative to it, resolved by a
    thread of its own with a private working directory (``unshare(CLONE_FS)``) so the
    process's never changes under other threads. Raises OSError."""
    mounter = _mounter(layers.parent)
    if mounter not in ("", "kernel"):
        _fuse_mount(mounter, target, lowers, upper, work, volatile=volatile)
        return
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
    def __init__(self, store: StoreLike, driver: str, base: Path, *,
                 persistent: bool = False) -> None:
        self.store = store
        self.driver = driver
        self.base = base
        self.root = base / "merged" if driver == "overlay" else base / "root"
        self.lowers: list[Path] = []  # top first
        self.persistent = persistent  # a working container's: kept across processes
        self._layers: list[Layer] = []  # an attached root's, to extract again when pruned
        self._snapshot: dict[str, _Meta] | None = {}
        self._mounted = False
        self._closed = False

    @classmethod
    def create(
        cls,
        store: StoreLike,
        layers: Sequence[Layer],
        *,
        driver: str | None = None,
    ) -> Workspace:
        """Assemble the root from ``layers``, bottom first."""
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
                workspace.lowers = [cache_layer(store, layer) for layer in reversed(layers)]
                workspace._mount()
            else:
                workspace.root.mkdir()
                for layer in layers:
                    workspace.apply(layer)
                workspace._snapshot = _snapshot(workspace.root)
        except BaseException:
            workspace.close()
            raise
        return workspace

    @classmethod
    def prepare(cls, store: StoreLike, layers: Sequence[Layer], base: Path, *,
                driver: str) -> None:
        """Lay out a root that outlives this process in ``base`` (a working container's):
        with overlay, the layers in the layer cache and an empty upper directory; with
        vfs, the layers applied in ``root/`` and a snapshot of it saved, so ``attach``
        later sees the changes made since."""
        workspace = cls(store, driver, base, persistent=True)
        if driver == "overlay":
            for layer in layers:
                cache_layer(store, layer)
            for sub in ("upper", "work", "merged"):
                (base / sub).mkdir()
            return
        workspace.root.mkdir()
        for layer in layers:
            workspace.apply(layer)
        write_atomic(base / _SNAPSHOT, pickle.dumps(_snapshot(workspace.root)))

    @classmethod
    def attach(cls, store: StoreLike, base: Path, driver: str,
               layers: Sequence[Layer]) -> Workspace:
        """The root ``prepare`` laid out in ``base`` on ``layers``; ``mount`` it to use it
        (an overlay root another process mounted stays so)."""
        workspace = cls(store, driver, base, persistent=True)
        workspace._snapshot = None  # read from the saved one when needed
        if driver == "overlay":
            workspace.lowers = [layer_cache_dir(Path(store.root), layer.diff_id)
                                for layer in reversed(layers)]
            workspace._mounted = os.path.ismount(workspace.root)
        workspace._layers = list(layers)
        return workspace

    @property
    def mounted(self) -> bool:
        """Whether the root can be used (a vfs root always can)."""
        return self.driver != "overlay" or self._mounted

    def mount(self) -> Path:
        """Mount an attached overlay root (its layers extracted again if a prune removed
        them); the root."""
        if self.driver == "overlay" and not self._mounted:
            for layer in self._layers:
                cache_layer(self.store, layer)
            (self.base / "work").mkdir(exist_ok=True)
            self._mount()
        return self.root

    def unmount(self) -> None:
        """Unmount an attached overlay root (detached when it is busy); it stays."""

        if self.driver == "overlay" and (self._mounted or os.path.ismount(self.root)):
            self._mounted = False
            try:
                syscalls.umount(self.root)
            except OSError:
                syscalls.umount(self.root, syscalls.MNT_DETACH)

    # overlay plumbing

    def _mount(self) -> None:
        upper, work = self.base / "upper", self.base / "work"
        for path in (upper, work, self.root):
            path.mkdir(exist_ok=True)
        # A layer may sit in the stack twice (the same COPY in two steps); overlay
        # refuses a repeated lowerdir, and the upper copy makes the lower one moot.
        lowers = list(dict.fromkeys(self.lowers)) or [self._empty_lower()]
        try:  # a persistent upper directory is not volatile: it is kept across processes
            mount_overlay(self.root, lowers, upper, work, layers=Path(self.store.root) / "layers",
                          volatile=VOLATILE and not self.persistent)
        except OSError as exc:
            raise StoreError(f"mounting overlay for {self.root}: {exc.strerror}") from exc
        self._mounted = True

    def _empty_lower(self) -> Path:
        empty = self.base / "empty"
        empty.mkdir(exist_ok=True)
        return empty

    def _unmount(self) -> None:
        """Unmount; a mount still in use is detached, and StoreError says so."""

        if self._mounted:
            self._mounted = False
            try:
                syscalls.umount(self.root)
            except OSError as exc:
                syscalls.umount(self.root, syscalls.MNT_DETACH)
                raise StoreError(f"unmounting {self.root}: {exc.strerror}; a process may still "
                                 "be writing to it") from exc

    # the public API

    def apply(self, layer: Layer) -> None:
        """Extract ``layer`` onto the root, applying its whiteouts (vfs, or on top of an
        overlay's upper directory: the changes then include it)."""
        with self.store.layout.open_blob(layer.digest) as blob:
            extract_layer(blob, layer.media_type, self.root, layer_digest=layer.digest,
                          diff_id=layer.diff_id, whiteouts="apply")
        record_verified(Path(self.store.root), layer.digest, layer.diff_id)

    @contextlib.contextmanager
    def preserved(self, paths: Sequence[str]) -> Iterator[None]:
        """Changes made under ``paths`` (directories in the root) while the block runs
        are undone when it ends, as Buildah does for VOLUMEs during RUN. With overlay
        the changes are the upper directory's entries there (removed, the lowers show
        through again); with vfs the directories are copied aside and put back."""
        if not paths:
            yield
            return
        targets = [resolve_in_root(self.root, path).relative_to(self.root) for path in paths]
        if self.driver == "overlay":
            try:
                yield
            finally:  # the mount is made again: it must not serve what was removed
                self._unmount()
                for rel in targets:
                    _remove_entry(self.base / "upper" / rel)
                shutil.rmtree(self.base / "work", ignore_errors=True)  # volatile's marker
                self._mount()
            return
        saved = Path(tempfile.mkdtemp(prefix="volumes-", dir=self.base))
        try:
            for index, rel in enumerate(targets):
                if os.path.isdir(self.root / rel):
                    _copy_tree(self.root / rel, saved / str(index))
            yield
        finally:
            for index, rel in enumerate(targets):
                _remove_entry(self.root / rel)
                if os.path.lexists(saved / str(index)):
                    os.rename(saved / str(index), self.root / rel)
            shutil.rmtree(saved, ignore_errors=True)

    def changes(self) -> list[LayerEntry]:
        """What changed since creation or the last ``commit()``, sorted by path."""
        if self.driver == "overlay":
            fuse = _mounter(Path(self.store.root)) not in ("", "kernel")
            entries = _OverlayDiff(self.base / "upper", self.lowers, fuse).entries()
        else:
            if self._snapshot is None:
                self._snapshot = pickle.loads((self.base / _SNAPSHOT).read_bytes())
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

    return LayerEntry(path, source)


def _whiteout_path(rel: str) -> str:
    parent, _, name = rel.rpartition("/")
    return f"{parent}/{WHITEOUT_PREFIX}{name}" if parent else WHITEOUT_PREFIX + name


class _OverlayDiff:
    """Reads an overlay upper directory as OCI layer entries. ``fuse``: fuse-overlayfs
    mounted it, and may have written whiteouts as ``.wh.NAME`` files."""
    def __init__(self, upper: Path, lowers: Sequence[Path], fuse: bool = False) -> None:
        self.upper = upper
        self.lowers = lowers
        self.fuse = fuse

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
            if self.fuse and child.name.startswith(WHITEOUT_PREFIX) and \
                    not stat.S_ISDIR(st.st_mode) and st.st_size == 0:
                # fuse-overlayfs's whiteouts where it cannot make 0:0 devices; a file of
                # that name with content is refused when the layer is written
                out.append(_entry(path, None))
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
    for name in OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
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


def _remove_entry(path: Path) -> None:
    """Remove whatever is at ``path`` (a directory with its contents)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _copy_tree(source: Path, dest: Path) -> None:
    """A copy keeping modes, owners, times, links and special files (``cp -a``)."""
    subprocess.run(["cp", "-a", "--", os.fspath(source), os.fspath(dest)], check=True,
                   capture_output=True)
