"""Raw syntax nodes, as BuildKit's reference parser builds them, and their dump.

``parse_nodes`` reads logical lines (``lines.py``), splits each with the lark
grammar (``grammar.py``) into keyword, flags and arguments, and attaches
heredoc bodies. Nothing is validated per instruction here: an unknown keyword
is still a node. ``dump_nodes`` writes the s-expressions of the reference
``result`` files.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, cast

from builder.errors import ParseError
from builder.source import Finding, Location, Span
from builder.syntax import grammar
from builder.syntax.lines import LineReader, LogicalLine

if TYPE_CHECKING:
    from lark import Token, Tree

__all__ = [
    "Node", "ParseResult", "dump_nodes", "go_quote", "heredoc_word", "heredoc_words", "json_array",
    "parse_nodes", "split_words",
]

HEREDOC_KEYWORDS = frozenset({"run", "copy", "add"})
_SPLIT = re.compile(r"[ \t\r\v\f]+")
_SHORT_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                  "\t": "\\t", "\v": "\\v", '"': '\\"', "\\": "\\\\"}
_QUOTED_PIECES = frozenset({"DQ", "DQ_OPEN", "SQ", "SQ_OPEN"})


@dataclass(frozen=True, slots=True)
class Heredoc:
    """A here-document attached to RUN, COPY or ADD."""

    name: str
    body: str
    expand: bool = True  # False when the delimiter was quoted
    chomp: bool = False  # <<- : leading tabs stripped
    fd: int | None = None


@dataclass(frozen=True)
class Node:
    """One instruction as written: keyword, flags, argument values, position."""

    keyword: str  # as written, e.g. "Run"
    flags: tuple[str, ...]
    args: tuple[str, ...]
    original: str  # the trimmed logical line
    span: Span
    heredocs: tuple[Heredoc, ...] = ()
    next: Node | None = None  # the trigger of ONBUILD
    json: bool = False  # arguments came from a JSON array
    comments: tuple[str, ...] = ()
    flag_spans: tuple[Span, ...] = ()
    args_span: Span | None = None  # where ``args_text`` is
    args_text: str = ""  # the text after the flags, trimmed

    @property
    def name(self) -> str:
        """The keyword in lower case."""
        return self.keyword.lower()

    def dump(self) -> str:
        """The reference s-expression of this node, e.g. ``(copy ["--from=a"] "x" "/")``."""
        parts = [self.name]
        if self.flags:
            parts.append("[" + " ".join(go_quote(f) for f in self.flags) + "]")
        if self.next is not None:
            parts.append(f"({self.next.dump()[1:-1]})")
        else:
            parts.extend(go_quote(arg) for arg in self.args)
        return f"({' '.join(parts)})"


@dataclass(frozen=True)
class ParseResult:
    nodes: tuple[Node, ...]
    warnings: tuple[Finding, ...] = ()
    escape: str = "\\"
    directives: dict[str, str] = field(default_factory=dict)


def go_quote(value: str) -> str:
    """``value`` as a double-quoted Go string literal (``%q``)."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif 0xDC80 <= code <= 0xDCFF:  # an undecodable byte (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif ch == " " or ch.isprintable():
            out.append(ch)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def dump_nodes(nodes: tuple[Node, ...] | list[Node]) -> str:
    """The dump of a whole file: one line per node (no trailing newline)."""
    return "\n".join(node.dump() for node in nodes)


def parse_nodes(text: str | bytes, path: str = "Containerfile") -> ParseResult:
    """Parse a Containerfile into raw nodes; ``ParseError`` on malformed input."""
    reader = LineReader(text, path)
    nodes: list[Node] = []
    warnings: list[Finding] = []
    while (logical := reader.next_line()) is not None:
        node = _Builder(reader, logical).build()
        if logical.blank_continuation:
            warnings.append(Finding(
                "NoEmptyContinuation",
                f"Empty continuation line found in: {logical.text.strip()}; "
                "empty continuation lines will become errors in a future release",
                Location(path, node.span),
            ))
        nodes.append(node)
    if not nodes:
        raise ParseError("file with no instructions", Location(path, Span(1, 1, 1, 1)))
    return ParseResult(tuple(nodes), tuple(warnings), reader.escape, dict(reader.directives))


def split_words(text: str, escape: str = "\\") -> list[str]:
    """ARG/ENV/LABEL words: split at white space, quotes and escapes kept."""
    tree = grammar.parse(text, "words", escape=escape)
    words = []
    # The grammar makes each word a rule whose children are all tokens.
    for word in cast("list[Tree[Token]]", tree.children):
        pieces = cast("list[Token]", word.children)
        value = "".join(_piece_text(piece, escape) for piece in pieces)
        if value or any(piece.type in _QUOTED_PIECES for piece in pieces):
            words.append(value)
    return words


