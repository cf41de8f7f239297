"""Cache keys: one sha256 per build step from everything that decides its result.

A key covers the parent (the previous step's key and the layers so far), the
step's expanded inputs and, for COPY/ADD and bind mounts from the context,
the content of the files used: relative path, type, mode, owner and content
digest (symlinks: their target), never mtimes.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from builder import replay
from builder.cache.statcache import StatCache, digest_file


def step_key(parent: str, *parts: Any) -> str:
    """The key of a step with ``parts`` (JSON-able) after ``parent``."""
    data = json.dumps([parent, *parts], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(data.encode("utf-8", "surrogateescape")).hexdigest()


def layers_identity(diff_ids: Iterable[str]) -> str:
    """The identity of a root filesystem: its layers' diff_ids, in order."""
    return hashlib.sha256(" ".join(diff_ids).encode()).hexdigest()


def _entry(rel: str, path: str, st: os.stat_result, stats: StatCache | None) -> str:
    mode = st.st_mode
    head = f"{rel}\0{stat.S_IFMT(mode):o}\0{stat.S_IMODE(mode):o}\0{st.st_uid}\0{st.st_gid}"
    if stat.S_ISREG(mode):
        digest = stats.digest(rel, path, st) if stats is not None else digest_file(path)
        return f"{head}\0{digest}"
    if stat.S_ISLNK(mode):
        return f"{head}\0{os.readlink(path)}"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return f"{head}\0{st.st_rdev}"
    return head


def paths_digest(root: str, rels: Iterable[str], *, visible: Any = None,
                 stats: StatCache | None = None) -> str:
    """Digest of the given paths under ``root`` and of everything below the directories
    among them, as COPY reads them: ``visible(rel)`` filters paths (the ignore file;
    what it hides is never read), symlinks are not followed except for a top-level one,
    followed inside ``root`` and never to or through a hidden path, whose target is
    hashed as well (a link whose target is missing or hidden counts as dangling)."""
    from builder.rootfs.paths import resolve_in_root

    lines: list[str | _Item] = []
    for top in sorted(set(rels)):
        replay.watch_parents(root, top)
        try:  # parents that are symlinks are followed inside the root, never out of it
            path = os.fspath(resolve_in_root(Path(root), top, follow_last=False,
                                             visible=visible)) if top else root
            if visible is not None and path != root and not visible(
                    os.path.relpath(path, root)):
                raise FileNotFoundError(path)  # hidden: as if it were not there
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            path = os.path.join(root, top)
            replay.watch(path)
            lines.append(f"{top}\0missing")
            continue
        replay.watch(path, st)
        below = top  # the directory walked, relative to the root
        if stat.S_ISLNK(st.st_mode):
            lines.append(f"{top}\0->\0{os.readlink(path)}")
            try:
                target = resolve_in_root(Path(root), top, visible=visible)
                real = target.relative_to(os.path.abspath(root)).as_posix()
                real = "" if real == "." else real
                followed = os.lstat(target) if visible is None or visible(real) else None
            except OSError:  # missing, or a loop
                followed = None
            if followed is None:
                lines.append(f"{top}\0dangling")
                continue
            path, st, below = os.fspath(target), followed, real
            replay.watch(path, st)
        lines.append((top, path, st, stats))
        if stat.S_ISDIR(st.st_mode):
            _walk(lines, path, below, visible, stats)
    return _digest(lines)


_Item = tuple[str, str, os.stat_result, "StatCache | None"]  # rel, path, lstat, stat cache
_PARALLEL_BYTES = 16 << 20  # below this, hashing on threads costs more than it saves
_PARALLEL_FILE = 64 << 10  # smaller files are hashed in order: a thread's hand-off costs more


def _digest(lines: list[str | _Item]) -> str:
    """sha256 over the lines, file contents hashed on all cores when there is much to read
    (hashlib releases the GIL)."""
    files = [x for x in lines if not isinstance(x, str) and stat.S_ISREG(x[2].st_mode)
             and x[2].st_size >= _PARALLEL_FILE]
    done: dict[int, str] = {}
    if len(files) > 1 and sum(x[2].st_size for x in files) >= _PARALLEL_BYTES:

        with ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="hash") as pool:
            done = dict(zip(map(id, files), pool.map(lambda item: _entry(*item), files),
                            strict=True))
    small = [x for x in lines if not isinstance(x, str) and stat.S_ISREG(x[2].st_mode)
             and x[2].st_size < _PARALLEL_FILE]
    stop = None
    if _cold([x[1] for x in small]):  # then read ahead what the stat cache cannot answer
        unknown = [x[1] for x in small if x[3] is None or not x[3].known(x[0], x[2])]
        stop = _prefetch(unknown) if unknown else None
    try:
        h = hashlib.sha256()
        for item in lines:
            text = item if isinstance(item, str) else done.get(id(item)) or _entry(*item)
            h.update(text.encode("utf-8", "surrogateescape") + b"\n")
        return h.hexdigest()
    finally:
        if stop is not None:
            stop()


_PROBE = 32  # small files sampled for a cold page cache
_PREFETCH_THREADS = 4  # more threads contend for the GIL (4 beat 2 and 8 on 50,000 files)


def _cold(paths: list[str]) -> bool:
    """Whether many of ``paths`` are not in the page cache (a sample, read with
    RWF_NOWAIT, which fails rather than wait for the disk)."""
    if len(paths) < 8 * _PROBE or not hasattr(os, "RWF_NOWAIT"):
        return False
    missing = 0
    buffer = bytearray(1)
    for path in paths[:: len(paths) // _PROBE][:_PROBE]:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            os.preadv(fd, [buffer], 0, os.RWF_NOWAIT)
        except BlockingIOError:
            missing += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    return missing * 4 >= _PROBE


def _prefetch(paths: list[str]) -> Callable[[], None]:
    """Ask the kernel to read ``paths`` into the page cache from a few threads, ahead
    of the hashing that reads them one by one: with a cold cache the disk then has
    many reads to do at once instead of one. Returns what stops them."""
    stop = threading.Event()

    def warm(share: list[str]) -> None:
        for path in share:
            if stop.is_set():
                return
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            except OSError:
                pass
            finally:
                os.close(fd)

    threads = [threading.Thread(target=warm, args=(paths[i::_PREFETCH_THREADS],), daemon=True,
                                name="prefetch") for i in range(_PREFETCH_THREADS)]
    for thread in threads:
        thread.start()

    def finish() -> None:
        stop.set()
        for thread in threads:
            thread.join()

    return finish


def _walk(lines: list[str | _Item], directory: str, rel: str, visible: Any,
          stats: StatCache | None) -> None:
    stack = [(directory, rel)]
    while stack:
        current, prefix = stack.pop()
        with os.scandir(current) as it:
            children = sorted(it, key=lambda e: e.name)
        below: list[tuple[str, str]] = []
        for child in children:
            child_rel = f"{prefix}/{child.name}" if prefix else child.name
            if visible is not None and not visible(child_rel):
                continue
            st = child.stat(follow_symlinks=False)
            replay.watch(child.path, st)
            lines.append((child_rel, child.path, st, stats))
            if stat.S_ISDIR(st.st_mode):
                below.append((child.path, child_rel))
        stack.extend(reversed(below))
