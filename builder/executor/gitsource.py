"""``ADD <git URL> DEST``, as BuildKit does.

A source that is a git URL (``builder.fetch.is_git_url``: ``git://``, ``ssh://``,
``user@host:path``, ``https://...repo.git``, ``file://``; ``#REF:SUBDIR`` picks a
ref and a directory) is fetched shallowly and its tree is copied into DEST as a
directory's contents are. ``.git`` is left out unless ``--keep-git-dir=true``.
The step's cache key holds the commit the ref resolved to, so a new commit is a new
layer and an unchanged one hits the cache. Each URL is fetched once per process.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
from pathlib import Path

from builder import replay
from builder.errors import ContextError, StepError
from builder.executor.copier import CopyRequest, SourceTree, copy_into
from builder.fetch import clone_git, is_git_url, parse_git_url

__all__ = ["add_git_sources", "git_identity", "split_git_sources"]

_lock = threading.Lock()
_clones: dict[tuple[str, str, bool], tuple[Path, str]] = {}


def split_git_sources(request: CopyRequest) -> tuple[CopyRequest, tuple[str, ...]]:
    """The request without its git sources, and those sources."""
    git = tuple(s for s in request.sources if is_git_url(s) and s not in request.heredocs)
    if not git:
        return request, ()
    rest = tuple(s for s in request.sources if s not in git)
    return dataclasses.replace(request, sources=rest), git


def _clone(url: str, keep_git_dir: bool, workdir: Path) -> tuple[Path, str]:
    key = (str(workdir), url, keep_git_dir)
    with _lock:
        if key not in _clones:
            replay.cancel("download")
            target = workdir / f"git-{len(_clones)}"
            try:
                directory, commit = clone_git(parse_git_url(url), target)
            except ContextError as exc:
                raise StepError(f"ADD failed: {exc}") from exc
            if not keep_git_dir:
                shutil.rmtree(target / ".git")
            _clones[key] = (directory, commit)
        return _clones[key]


def git_identity(urls: tuple[str, ...], keep_git_dir: bool, checksum: str | None,
                 workdir: Path) -> list[str]:
    """What the cache key holds for the git sources: URL and resolved commit each."""
    out = []
    for url in urls:
        _, commit = _clone(url, keep_git_dir, workdir)
        if checksum and not commit.startswith(checksum.removeprefix("sha1:")):
            raise StepError(f"ADD failed: {url} is at commit {commit}, not {checksum}")
        out.append(f"{url}@{commit}{'+git-dir' if keep_git_dir else ''}")
    return out


def add_git_sources(root: Path, request: CopyRequest, urls: tuple[str, ...],
                    keep_git_dir: bool, workdir: Path) -> None:
    """Copy each repository's tree into the request's destination directory."""
    for url in urls:
        directory, _ = _clone(url, keep_git_dir, workdir)
        as_dir = dataclasses.replace(request, sources=(".",), dest_is_dir=True, checksum=None,
                                     keyword="ADD")
        copy_into(root, as_dir, SourceTree(directory))
