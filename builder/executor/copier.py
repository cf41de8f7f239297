"""COPY and ADD: put files from the context, another root, a heredoc or a URL into a root.

Everything here works on plain directories. Source paths never leave their
tree (``..`` is refused, symlinks are resolved inside it) and destination
paths are resolved inside the target root as if it were ``/``. Errors are
``StepError`` without a location; the stage executor attaches it.
"""

from __future__ import annotations

import calendar
import email.utils
import errno
import hashlib
import os
import posixpath
import re
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from builder import replay, userns
from builder.context import context_path, resolve_in_root
from builder.errors import ContextError, LayerError, PatternError, StepError
from builder.globs import has_magic
from builder.globs import match as glob_match
from builder.ignore import IgnoreMatcher
from builder.image.layer import LayerEntry, Override
from builder.rootfs.extract import archive_format, extract_archive

_URL = re.compile(r"^https?://", re.IGNORECASE)
_CHMOD_CLAUSE = re.compile(r"^([ugoa]*)([-+=])([rwxXst]*)$")
_DOWNLOAD_MODE = 0o600
_HEREDOC_MODE = 0o644
_DIR_MODE = 0o755
_SMALL_FILE = 1 << 20  # read whole; larger files are copied by sendfile


@dataclass(frozen=True)
class CopyRequest:
    """One COPY/ADD step with every word already expanded."""

    keyword: str
    sources: tuple[str, ...]
    dest: str  # absolute inside the root (WORKDIR applied)
    dest_is_dir: bool  # the written destination ended with "/" (or ".")
    owner: tuple[int, int] | None = None  # --chown
    chmod: str | None = None
    preserve_owner: bool = False  # without --chown, keep the sources' owners (--from)
    parents: bool = False
    excludes: tuple[str, ...] = ()
    heredocs: dict[str, bytes] = field(default_factory=dict)
    checksum: str | None = None
    timestamp: int | None = None  # mtime for files made from heredocs and downloads
    keep_git_dir: bool = False  # ADD <git URL> --keep-git-dir

    @property
    def is_add(self) -> bool:
        return self.keyword == "ADD"


@dataclass(frozen=True)
class SourceTree:
    """Where sources come from: the context (with the ignore file) or another root."""
    root: Path
    included: frozenset[str] | None = None  # None: every path is visible
    is_context: bool = False
    ignore_file: str | None = None

    def visible(self, rel: str) -> bool:
        return self.included is None or rel == "" or rel in self.included

    @property
    def hides(self) -> Callable[[str], bool] | None:
        """``visible`` for path resolution, or None when nothing is hidden."""
        return self.visible if self.included is not None else None

    def follow(self, rel: str) -> Path | None:
        """The host path of source ``rel`` with a symlink in its last part followed
        inside the tree, never to or through what the ignore file excludes; None when
        nothing (visible) is there. ``rel`` itself must be visible and have no
        symlinked parents (``_without_linked_parents``)."""
        path = self.root / rel if rel else self.root
        if not path.is_symlink():
            return path if os.path.lexists(path) else None
        try:
            target = resolve_in_root(self.root, rel, visible=self.hides)
        except ContextError:  # a loop
            return None
        real = target.relative_to(self.root).as_posix()
        if not os.path.lexists(target) or not self.visible("" if real == "." else real):
            return None
        return target

    def watch(self, path: Path) -> None:
        """Tell ``builder.replay`` the build looked at ``path`` (of the context only: other
        trees are stages of this build)."""
        if self.is_context:
            replay.watch(path)

    def watch_parents(self, rel: str) -> None:
        """Likewise for the directories between the root and ``rel``."""
        if self.is_context:
            replay.watch_parents(os.fspath(self.root), rel)


def context_tree(context: Path, ignore: object | None) -> SourceTree:
    """The context as a source tree, minus what the ignore matcher excludes.

    As in Buildah, an excluded directory is left out whole, even when an
    exception pattern would re-include something below it.
    """
    if ignore is None or not ignore:
        return SourceTree(context, None, True)
    excluded = ignore.excluded  # type: ignore[attr-defined]
    walk = ignore.walk  # type: ignore[attr-defined]
    walked = [(str(rel).removeprefix("./"), st) for rel, st in walk(context)]
    kept = [rel for rel, _ in walked]
    pruned = {rel for rel, st in walked if stat.S_ISDIR(st.st_mode) and excluded(rel)}
    included = frozenset(
        rel for rel in kept
        if rel not in pruned and not any(rel.startswith(d + "/") for d in pruned)
    )
    path = getattr(ignore, "source", None)
    return SourceTree(context, included, True, str(path) if path else None)


