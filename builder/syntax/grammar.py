"""The lark parser for logical lines, compiled once per escape character and cached.

``grammar/containerfile.lark`` ships inside the package (``builder/grammar``)
and is read through ``importlib.resources``. The compiled LALR tables are
pickled by lark into the user cache directory, keyed by the grammar's hash,
so later processes skip the table construction.
"""

from __future__ import annotations

import hashlib
import os
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from builder.errors import ParseError
from builder.source import Location, Span

if TYPE_CHECKING:
    from lark import Lark, Token, Tree

__all__ = ["START_RULES", "grammar_text", "parser", "parse"]

START_RULES = ("line", "json_array", "words", "heredoc_words")
DEFAULT_ESCAPE = "\\"


def grammar_text(escape: str = DEFAULT_ESCAPE) -> str:
    """The grammar with ``escape`` as the escape character of flags and words."""
    text = files("builder").joinpath("grammar/containerfile.lark").read_text(encoding="utf-8")
    if escape == DEFAULT_ESCAPE:
        return text
    return text.replace("\\\\", escape)


def _cache_file(text: str) -> str | bool:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    directory = Path(base) / "pybuild"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    if not os.access(directory, os.W_OK):
        return False
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return str(directory / f"containerfile-grammar-{digest}.lark-cache")


def parser(escape: str = DEFAULT_ESCAPE) -> Lark:
    """The compiled LALR parser for ``escape`` (built on first use)."""
    return _compile(escape)


@cache
def _compile(escape: str) -> Lark:
    from lark import Lark

    text = grammar_text(escape)
    return Lark(
        text,
        parser="lalr",
        lexer="contextual",
        start=list(START_RULES),
        propagate_positions=True,
        maybe_placeholders=False,
        cache=_cache_file(text),
    )


def parse(text: str, start: str, *, escape: str = DEFAULT_ESCAPE, where: Location | None = None) -> Tree[Token]:
    """Parse ``text`` from rule ``start``; lark's errors become ``ParseError``."""
    from lark.exceptions import LarkError, UnexpectedInput

    try:
        return parser(escape).parse(text, start=start)
    except UnexpectedInput as exc:
        raise ParseError(f"parsing {start.replace('_', ' ')}: unexpected input at column "
                         f"{exc.column}", _shift(where, exc.column)) from None
    except LarkError as exc:
        raise ParseError(f"parsing {start.replace('_', ' ')}: {exc}", where) from None


def _shift(where: Location | None, column: int) -> Location | None:
    if where is None or column < 1:
        return where
    span = where.span
    return Location(where.file, Span(span.line, span.column + column - 1, span.line,
                                     span.column + column))
