"""Source positions in Containerfiles and their rendering for people."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Span:
    """1-based line and column range; the end column is exclusive."""

    line: int
    column: int
    end_line: int
    end_column: int


@dataclass(frozen=True, slots=True)
class Location:
    file: str
    span: Span

    def __str__(self) -> str:
        return f"{self.file}:{self.span.line}:{self.span.column}"


@dataclass(frozen=True)
class Finding:
    """A warning about a place in a Containerfile (a lint rule or the parser's); never
    raised."""

    rule: str
    message: str
    location: Location | None
    url: str | None = None


def render_excerpt(text: str, location: Location) -> str:
    """The offending source line with a caret under the column, as compilers print it."""
    lines = text.splitlines()
    index = location.span.line - 1
    if not 0 <= index < len(lines):
        return ""
    line = lines[index].expandtabs(1)
    width = len(str(location.span.line))
    caret_at = max(location.span.column - 1, 0)
    gutter = " " * width
    return f"{location.span.line} | {line}\n{gutter} | {' ' * caret_at}^"