def go_match(pattern: str, name: str) -> bool:
    """Go's filepath.Match (``*`` and ``?`` never match ``/``); StepError for a pattern
    Go rejects."""
    try:
        return glob_match(pattern, name)
    except PatternError as exc:
        raise StepError(f"matching {pattern!r}: {exc}") from None


def _exclusion(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    """--exclude patterns, matched like ignore-file patterns against source-relative paths."""
    matcher = IgnoreMatcher(patterns)
    return matcher.excluded


# chown / chmod


def check_chmod(spec: str) -> None:
    """Reject a --chmod that is neither octal nor symbolic (``u+x,go-w``)."""
    if re.fullmatch(r"[0-7]{1,4}", spec):
        return
    if all(_CHMOD_CLAUSE.match(c) for c in spec.split(",")) and spec:
        return
    raise StepError(f"parsing --chmod={spec}: invalid mode")


def apply_chmod(spec: str, mode: int, is_dir: bool) -> int:
    """The permission bits ``spec`` gives a file whose current mode is ``mode``."""
    if re.fullmatch(r"[0-7]{1,4}", spec):
        return int(spec, 8)
    perm = stat.S_IMODE(mode)
    for clause in spec.split(","):
        m = _CHMOD_CLAUSE.match(clause)
        assert m is not None
        who, op, what = m.groups()
        who = who.replace("a", "ugo") or "ugo"
        bits = 0
        for w in who:
            shift = {"u": 6, "g": 3, "o": 0}[w]
            for p in what:
                if p == "r":
                    bits |= 4 << shift
                elif p == "w":
                    bits |= 2 << shift
                elif p == "x" or (p == "X" and (is_dir or perm & 0o111)):
                    bits |= 1 << shift
                elif p == "s" and w in "ug":
                    bits |= stat.S_ISUID if w == "u" else stat.S_ISGID
                elif p == "t":
                    bits |= stat.S_ISVTX
        if op == "+":
            perm |= bits
        elif op == "-":
            perm &= ~bits
        else:
            mask = 0
            for w in who:
                mask |= 0o7 << {"u": 6, "g": 3, "o": 0}[w]
            perm = (perm & ~mask) | bits
    return perm


def _file_mode(chmod: str | None, st_mode: int, is_dir: bool) -> int:
    """The permission bits a copied file gets: its own, or what ``chmod`` gives it."""
    if chmod is None:
        return stat.S_IMODE(st_mode)
    return apply_chmod(chmod, st_mode, is_dir)


# the copy itself


@dataclass
class _Ownership:
    """Owners and modes of what a copy makes, as Buildah gives them: what is copied gets
    ``owner`` (``--chown``), else its own owner when ``preserve`` (``--from`` a stage or
    image), else 0:0; every directory the copy creates, parents and destination alike,
    gets ``owner`` or 0:0, mode 0755; ``chmod`` (``--chmod``) applies to what is copied."""
    owner: tuple[int, int] | None
    chmod: str | None
    preserve: bool

    def mode(self, st_mode: int, is_dir: bool) -> int:
        return _file_mode(self.chmod, st_mode, is_dir)

    def made(self) -> tuple[int, int]:
        """The owner of directories the copy creates."""
        return self.owner or (0, 0)

    def copied(self, st: os.stat_result) -> tuple[int, int]:
        """The owner of what is copied from ``st``."""
        if self.owner is not None:
            return self.owner
        return (st.st_uid, st.st_gid) if self.preserve else (0, 0)


@dataclass(kw_only=True)
class _Writer(_Ownership):
    """Writes entries under a root, applying owner and chmod (``_Ownership``), preserving
    hard links.

    Paths are plain strings: this runs once per copied file. A path's parents are
    resolved inside the root before anything is made there (``_real``), so a symlink in
    the root (``/app/a -> /srv``) leads below the root, never to the host's ``/srv``."""
    root: Path
    links: dict[tuple[int, int], str] = field(default_factory=dict)
    dirs: list[tuple[str, os.stat_result]] = field(default_factory=list)
    known: set[str] = field(default_factory=set)  # directories known to exist

    def _resolve_dir(self, path: str) -> str:
        """The directory ``path`` (under the root) with symlinks resolved inside the root."""
        if path in self.known:
            return path
        return os.fspath(resolve_in_root(self.root, os.path.relpath(path, self.root)))

    def _real(self, path: str) -> str:
        """``path`` with its parents resolved inside the root; the last part is kept."""
        if os.path.normpath(path) == os.path.normpath(self.root):
            return path
        parent, name = os.path.split(path.rstrip("/"))
        return os.path.join(self._resolve_dir(parent), name)

    def ensure_dir(self, path: str, st: os.stat_result | None = None) -> None:
        """Make ``path`` a directory (replacing a non-directory): with ``st``, a copied
        directory with its metadata; without, a created one (0755)."""
        path = self._real(path)
        try:
            current: os.stat_result | None = os.lstat(path)
        except FileNotFoundError:
            current = None
        if current is not None and not stat.S_ISDIR(current.st_mode):
            self.remove_existing(path)
            current = None
        if current is None:
            self.make_parents(os.path.dirname(path))
            os.mkdir(path)
            os.lchown(path, *(self.copied(st) if st else self.made()))
            os.chmod(path, self.mode(st.st_mode, True) if st else _DIR_MODE)
        elif st is not None:
            os.lchown(path, *self.copied(st))
            os.chmod(path, self.mode(st.st_mode, True))
        self.known.add(path)
        if st is not None:
            self.dirs.append((path, st))

    def make_parents(self, path: str) -> None:
        if path in self.known:
            return
        path = self._resolve_dir(path)
        missing: list[str] = []
        probe = path
        while not os.path.lexists(probe):
            missing.append(probe)
            probe = os.path.dirname(probe)
        for directory in reversed(missing):
            os.mkdir(directory)
            os.lchown(directory, *self.made())
            os.chmod(directory, _DIR_MODE)
        if missing or os.path.isdir(path):
            self.known.add(path)

    def remove_existing(self, path: str) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path)
            below = path + "/"
            self.dirs = [d for d in self.dirs if d[0] != path and not d[0].startswith(below)]
        else:
            os.unlink(path)
        if not stat.S_ISREG(st.st_mode):
            below = path + "/"
            self.known = {k for k in self.known if k != path and not k.startswith(below)}

    def _create(self, path: str, make: Callable[[], None]) -> None:
        """Run ``make`` to create ``path``, replacing whatever is there."""
        try:
            make()
        except FileExistsError:
            self.remove_existing(path)
            make()

    def _open_new(self, path: str) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            return os.open(path, flags, 0o600)
        except FileExistsError:
            self.remove_existing(path)
            return os.open(path, flags, 0o600)

    def put(self, source: str, st: os.stat_result, dest: str) -> None:
        """Copy one non-directory entry (file, symlink, device, fifo)."""
        dest = self._real(dest)
        self.make_parents(os.path.dirname(dest))
        mode = st.st_mode
        key = (st.st_dev, st.st_ino)
        linked = st.st_nlink > 1 and stat.S_ISREG(mode)
        if linked and key in self.links:
            first = self.links[key]
            self._create(dest, lambda: os.link(first, dest))
            return
        if stat.S_ISLNK(mode):
            target = os.readlink(source)
            self._create(dest, lambda: os.symlink(target, dest))
            os.lchown(dest, *self.copied(st))
            os.utime(dest, ns=(st.st_mtime_ns, st.st_mtime_ns), follow_symlinks=False)
            return
        if stat.S_ISREG(mode):
            src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                out = self._open_new(dest)
                try:
                    _copy_data(src, out, st.st_size)
                    self._finish_file(out, self.mode(mode, False), st.st_mtime_ns,
                                      self.copied(st))
                finally:
                    os.close(out)
            finally:
                os.close(src)
            if linked:
                self.links[key] = dest
            return
        self._create(dest, lambda: os.mknod(dest, mode, st.st_rdev))
        os.chown(dest, *self.copied(st))
        os.chmod(dest, self.mode(mode, False))
        os.utime(dest, ns=(st.st_mtime_ns, st.st_mtime_ns))

    def _finish_file(self, fd: int, mode: int, mtime_ns: int, owner: tuple[int, int]) -> None:
        os.fchown(fd, *owner)  # before the mode: chown clears set-id bits
        os.fchmod(fd, mode)
        os.utime(fd, ns=(mtime_ns, mtime_ns))

    def put_bytes(self, data: bytes, dest: str, mode: int, mtime: float) -> None:
        dest = self._real(dest)
        self.make_parents(os.path.dirname(dest))
        out = self._open_new(dest)
        try:
            _write_all(out, data)
            ns = int(mtime * 1_000_000_000)
            self._finish_file(out, self.mode(mode, False) if self.chmod else mode, ns,
                              self.made())
        finally:
            os.close(out)

    def finish(self) -> None:
        """Directory mtimes last, deepest first, since writing children moves them."""
        for path, st in sorted(self.dirs, key=lambda d: -d[0].count("/")):
            os.utime(path, ns=(st.st_mtime_ns, st.st_mtime_ns), follow_symlinks=False)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _copy_data(src: int, dst: int, size: int) -> None:
    """Copy a file between descriptors: a small one in one read, a large one in the kernel."""
    if size >= _SMALL_FILE:
        try:
            while os.sendfile(dst, src, None, _SMALL_FILE << 3) > 0:
                pass
            return
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
    while data := os.read(src, _SMALL_FILE):
        _write_all(dst, data)