def _piece_text(piece: Token, escape: str) -> str:
    if piece.type == "TRAILING_ESCAPE":
        return ""
    if piece.type == "DQ_OPEN" and _ends_with_lone_escape(piece.value[1:], escape):
        return str(piece.value[:-1])
    return str(piece.value)


def _ends_with_lone_escape(text: str, escape: str) -> bool:
    run = len(text) - len(text.rstrip(escape))
    return run % 2 == 1


def _decode_flag(word: str, escape: str) -> str:
    """A flag word with its quotes removed and escapes applied."""
    out: list[str] = []
    quote = ""
    i = 0
    while i < len(word):
        ch = word[i]
        if ch == escape:
            out.append(word[i + 1 : i + 2])
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = ""
            else:
                out.append(ch)
        elif ch in "'\"":
            quote = ch
        else:
            out.append(ch)
        i += 1
    return "".join(out)


class _Builder:
    """Builds the node of one logical line (and its ONBUILD trigger)."""

    def __init__(self, reader: LineReader, logical: LogicalLine) -> None:
        self.reader = reader
        self.logical = logical
        self.escape = reader.escape
        self.path = reader.path

    def span(self, start: int, end: int) -> Span:
        line, column = self.logical.position(start)
        end_line, end_column = self.logical.position(max(end - 1, start))
        return Span(line, column, end_line, end_column + 1)

    def location(self, start: int, end: int) -> Location:
        return Location(self.path, self.span(start, end))

    def build(self) -> Node:
        text = self.logical.text
        node = self._node(text.strip(), len(text) - len(text.lstrip()))
        last_line, last_column = self.logical.end_line, self.logical.end_column
        node, last_line, last_column = self._attach_heredocs(node, last_line, last_column)
        span = Span(node.span.line, node.span.column, last_line, last_column)
        return replace(node, span=span, comments=self.logical.comments)

    def _node(self, text: str, base: int) -> Node:
        where = self.location(base, base + len(text))
        tree = grammar.parse(text, "line", escape=self.escape, where=where)
        tokens: list[Token] = list(tree.children)  # type: ignore[arg-type]
        keyword = str(tokens[0])
        flags: list[str] = []
        flag_spans: list[Span] = []
        rest_at = len(text)
        for token in tokens[1:]:
            if token.type == "REST":
                rest_at = token.start_pos or 0
                break
            word = _decode_flag(token.value, self.escape)
            if word == "--":
                after = text[token.end_pos :]
                rest_at = len(text) - len(after.lstrip())
                break
            flags.append(word)
            flag_spans.append(self.span(base + (token.start_pos or 0), base + (token.end_pos or 0)))
        rest = text[rest_at:].strip()
        args_span = self.span(base + rest_at, base + rest_at + len(rest)) if rest else None
        node = Node(keyword, tuple(flags), (), text, where.span, flag_spans=tuple(flag_spans),
                    args_span=args_span, args_text=rest)
        name = keyword.lower()
        if name == "onbuild":
            if not rest:
                return node
            return replace(node, next=self._node(rest, base + rest_at))
        args, is_json = self._arguments(name, rest, base + rest_at)
        return replace(node, args=tuple(args), json=is_json)

    def _arguments(self, name: str, rest: str, at: int) -> tuple[list[str], bool]:
        if name in ("from", "expose"):
            return (_SPLIT.split(rest) if rest else []), False
        if name in ("add", "copy", "volume"):
            elements = self._json(rest, at)
            if elements is not None:
                return elements, True
            return (_SPLIT.split(rest) if rest else []), False
        if name in ("run", "cmd", "entrypoint", "shell"):
            return self._command(rest, at)
        if name in ("maintainer", "stopsignal", "user", "workdir"):
            return ([rest] if rest else []), False
        if name in ("env", "label"):
            return self._pairs(name, rest, at), False
        if name == "arg":
            return split_words(rest, self.escape) if rest else [], False
        if name == "healthcheck":
            if not rest:
                return [], False
            kind = _SPLIT.split(rest, 1)[0]
            stripped = rest[len(kind) :].lstrip()
            args, is_json = self._command(stripped, at + len(rest) - len(stripped))
            return [kind, *args], is_json
        return [""], False

    def _command(self, rest: str, at: int) -> tuple[list[str], bool]:
        if not rest:
            return [], False
        elements = self._json(rest, at)
        if elements is not None:
            return elements, True
        return [rest], False

    def _json(self, text: str, at: int) -> list[str] | None:
        try:
            return json_array(text)
        except ParseError as exc:
            raise ParseError(exc.message, self.location(at, at + len(text))) from None

    def _pairs(self, name: str, rest: str, at: int) -> list[str]:
        words = split_words(rest, self.escape) if rest else []
        if not words:
            return []
        if "=" not in words[0]:
            parts = _SPLIT.split(rest, 1)
            if len(parts) < 2:
                raise ParseError(f"{name.upper()} must have two arguments",
                                 self.location(at, at + len(rest)))
            return [parts[0], parts[1], ""]
        args: list[str] = []
        for word in words:
            if "=" not in word:
                raise ParseError(
                    f"Syntax error - can't find = in {json.dumps(word)}. "
                    "Must be of the form: name=value",
                    self.location(at, at + len(rest)),
                )
            key, value = word.split("=", 1)
            args += [key, value, "="]
        return args

    def _attach_heredocs(self, node: Node, line: int, column: int) -> tuple[Node, int, int]:
        if node.next is not None:
            child, line, column = self._attach_heredocs(node.next, line, column)
            return replace(node, next=child), line, column
        if node.name not in HEREDOC_KEYWORDS or node.json:
            return node, line, column
        where = Location(self.path, node.span)
        docs = []
        for name, expand, chomp, fd in heredoc_words(node.args_text, where):
            body, line, column = self.reader.read_heredoc(name, chomp, where)
            docs.append(Heredoc(name=name, body=body, expand=expand, chomp=chomp, fd=fd))
        return replace(node, heredocs=tuple(docs)), line, column


