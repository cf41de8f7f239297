"""``Containerfile.in``: a Containerfile run through the C preprocessor first.

As Buildah (``preprocessContainerfileContents``): a Containerfile whose name ends
in ``.in`` is piped through ``cpp -E -iquote CONTEXT -traditional -undef -``, then
the words of ``$BUILDAH_CPPFLAGS`` (split as a shell would) and every
``--cpp-flag``, so ``#include "common.in"`` finds files in the context and
``--cpp-flag=-DDEBUG`` selects ``#ifdef`` blocks. A failing cpp that still wrote
output has its messages shown as a warning, as Buildah does; one that wrote
nothing is an error. cpp is the Debian package of that name.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from builder import replay
from builder.errors import ContextError

__all__ = ["needs_preprocessing", "preprocess"]


def needs_preprocessing(name: str) -> bool:
    return name.endswith(".in")


def preprocess(text: bytes, name: str, context: Path, flags: Sequence[str] = (),
               warn: Callable[[str], None] | None = None) -> bytes:
    """The preprocessed Containerfile ``name`` (its bytes are ``text``)."""
    cpp = shutil.which("cpp")
    what = f"preprocessing {name}"
    if cpp is None:
        raise ContextError(f"{what}: .in support requires cpp to be installed",
                           hint="install the Debian package cpp")
    args = [cpp, "-E", "-iquote", os.fspath(context), "-traditional", "-undef", "-"]
    replay.watch_env("BUILDAH_CPPFLAGS")
    extra = os.environ.get("BUILDAH_CPPFLAGS")
    if extra:
        try:
            args += shlex.split(extra)
        except ValueError as exc:
            raise ContextError(f"{what}: parsing BUILDAH_CPPFLAGS {extra!r}: {exc}") from exc
    args += list(flags)
    proc = subprocess.run(args, input=text, capture_output=True)
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip()
        if not proc.stdout:
            raise ContextError(f"{what}: preprocessor produced no output: {message}")
        if warn is not None and message:
            warn(f"Ignoring {message}")
    return proc.stdout