@dataclass(kw_only=True)
class _Planned(_Ownership):
    """Stands in for ``_Writer`` on an empty root: records what the copy would create
    as layer entries read straight from the sources, writing nothing. Paths are
    absolute inside the root."""
    anchor: Path  # any existing directory: the on-disk stand-in for made directories
    nodes: dict[str, tuple[str, bool]] = field(default_factory=dict)  # (source, is_dir)
    metadata: dict[str, tuple[int, int, int, float | None]] = field(default_factory=dict)

    def _is_dir(self, path: str) -> bool:
        return path == "/" or (path in self.nodes and self.nodes[path][1])

    def _remove(self, path: str) -> None:
        if path in self.nodes and self.nodes[path][1]:
            below = path + "/"
            for key in [k for k in self.nodes if k.startswith(below)]:
                del self.nodes[key], self.metadata[key]
        self.nodes.pop(path, None)
        self.metadata.pop(path, None)

    def _mkdir(self, path: str, mode: int, owner: tuple[int, int]) -> None:
        self.nodes[path] = (os.fspath(self.anchor), True)
        self.metadata[path] = (mode, *owner, None)

    def ensure_dir(self, path: str, st: os.stat_result | None = None) -> None:
        if path in self.nodes and not self.nodes[path][1]:
            self._remove(path)
        if not self._is_dir(path):
            self.make_parents(posixpath.dirname(path))
            self._mkdir(path, self.mode(st.st_mode, True) if st else _DIR_MODE,
                        self.copied(st) if st else self.made())
        elif st is not None and path != "/":
            self.metadata[path] = (self.mode(st.st_mode, True), *self.copied(st), None)
        if st is not None and path != "/":
            self.metadata[path] = (*self.metadata[path][:3], st.st_mtime)

    def make_parents(self, path: str) -> None:
        missing: list[str] = []
        while path.strip("/") and path not in self.nodes:
            missing.append(path)
            path = posixpath.dirname(path)
        for directory in reversed(missing):
            self._mkdir(directory, _DIR_MODE, self.made())

    def put(self, source: str, st: os.stat_result, dest: str) -> None:
        self.make_parents(posixpath.dirname(dest))
        self._remove(dest)
        mode = 0o777 if stat.S_ISLNK(st.st_mode) else self.mode(st.st_mode, False)
        self.nodes[dest] = (source, False)
        self.metadata[dest] = (mode, *self.copied(st), st.st_mtime)

    def entries(self) -> list[LayerEntry]:

        now = time.time()
        out = []
        for path, (source, _) in self.nodes.items():
            mode, uid, gid, mtime = self.metadata[path]
            out.append(LayerEntry(path[1:], Path(source),
                                  Override(mode, uid, gid, now if mtime is None else mtime)))
        return sorted(out, key=lambda e: e.path)