HeredocWord = tuple[str, bool, bool, "int | None"]


def json_array(text: str) -> list[str] | None:
    """The elements if ``text`` is a JSON array of strings; None when it is not JSON.

    A JSON array holding anything but strings is a ``ParseError`` (no fallback).
    """
    stripped = text.lstrip()
    if not stripped.startswith("["):
        return None
    from lark.exceptions import LarkError

    try:
        tree = grammar.parser().parse(stripped, start="json_array")
    except LarkError:
        return None
    elements = []
    for child in tree.children:
        if getattr(child, "type", None) != "STRING":
            raise ParseError("when using JSON array syntax, arrays must be comprised of strings only")
        value = json.loads(child)  # type: ignore[arg-type]
        elements.append(value.encode("utf-16", "surrogatepass").decode("utf-16", "replace"))
    return elements


def heredoc_word(word: str) -> HeredocWord | None:
    """The heredoc one word opens (name, expand, chomp, fd), if it is a heredoc word."""
    if "<<" not in word:
        return None
    tree = grammar.parse(word, "heredoc_words")
    if len(tree.children) != 1:
        return None
    found = _heredocs(tree, None)
    return found[0] if found else None


def heredoc_words(text: str, where: Location | None = None) -> list[HeredocWord]:
    """The heredocs a line's argument text opens, in order."""
    if "<<" not in text:
        return []
    return _heredocs(grammar.parse(text, "heredoc_words", where=where), where)


def _heredocs(tree: Tree[Token], where: Location | None) -> list[HeredocWord]:
    found: list[HeredocWord] = []
    for word in cast("list[Tree[Token]]", tree.children):
        pieces: list[Token] = list(word.children)  # type: ignore[arg-type]
        if pieces[0].type != "HEREDOC_OP" or len(pieces) == 1:
            continue
        raw = "".join(p.value for p in pieces[1:])
        if "<" in raw:
            continue
        if any(p.type in ("DQ_OPEN", "SQ_OPEN") for p in pieces[1:]):
            raise ParseError(f"parsing heredoc <<{raw}: unterminated quote", where)
        operator = pieces[0].value
        digits = operator.split("<<", 1)[0]
        name = "".join(_unquote(p) for p in pieces[1:])
        expand = not any(p.type in ("DQ", "SQ") for p in pieces[1:])
        found.append((name, expand, "<<-" in operator, int(digits) if digits else None))
    return found


def _unquote(piece: Token) -> str:
    value = str(piece.value)
    if piece.type == "ESCAPED":
        return value[1:]
    if piece.type == "TRAILING_ESCAPE":
        return ""
    if piece.type == "SQ":
        return value[1:-1]
    if piece.type == "DQ":
        return re.sub(r'\\([\\"$`])', r"\1", value[1:-1])
    return value
