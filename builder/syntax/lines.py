"""From bytes to logical lines: BOM, parser directives, continuations, heredoc bodies.

This is the line-level half of the Containerfile language; what it produces
(one logical line at a time) goes to the lark grammar. Every logical line
keeps a map from its character offsets back to physical line and column, so
anything found inside it can be located in the file.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

from builder.errors import ParseError
from builder.source import Location, Span

__all__ = [
    "DIRECTIVES",
    "LineReader",
    "LogicalLine",
    "MAX_LINE_BYTES",
    "Segment",
    "decode",
    "read_directives",
]

MAX_LINE_BYTES = 65535
DIRECTIVES = ("syntax", "escape", "check")
ESCAPES = ("\\", "`")
_DIRECTIVE = re.compile(r"#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Segment:
    """A piece of a logical line: where it starts in the text and in the file."""

    offset: int
    line: int
    column: int


@dataclass(frozen=True)
class LogicalLine:
    """An instruction's text with its continuation pieces joined (not trimmed)."""

    text: str
    segments: tuple[Segment, ...]
    end_line: int
    end_column: int
    comments: tuple[str, ...] = ()
    blank_continuation: bool = False  # an empty line was skipped inside it

    @property
    def start_line(self) -> int:
        return self.segments[0].line

    def position(self, offset: int) -> tuple[int, int]:
        """Physical (line, column) of the character at ``offset`` in ``text``."""
        index = max(bisect_right([s.offset for s in self.segments], offset) - 1, 0)
        segment = self.segments[index]
        return segment.line, segment.column + offset - segment.offset


def decode(data: str | bytes) -> str:
    """Text of a Containerfile without its BOM; undecodable bytes survive as surrogates."""
    if isinstance(data, bytes):
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        return data.decode("utf-8", errors="surrogateescape")
    return data[1:] if data.startswith("\ufeff") else data


def _physical_lines(text: str) -> list[str]:
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _continued(piece: str, escape: str) -> tuple[str, bool]:
    """Remove a trailing continuation marker; tell whether there was one."""
    bare = piece.rstrip(" \t")
    if bare.endswith(escape) and (len(bare) == 1 or bare[-2] != escape):
        return bare[:-1], True
    return piece, False


class LineReader:
    """Reads logical lines and heredoc bodies from one Containerfile, in order."""

    def __init__(self, data: str | bytes, path: str = "Containerfile") -> None:
        self.path = path
        self.escape = "\\"
        self.directives: dict[str, str] = {}
        self._lines = _physical_lines(decode(data))
        self._next = 0
        self._in_directives = True

    def _location(self, line: int, column: int = 1, end_column: int | None = None) -> Location:
        return Location(self.path, Span(line, column, line, end_column or column + 1))

    def _take(self) -> tuple[int, str, str]:
        """Next physical line: its number, raw text and text without line ending."""
        raw = self._lines[self._next]
        self._next += 1
        if len(raw) > MAX_LINE_BYTES // 4 and len(raw.encode("utf-8", "surrogateescape")) > (
            MAX_LINE_BYTES + 1
        ):
            raise ParseError(
                f"reading line {self._next}: dockerfile line greater than max allowed size "
                f"of {MAX_LINE_BYTES}",
                self._location(self._next),
            )
        return self._next, raw, raw.rstrip("\r\n")

    def _directive(self, number: int, line: str) -> bool:
        """Record ``line`` if it is a parser directive; False ends directive mode."""
        match = _DIRECTIVE.fullmatch(line.lstrip())
        if match is None or match[1].lower() not in DIRECTIVES:
            return False
        name, value = match[1].lower(), match[2]
        if name in self.directives:
            raise ParseError(
                f"only one {name} parser directive can be used", self._location(number)
            )
        if name == "escape":
            if value not in ESCAPES:
                raise ParseError(
                    f"invalid escape token '{value}' does not match ` or \\",
                    self._location(number),
                )
            self.escape = value
        self.directives[name] = value
        return True

    def next_line(self) -> LogicalLine | None:
        """The next logical line, or None at the end of the file."""
        comments: list[str] = []
        while self._next < len(self._lines):
            number, _, line = self._take()
            if self._in_directives:
                if self._directive(number, line):
                    continue
                self._in_directives = False
            stripped = line.lstrip()
            if stripped.startswith("#"):
                comments.append(stripped[1:].strip())
                continue
            if not stripped:
                comments.clear()
                continue
            piece, continued = _continued(stripped, self.escape)
            logical = self._rest(Segment(0, number, len(line) - len(stripped) + 1), piece,
                                 continued, len(line) + 1, tuple(comments))
            if logical.text.strip():
                return logical
            comments.clear()
        return None

    def _rest(self, first: Segment, text: str, continued: bool, end_column: int,
              comments: tuple[str, ...]) -> LogicalLine:
        segments = [first]
        end_line, blank = first.line, False
        while continued and self._next < len(self._lines):
            end_line, _, line = self._take()
            end_column = len(line) + 1
            stripped = line.lstrip()
            if stripped.startswith("#"):
                continue
            if not stripped:
                blank = True
                continue
            piece, continued = _continued(line, self.escape)
            segments.append(Segment(len(text), end_line, 1))
            text += piece
        return LogicalLine(text, tuple(segments), end_line, end_column, comments, blank)

    def read_heredoc(self, name: str, chomp: bool, opened_at: Location) -> tuple[str, int, int]:
        """The body up to the line ``name``, and that terminator's line and end column."""
        body: list[str] = []
        while self._next < len(self._lines):
            number, raw, line = self._take()
            if (line.lstrip("\t") if chomp else line) == name:
                return "".join(body), number, len(line) + 1
            body.append(raw)
        raise ParseError(f"reading heredoc {name}: unterminated heredoc", opened_at)


def read_directives(data: str | bytes, path: str = "Containerfile") -> dict[str, str]:
    """The parser directives at the top of a Containerfile (names lower-cased)."""
    reader = LineReader(data, path)
    reader.next_line()
    return dict(reader.directives)