def planned_entries(request: CopyRequest, tree: SourceTree) -> list[LayerEntry] | None:
    """The layer a plain COPY into an empty root makes, as entries read from the sources,
    so that the files need not be written first; None when the step is not that plain."""
    if (request.is_add or request.heredocs or request.parents or request.excludes
            or any(_URL.match(s) for s in request.sources)):
        return None
    sources = _expand_sources(tree, request)
    dest_is_dir = (request.dest_is_dir or len(sources) > 1
                   or (len(sources) == 1 and sources[0].is_dir))
    dest = "/" + posixpath.normpath("/" + request.dest).lstrip("/")
    dest_is_dir = dest_is_dir or dest == "/"
    planned = _Planned(request.owner, request.chmod, request.preserve_owner, anchor=tree.root)
    if dest_is_dir:
        planned.ensure_dir(dest)
    for source in sources:
        _copy_source(tree, source, dest, dest_is_dir, request, planned)
    return planned.entries()


def _walk(base: str, keep: Callable[[str], bool] | None = None
          ) -> Iterator[tuple[str, str, os.stat_result]]:
    """(relative path, absolute path, lstat) of everything below a directory, parents
    first; what ``keep`` refuses (the ignore file's exclusions) is left out, a directory
    with all it holds, unread."""
    stack = [""]
    while stack:
        sub = stack.pop()
        with os.scandir(f"{base}/{sub}" if sub else base) as it:
            entries = sorted(it, key=lambda e: e.name, reverse=True)
        for entry in entries:
            child = f"{sub}/{entry.name}" if sub else entry.name
            if keep is not None and not keep(child):
                continue
            st = entry.stat(follow_symlinks=False)
            yield child, entry.path, st
            if stat.S_ISDIR(st.st_mode):
                stack.append(child)


