"""Shared by the cache tests: which steps a build answered from the cache, and the
changes made to a context between two builds."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path


def hits(output: str) -> list[str]:
    """The keywords of the STEP lines answered from the cache."""
    lines = output.splitlines()
    return [re.sub(r"^\[\d+/\d+\] ", "", lines[i - 1]).split(":", 1)[1].split()[0]
            for i, line in enumerate(lines) if line.startswith("--> Using cache")]


def edit(path: str, text: str) -> Callable[[Path], None]:
    """Write ``text`` to ``path`` in the context."""
    return lambda ctx: (ctx / path).write_text(text)


def replace(old: str, new: str) -> Callable[[Path], None]:
    """Replace ``old`` with ``new`` in the context's Containerfile."""
    def change(ctx: Path) -> None:
        cf = ctx / "Containerfile"
        cf.write_text(cf.read_text().replace(old, new))
    return change


def nothing(ctx: Path) -> None:
    """No change."""
