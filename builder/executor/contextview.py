"""The context as a ``RUN --mount=type=bind`` from it shows it: without what the ignore
file excludes.

What the ignore file excludes is absent for every purpose (BuildKit never sends it to
the build), so a bind mount of the context, or of a directory in it, must not show it
either. ``mount_source`` resolves the mount's source inside the context as COPY does
(symlinks followed, never to or through an excluded path) and lists the excluded
entries below it; when there are any, ``view`` makes a directory without them for the
step's lifetime:

* as root, an overlay with the source as its lower directory and a whiteout for each
  excluded entry in a fresh upper directory: its cost depends only on the number of
  excluded entries, and writes (``rw`` mounts) land in the upper directory, which is
  thrown away;
* otherwise (an ordinary user, or overlay does not mount), a copy of the visible tree:
  directories made, everything else hard-linked when the mount is read-only (copied
  when it is writable, or when a link is refused).

A read-only source with nothing excluded below it is mounted as it is; a writable one
(``rw``, whose writes are thrown away) gets a view too, so its private copy is an
overlay where one mounts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from builder.context import context_path, resolve_in_root
from builder.errors import ContextError

if TYPE_CHECKING:
    from builder.executor.copier import SourceTree

__all__ = ["hidden_below", "mount_source", "view"]


def mount_source(tree: SourceTree, source: str, target: str) -> tuple[Path, tuple[str, ...]]:
    """(host path, excluded entries below it relative to it) of a bind mount's ``source``
    in the context ``tree``; a source that is missing, or excluded, is a ContextError
    (the same for a symlink to either)."""
    rel = context_path(source or ".")
    path = resolve_in_root(tree.root, rel, visible=tree.hides)
    real = path.relative_to(tree.root).as_posix()
    real = "" if real == "." else real
    if not os.path.lexists(path) or not tree.visible(real):
        raise ContextError(f"mounting {target}: source {source or '/'!r} not found")
    if tree.included is None or not path.is_dir():
        return path, ()
    return path, hidden_below(tree, real)


def hidden_below(tree: SourceTree, rel: str) -> tuple[str, ...]:
    """The excluded entries below the context directory ``rel`` whose parent is not
    excluded (leaving them out leaves out everything excluded), relative to ``rel``.
    Only directories that are kept are listed."""
    found: list[str] = []
    stack = [rel]
    while stack:
        directory = stack.pop()
        with os.scandir(tree.root / directory if directory else tree.root) as entries:
            for entry in entries:
                child = f"{directory}/{entry.name}" if directory else entry.name
                if not tree.visible(child):
                    found.append(child[len(rel) + 1:] if rel else child)
                elif entry.is_dir(follow_symlinks=False):
                    stack.append(child)
    return tuple(sorted(found))


@contextlib.contextmanager
def view(source: Path, hidden: tuple[str, ...], *, writable: bool) -> Iterator[Path]:
    """A directory showing ``source`` without the ``hidden`` entries (paths relative to
    it), for as long as the context lasts (see the module docstring)."""
    scratch = Path(tempfile.mkdtemp(prefix="pybuild-view-"))
    try:
        with _overlay(scratch, source, hidden) as merged:
            if merged is not None:
                yield merged
                return
        copy = scratch / "copy"
        _filtered_copy(source, copy, set(hidden), link=not writable)
        yield copy
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def _overlay(scratch: Path, source: Path, hidden: tuple[str, ...]) -> Iterator[Path | None]:
    """An overlay of ``source`` with a whiteout for each hidden entry, mounted in
    ``scratch`` (its upper directory on a tmpfs of its own, so that nothing is written
    to disk and unmounting cleans up); None where it cannot be mounted."""
    if os.geteuid() != 0:
        yield None
        return
    from builder.rootfs import syscalls

    layer, merged = scratch / "layer", scratch / "merged"
    layer.mkdir()
    merged.mkdir()
    os.symlink(os.fspath(source), scratch / "lower")  # no ',' or ':' of the path in options
    mounted: list[Path] = []
    try:
        try:
            syscalls.mount("tmpfs", layer, "tmpfs", syscalls.MS_NOSUID, "mode=700")
            mounted.append(layer)
            upper, work = layer / "upper", layer / "work"
            work.mkdir()
            made: dict[str, os.stat_result] = {"": os.lstat(source)}
            _make_dir(upper, made[""])
            for rel in hidden:
                parent = rel.rpartition("/")[0]
                parts = parent.split("/") if parent else []
                for depth in range(1, len(parts) + 1):  # as the source's: the upper wins
                    sub = "/".join(parts[:depth])
                    if sub not in made:
                        made[sub] = os.lstat(source / sub)
                        _make_dir(upper / sub, made[sub])
                os.mknod(upper / rel, stat.S_IFCHR | 0o600, os.makedev(0, 0))
            for sub, st in sorted(made.items(), reverse=True):
                os.utime(upper / sub if sub else upper, ns=(st.st_atime_ns, st.st_mtime_ns))
            syscalls.mount("overlay", merged, "overlay", 0,
                           f"lowerdir={scratch / 'lower'},upperdir={upper},workdir={work},"
                           "redirect_dir=off,metacopy=off,index=off")
            mounted.append(merged)
        except OSError:
            yield None
            return
        yield merged
    finally:
        for point in reversed(mounted):
            with contextlib.suppress(OSError):
                syscalls.umount(point, syscalls.MNT_DETACH)


def _filtered_copy(source: Path, dest: Path, hidden: set[str], *, link: bool) -> None:
    """``source`` copied to ``dest`` without ``hidden``: directories made (mode, owner and
    times kept), other entries hard-linked when ``link`` and allowed, else copied."""
    dirs: list[tuple[Path, os.stat_result]] = []
    stack = [""]
    _make_dir(dest, os.lstat(source))
    dirs.append((dest, os.lstat(source)))
    while stack:
        rel = stack.pop()
        with os.scandir(source / rel if rel else source) as entries:
            for entry in entries:
                child = f"{rel}/{entry.name}" if rel else entry.name
                if child in hidden:
                    continue
                st = entry.stat(follow_symlinks=False)
                target = dest / child
                if stat.S_ISDIR(st.st_mode):
                    _make_dir(target, st)
                    dirs.append((target, st))
                    stack.append(child)
                else:
                    _place(Path(entry.path), target, st, link)
    for directory, st in reversed(dirs):
        os.utime(directory, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _make_dir(path: Path, st: os.stat_result) -> None:
    os.mkdir(path, 0o700)
    with contextlib.suppress(PermissionError):
        os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)
    os.chmod(path, stat.S_IMODE(st.st_mode))


def _place(source: Path, target: Path, st: os.stat_result, link: bool) -> None:
    if link:
        try:
            os.link(source, target, follow_symlinks=False)
            return
        except OSError:
            pass  # another file system, or a file the user may not link (protected_hardlinks)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(source), target)
    elif stat.S_ISREG(st.st_mode):
        shutil.copy2(source, target, follow_symlinks=False)
    else:  # fifos, sockets, devices: an empty file stands in when one cannot be made
        try:
            os.mknod(target, st.st_mode, st.st_rdev)
        except OSError:
            target.touch()