@dataclass(frozen=True)
class _Source:
    rel: str  # path in the source tree ("" is its root)
    keep: str  # the part of rel kept under the destination with --parents
    path: Path  # what is copied: rel's host path, a symlink in its last part followed

    @property
    def is_dir(self) -> bool:
        return self.path.is_dir() and not self.path.is_symlink()


def _split_pivot(source: str) -> tuple[str, str | None]:
    """``x/./y/a`` -> (path, "y/a"): with --parents, ``/./`` marks where kept paths start."""
    marker = source.find("/./")
    if marker < 0:
        return source, None
    return source, posixpath.normpath(source[marker + 3:]).lstrip("/")


def _expand_sources(tree: SourceTree, request: CopyRequest) -> list[_Source]:
    found: list[_Source] = []
    for raw in request.sources:
        if raw in request.heredocs or _URL.match(raw):
            continue
        path, pivot = _split_pivot(raw)
        try:
            rel = context_path(path)
        except ContextError as exc:
            raise StepError(str(exc)) from exc
        matches = _glob(tree, rel, request.parents) if has_magic(rel) else [rel]
        if has_magic(rel) and not matches:
            if len(request.sources) > 1:
                continue
            raise StepError(f"{request.keyword} failed: pattern {raw!r} matched nothing")
        for match in matches:
            tree.watch_parents(match)
            real = _without_linked_parents(tree, match, raw, request.keyword)
            followed = _check_exists(tree, real, raw, request.keyword)
            if pivot is not None:
                prefix = posixpath.normpath(raw[: raw.find("/./")] or ".").lstrip("./")
                keep = match[len(prefix):].lstrip("/") if prefix and prefix != "." else match
            else:
                keep = match
            found.append(_Source(real, keep, followed))
    if not found and not request.heredocs and not any(_URL.match(s) for s in request.sources):
        raise StepError(f"{request.keyword} failed: no source files were specified")
    return found


def source_paths(tree: SourceTree, request: CopyRequest) -> list[str]:
    """The paths in ``tree`` a COPY/ADD reads (globs and excludes applied)."""
    return [source.rel for source in _expand_sources(tree, request)]


