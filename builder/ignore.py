"""``.containerignore`` / ``.dockerignore``: finding, reading and matching ignore files.

Patterns follow moby/patternmatcher: Go ``filepath.Match`` globs (``*``, ``?``,
``[...]`` with ranges and ``^``, backslash escapes) plus ``**`` for any number
of directories, ``!`` for exceptions, and "the last pattern that matches the
path or one of its parent directories decides". Each pattern is compiled once
into an exact, prefix, suffix or regular-expression test.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from builder import replay
from builder.errors import IgnoreError, PatternError
from builder.globs import components, translate

__all__ = ["IgnoreMatcher", "find_ignore_file", "load_ignore", "read_ignore_patterns"]

IGNORE_FILES = (".containerignore", ".dockerignore")
_BOM = "\ufeff"


def clean_path(path: str) -> str:
    """Lexically clean a slash-separated path the way Go's ``filepath.Clean`` does."""
    if not path:
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append(part)
            continue
        parts.append(part)
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def _dir(path: str) -> str:
    """Go's ``filepath.Dir``: everything before the last slash, cleaned."""
    return clean_path(path[: path.rfind("/") + 1])


def read_ignore_patterns(text: str) -> list[str]:
    """Turn the text of an ignore file into its pattern list.

    Lines starting with ``#`` are comments; other lines are trimmed and skipped
    when empty; an exception's ``!`` is kept with the spaces after it removed;
    patterns are cleaned and a leading ``/`` dropped. A bare ``!`` is kept here
    and rejected when a matcher is built.
    """
    patterns: list[str] = []
    if text.startswith(_BOM):
        text = text[1:]
    for line in text.split("\n"):
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = clean_path(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


def find_ignore_file(context: Path, containerfile: Path | None = None) -> Path | None:
    """The ignore file that applies to a build, or None.

    ``<Containerfile>.containerignore`` or ``<Containerfile>.dockerignore`` next
    to the Containerfile wins over ``.containerignore`` or ``.dockerignore`` at
    the context root; ``.containerignore`` is preferred over ``.dockerignore``
    in both places. A root ignore file that is a symlink resolving outside the
    context is not used.
    """
    if containerfile is not None:
        if not containerfile.is_absolute():
            containerfile = context / containerfile
        for suffix in IGNORE_FILES:
            candidate = containerfile.with_name(containerfile.name + suffix)
            replay.watch(candidate)
            if candidate.is_file():
                return candidate
    root = context.resolve()
    for name in IGNORE_FILES:
        candidate = context / name
        replay.watch(candidate)
        if not candidate.is_file():
            continue
        replay.watch(candidate.resolve())
        if candidate.is_symlink() and not candidate.resolve().is_relative_to(root):
            continue
        return candidate
    return None


def load_ignore(context: Path, containerfile: Path | None = None) -> IgnoreMatcher:
    """Find, read and compile the ignore file for a build (an empty matcher when none)."""
    path = find_ignore_file(context, containerfile)
    if path is None:
        return IgnoreMatcher(())
    try:
        text = path.read_bytes().decode("utf-8", "surrogateescape")
    except OSError as exc:
        raise IgnoreError(f"reading ignore file {path}: {exc.strerror or exc}") from exc
    return IgnoreMatcher(read_ignore_patterns(text), source=path)


class _Pattern:
    """One compiled pattern: ``test(path)`` says whether it matches ``path`` itself."""

    __slots__ = ("text", "exclusion", "kind", "dirs", "test", "components")

    def __init__(self, raw: str) -> None:
        text = clean_path(raw)
        self.exclusion = text.startswith("!")
        if self.exclusion:
            if len(text) == 1:
                raise IgnoreError('compiling ignore patterns: illegal exclusion pattern: "!"')
            text = text[1:]
        self.text = text
        self.dirs = text.count("/") + 1
        try:
            self.kind, regex = translate(text)
        except PatternError as exc:
            raise IgnoreError(f"compiling ignore pattern {raw.strip()!r}: {exc}") from None
        self.test = self._tester(regex)
        self.components = components(text)

    def _tester(self, regex: str) -> Callable[[str], bool]:
        text = self.text
        if self.kind == "exact":
            return text.__eq__
        if self.kind == "prefix":
            return lambda path: path.startswith(text[:-2])
        if self.kind == "suffix":
            suffix = text[2:]
            bare = suffix[1:] if suffix.startswith("/") else None
            return lambda path: path.endswith(suffix) or path == bare
        compiled = re.compile(regex)
        return lambda path: compiled.fullmatch(path) is not None

    def may_match_below(self, parts: Sequence[str]) -> bool:
        """Could this pattern match some path strictly inside the directory ``parts``?"""
        comps = self.components
        if comps is None:
            return True
        for depth, part in enumerate(parts):
            if depth >= len(comps):
                return False
            comp = comps[depth]
            if comp is None:
                return True
            if comp.fullmatch(part) is None:
                return False
        return len(comps) > len(parts)


class _Dir:
    """A directory met by ``walk``; an ignored one is yielded late, if at all."""

    __slots__ = ("rel", "st", "parent", "done")

    def __init__(
        self, rel: str, st: os.stat_result | None, parent: _Dir | None, done: bool
    ) -> None:
        self.rel, self.st, self.parent, self.done = rel, st, parent, done

    def emit(self) -> Iterator[tuple[str, os.stat_result]]:
        """Yield this directory and its ancestors not yielded yet, outermost first."""
        chain: list[_Dir] = []
        node: _Dir | None = self
        while node is not None and not node.done:
            chain.append(node)
            node = node.parent
        for item in reversed(chain):
            item.done = True
            assert item.st is not None
            yield item.rel, item.st


class IgnoreMatcher:
    """Compiled ignore patterns; decides which context paths a build leaves out."""

    def __init__(self, patterns: Sequence[str], *, source: Path | None = None) -> None:
        self.source = source
        compiled: list[_Pattern] = []
        for raw in patterns:
            if raw.strip():
                compiled.append(_Pattern(raw.strip()))
        self._patterns = tuple(compiled)
        self._exceptions = tuple(p for p in compiled if p.exclusion)

    @property
    def patterns(self) -> tuple[str, ...]:
        """The active patterns, cleaned, exceptions with their ``!``."""
        return tuple(("!" if p.exclusion else "") + p.text for p in self._patterns)

    @property
    def has_exceptions(self) -> bool:
        return bool(self._exceptions)

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def __repr__(self) -> str:
        return f"IgnoreMatcher({list(self.patterns)!r})"

    def matches(self, path: str) -> bool:
        """Legacy semantics (the reference's deprecated ``Matches``).

        The path is cleaned and ``.`` never matches; besides the path itself a
        pattern is tried only on the one parent directory as deep as the pattern.
        """
        path = clean_path(path)
        if path == ".":
            return False
        parent = _dir(path)
        parent_dirs = parent.split("/")
        matched = False
        for pattern in self._patterns:
            if pattern.exclusion != matched:
                continue
            hit = pattern.test(path)
            if not hit and parent != "." and pattern.dirs <= len(parent_dirs):
                hit = pattern.test("/".join(parent_dirs[: pattern.dirs]))
            if hit:
                matched = not pattern.exclusion
        return matched

    def matches_parent_aware(
        self, path: str, parent_results: Sequence[bool] | None = None
    ) -> tuple[bool, tuple[bool, ...]]:
        """Parent-aware semantics: the path or any parent directory counts.

        ``parent_results`` is the second item this method returned for the parent
        directory (None when unknown: the parents are then tested here). Returns
        whether ``path`` is matched, and the per-pattern results to pass on to its
        children. The path is used as given (not cleaned).
        """
        if parent_results and len(parent_results) != len(self._patterns):
            raise IgnoreError("matching ignore patterns: wrong number of parent results")
        parents: list[str] = []
        if not parent_results:
            parent = _dir(path)
            if parent != ".":
                dirs = parent.split("/")
                parents = ["/".join(dirs[: i + 1]) for i in range(len(dirs))]
        matched = False
        results: list[bool] = []
        for i, pattern in enumerate(self._patterns):
            hit = bool(parent_results and parent_results[i])
            if not hit:
                if pattern.exclusion != matched:
                    results.append(False)
                    continue
                hit = pattern.test(path) or any(pattern.test(p) for p in parents)
            results.append(hit)
            if hit:
                matched = not pattern.exclusion
        return matched, tuple(results)

    def excluded(self, relpath: str) -> bool:
        """Whether a build leaves the context path ``relpath`` out (parent-aware rule)."""
        path = clean_path(relpath.lstrip("/"))
        if path == "." or not self._patterns:
            return False
        parent = _dir(path)
        chain = [path]
        if parent != ".":
            dirs = parent.split("/")
            chain += ["/".join(dirs[: i + 1]) for i in range(len(dirs))]
        for pattern in reversed(self._patterns):
            if any(pattern.test(p) for p in chain):
                return not pattern.exclusion
        return False

    def walk(self, context: Path) -> Iterator[tuple[str, os.stat_result]]:
        """Yield ``(relative posix path, lstat)`` for every context entry a build keeps.

        Pre-order with names sorted; symlinks are not followed. An ignored
        directory is skipped whole unless an exception pattern could re-include
        something below it; it is then descended and yielded (just before the
        first kept entry inside it) only if something inside it is kept.
        """
        patterns = self._patterns
        top = _Dir("", None, None, True)
        stack = [(self._scan(os.fspath(context)), "", (False,) * len(patterns), top)]
        while stack:
            entries, prefix, inherited, node = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                continue
            rel = prefix + entry.name
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                raise IgnoreError(f"walking context: {exc.strerror or exc}: {rel}") from exc
            if entry.is_dir(follow_symlinks=False):
                results = tuple(inherited[i] or p.test(rel) for i, p in enumerate(patterns))
                if not self._decide(results):
                    yield from node.emit()
                    yield rel, st
                    child = _Dir(rel, st, node, True)
                elif self._may_reinclude(rel):
                    child = _Dir(rel, st, node, False)
                else:
                    continue
                stack.append((self._scan(entry.path), rel + "/", results, child))
                continue
            if patterns and self._file_dropped(rel, inherited):
                continue
            yield from node.emit()
            yield rel, st

    @staticmethod
    def _scan(directory: str) -> Iterator[os.DirEntry[str]]:
        try:
            with os.scandir(directory) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as exc:
            raise IgnoreError(f"walking context: {exc.strerror or exc}: {directory}") from exc
        return iter(entries)

    def _decide(self, results: Sequence[bool]) -> bool:
        for i in range(len(results) - 1, -1, -1):
            if results[i]:
                return not self._patterns[i].exclusion
        return False

    def _file_dropped(self, rel: str, inherited: Sequence[bool]) -> bool:
        patterns = self._patterns
        for i in range(len(patterns) - 1, -1, -1):
            if inherited[i] or patterns[i].test(rel):
                return not patterns[i].exclusion
        return False

    def _may_reinclude(self, rel: str) -> bool:
        parts = rel.split("/")
        return any(p.may_match_below(parts) for p in self._exceptions)
