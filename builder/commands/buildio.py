"""Where ``bud`` reads from and writes to, besides the image store.

``open_sources``: the context (a directory, or fetched first by ``builder.fetch``:
git, an http(s) URL, ``-`` on stdin, an archive file) and the Containerfile (through
cpp when its name ends in ``.in``). ``named_contexts``: the ``--build-context``
values, fetched when they are URLs. ``output_to``, ``platform_log``: ``--logfile``
and ``--logsplit``, which take everything the build writes, RUN steps' output
included, at the file-descriptor level. ``stdout_aside``: ``--output -``, where the
tar owns stdout and the build's own output goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from builder import replay

__all__ = ["named_contexts", "open_sources", "output_to", "platform_log", "stdout_aside"]


def open_sources(args: argparse.Namespace, store: Any, progress: Any) -> tuple[Path, Any]:
    """The context directory (fetched first when it is remote, stdin or an archive)
    and the Containerfile (through cpp when its name ends in .in)."""
    import tempfile

    from builder.context import ContainerfileSource, open_context, read_containerfile
    from builder.errors import UsageError
    from builder.fetch import fetch_context, is_remote
    from builder.preprocess import needs_preprocessing, preprocess

    argument = args.context
    if is_remote(argument) or Path(argument).is_file():
        if argument == "-" and (args.file == "-" or args.stdin):
            raise UsageError("reading build context from stdin: stdin is also used by "
                             + ("-f -" if args.file == "-" else "--stdin"))
        replay.cancel("fetched context")
        workdir = Path(tempfile.mkdtemp(prefix="context-", dir=store.tmp_dir()))
        context = fetch_context(argument, workdir, sys.stdin.buffer).directory
    else:
        context = open_context(argument)
    source = read_containerfile(context, args.file, sys.stdin.buffer)
    if needs_preprocessing(source.display):
        replay.cancel("preprocessed Containerfile")  # included files are not watched
        text = preprocess(source.text, source.display, context, args.cpp_flag,
                          warn=progress.warn)
        source = ContainerfileSource(text, f"{source.display} (preprocessed)", source.path)
    return context, source


def named_contexts(values: list[str], store: Any) -> dict[str, Any]:
    """``--build-context NAME=VALUE`` values, fetched when they are URLs."""
    import tempfile

    from builder.errors import ContextError, UsageError
    from builder.fetch import fetch_context, is_git_url
    from builder.plan.contexts import NamedContext, image_context

    found: dict[str, Any] = {}
    for raw in values:
        name, sep, value = raw.partition("=")
        if not name or not sep or not value:
            raise UsageError(f"parsing --build-context {raw!r}: expected NAME=VALUE")
        replay.cancel("build contexts")
        image = image_context(value)
        if image is not None:
            found[name] = NamedContext(name, image=image)
        elif is_git_url(value) or value.startswith(("http://", "https://")):
            workdir = Path(tempfile.mkdtemp(prefix="context-", dir=store.tmp_dir()))
            found[name] = NamedContext(name, directory=fetch_context(value, workdir).directory)
        else:
            directory = Path(value).absolute()
            if not directory.is_dir():
                raise ContextError(f"checking build context {name!r}: {value!r} is not a "
                                   "directory")
            found[name] = NamedContext(name, directory=directory)
    return found


@contextlib.contextmanager
def output_to(path: str) -> Iterator[None]:
    """``--logfile``: everything the build writes to stdout and stderr, RUN steps'
    output included, goes to ``path`` (truncated first, mode 0600 as in Buildah)."""
    from builder.errors import UsageError

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise UsageError(f"opening --logfile {path!r}: {exc.strerror}") from exc
    replay.cancel("logfile")
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def platform_log(logfile: str, platform: Any) -> Any:
    """``--logsplit``: each platform's build goes to FILE_OS_ARCH, as in Buildah."""
    return output_to(f"{logfile}_{platform.os}_{platform.architecture}")


@contextlib.contextmanager
def stdout_aside() -> Iterator[Any]:
    """``--output -``: the tar gets the real stdout; the build's own output (progress,
    RUN steps) goes to stderr meanwhile."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with os.fdopen(os.dup(saved), "wb") as stream:
            yield stream
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