def _without_linked_parents(tree: SourceTree, rel: str, raw: str, keyword: str) -> str:
    """``rel`` with symlinked parent directories resolved inside the tree, so that a
    link in the context never leads a source out of it (the last part is kept)."""
    if "/" not in rel:
        return rel
    try:
        real = resolve_in_root(tree.root, rel, follow_last=False, visible=tree.hides)
    except ContextError as exc:
        raise StepError(f"{keyword} failed: {raw!r}: {exc}") from exc
    return real.relative_to(tree.root).as_posix()


def _check_exists(tree: SourceTree, rel: str, raw: str, keyword: str) -> Path:
    """The host path a source copies (see ``SourceTree.follow``). A source that is not
    there, or that the ignore file excludes, is an error; so is a symlink whose target
    is either (as in Buildah and BuildKit, which never sends excluded files: the link
    dangles in the build's view)."""
    path = tree.root / rel if rel else tree.root
    if not os.path.lexists(path):
        raise StepError(f"{keyword} failed: {raw!r}: no such file or directory")
    if not tree.visible(rel):
        where = f" using {tree.ignore_file}" if tree.ignore_file else " by the ignore file"
        raise StepError(
            f"{keyword} failed: {raw!r}: no such file or directory (filtered out{where})"
        )
    followed = tree.follow(rel)
    if followed is None:
        raise StepError(f"{keyword} failed: {raw!r}: no such file or directory")
    return followed


def _glob(tree: SourceTree, pattern: str, double_star: bool = False) -> list[str]:
    """Paths of the tree matching a pattern, component by component, sorted. Each
    component is Go's filepath.Match, so ``**`` is one level, as in Buildah and BuildKit;
    with ``double_star`` (``COPY --parents``, BuildKit's pattern matching) a ``**``
    component matches any number of directories, none included."""
    current = [""]
    for part in pattern.split("/"):
        following: list[str] = []
        if double_star and part == "**":
            for base in current:
                following.extend(_directories_below(tree, base))
            current = list(dict.fromkeys(following))
            continue
        for base in current:
            directory = tree.root / base if base else tree.root
            tree.watch(directory)
            if not tree.visible(base) or not directory.is_dir() or directory.is_symlink():
                continue
            if not has_magic(part):
                candidate = f"{base}/{part}" if base else part
                tree.watch(tree.root / candidate)
                if os.path.lexists(tree.root / candidate):
                    following.append(candidate)
                continue
            for name in sorted(os.listdir(directory)):
                if go_match(part, name):
                    following.append(f"{base}/{name}" if base else name)
        current = following
    return [p for p in current if tree.visible(p)]


def _directories_below(tree: SourceTree, base: str) -> list[str]:
    """``base`` and every directory below it (not through links), parents first."""
    out = [base]
    directory = tree.root / base if base else tree.root
    if not directory.is_dir() or directory.is_symlink():
        return []
    tree.watch(directory)
    for rel, _, st in _walk(os.fspath(directory)):
        if stat.S_ISDIR(st.st_mode):
            path = f"{base}/{rel}" if base else rel
            if tree.visible(path):
                tree.watch(tree.root / path)
                out.append(path)
    return out


def copy_into(root: Path, request: CopyRequest, tree: SourceTree | None,
              fetch: Callable[[str, str | None], tuple[bytes, float]] | None = None) -> None:
    """Carry out one COPY/ADD into ``root``."""
    sources = _expand_sources(tree, request) if tree is not None else []
    urls = [s for s in request.sources if _URL.match(s)] if request.is_add else []
    heredocs = [s for s in request.sources if s in request.heredocs]
    count = len(sources) + len(urls) + len(heredocs)
    single_dir_source = (
        len(sources) == 1 and not urls and not heredocs and tree is not None
        and sources[0].is_dir
    )
    dest_is_dir = request.dest_is_dir or count > 1 or single_dir_source or request.parents
    try:
        dest = resolve_in_root(root, request.dest)
    except ContextError as exc:
        raise StepError(f"{request.keyword} failed: {exc}") from exc
    if not dest_is_dir and dest.is_dir():
        dest_is_dir = True
    writer = _Writer(request.owner, request.chmod, request.preserve_owner, root=root)
    target = os.fspath(dest)
    try:
        if dest_is_dir and not dest.is_dir():
            writer.ensure_dir(target)
        for source in sources:
            assert tree is not None
            _copy_source(tree, source, target, dest_is_dir, request, writer)
        for name in heredocs:
            mtime = request.timestamp if request.timestamp is not None else time.time()
            writer.put_bytes(request.heredocs[name], _join(target, name) if dest_is_dir else target,
                             _HEREDOC_MODE, mtime)
        for url in urls:
            if fetch is None:
                raise StepError(f"ADD failed: downloading {url!r}: no downloader")
            data, mtime = fetch(url, request.checksum)
            name = posixpath.basename(url.split("?", 1)[0].rstrip("/")) or "download"
            writer.put_bytes(data, _join(target, name) if dest_is_dir else target,
                             _DOWNLOAD_MODE, mtime)
        writer.finish()
    except OSError as exc:
        if exc.errno == errno.EINVAL and request.owner and userns.inside():  # an unmapped id
            where = exc.filename and "/" + os.path.relpath(exc.filename, root)
            raise userns.owner_error(f"{request.keyword} failed", where or request.dest,
                                     *request.owner) from None
        raise StepError(
            f"{request.keyword} failed: writing {exc.filename or request.dest}: {exc.strerror}"
        ) from exc


