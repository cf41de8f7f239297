"""The build context: its directory, the Containerfile in it, paths kept inside it."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from builder import replay
from builder.errors import ContextError
from builder.rootfs.paths import resolve_in_root as resolve

DEFAULT_NAMES = ("Containerfile", "Dockerfile")


@dataclass(frozen=True)
class ContainerfileSource:
    """The Containerfile's text and where it came from (``path`` None for stdin)."""

    text: bytes
    display: str
    path: Path | None


def open_context(directory: str | os.PathLike[str]) -> Path:
    """The context directory, absolute; it must exist and be a directory."""
    path = Path(directory).absolute()
    if not path.is_dir():
        why = "not a directory" if path.exists() else "no such directory"
        raise ContextError(f"checking build context {str(directory)!r}: {why}")
    return path


def read_containerfile(
    context: Path, file: str | None, stdin: BinaryIO | None = None
) -> ContainerfileSource:
    """``-f FILE`` (relative to the cwd, else to the context), ``-f -``, or the default name.

    A default Containerfile that is a symlink is resolved inside the context
    and never followed out of it.
    """
    if file == "-":
        if stdin is None:
            raise ContextError("reading Containerfile from stdin: no stdin")
        return ContainerfileSource(stdin.read(), "<stdin>", None)
    if file:
        candidates = [Path(file)]
        if not Path(file).is_absolute():
            candidates.append(context / file)
        for candidate in candidates:
            replay.watch(candidate)
            if candidate.is_file():
                return ContainerfileSource(_read(candidate), str(candidate), candidate.absolute())
        raise ContextError(f"reading Containerfile {file!r}: no such file")
    for name in DEFAULT_NAMES:
        replay.watch(context / name)
        if os.path.lexists(context / name):
            real = resolve_in_root(context, name)
            replay.watch(real)
            if not real.is_file():
                raise ContextError(
                    f"reading Containerfile {name!r}: not a regular file inside the context"
                )
            return ContainerfileSource(_read(real), str(context / name), context / name)
    raise ContextError(
        f"reading Containerfile: no Containerfile or Dockerfile in {str(context)!r}",
        hint="use -f to name the file",
    )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ContextError(f"reading Containerfile {str(path)!r}: {exc.strerror}") from exc


def context_path(source: str) -> str:
    """A source as a clean path relative to the context ("" is the context itself);
    a relative path climbing out with ``..`` is an error."""
    cleaned = posixpath.normpath(source)
    if not source.startswith("/") and (cleaned == ".." or cleaned.startswith("../")):
        raise ContextError(f"forbidden path outside the build context: {source}")
    return posixpath.normpath("/" + cleaned).lstrip("/")


def resolve_in_root(root: Path, path: str, *, follow_last: bool = True,
                    visible: Callable[[str], bool] | None = None) -> Path:
    """Resolve ``path`` under ``root`` as if root were ``/`` (see
    ``builder.rootfs.paths.resolve_in_root``, and there ``visible``); a symlink loop
    is a ContextError."""
    try:
        resolved = resolve(root, path, follow_last=follow_last, visible=visible)
    except OSError as exc:
        raise ContextError(f"resolving {path!r}: too many levels of symbolic links") from exc
    return Path(root) / resolved.relative_to(os.path.abspath(root))