def _copy_source(tree: SourceTree, source: _Source, dest: str, dest_is_dir: bool,
                 request: CopyRequest, writer: _Writer | _Planned) -> None:
    path = source.path
    st = path.lstat()
    excluded = _exclusion(request.excludes) if request.excludes else None
    if request.parents and source.keep:
        dest = _join(dest, source.keep)
        writer.make_parents(posixpath.dirname(dest))
    if stat.S_ISDIR(st.st_mode):
        writer.ensure_dir(dest, st if request.parents and source.keep else None)
        real = path.relative_to(tree.root).as_posix()  # where a followed link led
        prefix = "" if real == "." else f"{real}/"
        keep = (lambda child: tree.visible(prefix + child)) if tree.included is not None \
            else None
        base = dest.rstrip("/") + "/"
        for child, absolute, child_st in _walk(os.fspath(path), keep):
            if excluded is not None and excluded(child):
                continue
            if stat.S_ISDIR(child_st.st_mode):
                writer.ensure_dir(base + child, child_st)
            else:
                writer.put(absolute, child_st, base + child)
        return
    name = posixpath.basename(source.rel)
    if excluded is not None and excluded(name):
        return
    target = _join(dest, name) if dest_is_dir and not request.parents else dest
    if request.is_add and stat.S_ISREG(st.st_mode):
        assert isinstance(writer, _Writer)
        if _unpack_archive(path, dest, writer.root):
            return
    writer.put(os.fspath(path), st, target)


def _join(directory: str, name: str) -> str:
    return f"{directory.rstrip('/')}/{name}"


# ADD: archives and URLs


def _unpack_archive(path: Path, dest: str, root: Path) -> bool:
    """ADD's auto-extraction: unpack ``path`` into the directory ``dest`` (a host path
    inside ``root``) with the hardened extractor when it is a tar archive (plain, gzip,
    bzip2, xz or zstd); False when it is not one."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        compression = archive_format(f)
        if compression is None:
            return False
        f.seek(0)
        inside = "/" + os.path.relpath(dest, root)
        try:
            extract_archive(f, root, inside, name=path.name, compression=compression)
        except LayerError as exc:
            raise StepError(f"ADD failed: {exc}") from exc
    return True


def download(url: str, checksum: str | None) -> tuple[bytes, float]:
    """Fetch a URL for ADD; verify ``sha256:`` checksums; mtime from Last-Modified."""
    import requests

    try:
        response = requests.get(url, timeout=60)
        response.raise_for_status()
    except requests.RequestException as exc:
        raise StepError(f"ADD failed: downloading {url!r}: {exc}") from exc
    data = response.content
    if checksum:
        algorithm, _, want = checksum.partition(":")
        if algorithm != "sha256" or not want:
            raise StepError(f"ADD failed: unsupported checksum {checksum!r}")
        got = hashlib.sha256(data).hexdigest()
        if got != want:
            raise StepError(
                f'unexpected response digest for "{url}": sha256:{got}, want sha256:{want}'
            )
    modified = response.headers.get("Last-Modified")
    mtime = time.time()
    if modified:
        parsed = email.utils.parsedate(modified)
        if parsed:
            mtime = float(calendar.timegm(parsed))
    return data, mtime
