"""Line-level rules and positions that the corpus does not pin down."""

from __future__ import annotations

import pytest

from builder.errors import ParseError
from builder.source import Span
from builder.syntax.nodes import go_quote, parse_nodes

DUMPS = [
    # (name, Containerfile text, expected dump)
    ("bom and crlf", b"\xef\xbb\xbfFROM a\r\nRUN b \\\r\n  c\r\n", '(from "a")\n(run "b   c")'),
    ("backtick escape", "# escape=`\nFROM a\nRUN b `\n c\nCOPY x\\ y z",
     '(from "a")\n(run "b  c")\n(copy "x\\\\" "y" "z")'),
    ("directive after instruction is a comment", "FROM a\n# escape=`\nRUN b \\\n c",
     '(from "a")\n(run "b  c")'),
    ("only escape continues", "FROM a\nRUN b \\\n\\\n c", '(from "a")\n(run "b  c")'),
    ("double escape does not continue", "RUN a\\\\\nRUN b", '(run "a\\\\\\\\")\n(run "b")'),
    ("flags with quotes", 'COPY --chown="a b" --x=\'c\'d -- e f', '(copy ["--chown=a b" "--x=cd"] "e" "f")'),
    ("flag escape in single quotes", "RUN --a='x\\'y' b", '(run ["--a=x\'y"] "b")'),
    ("unterminated flag", 'RUN --a="b c', '(run ["--a=b c"])'),
    ("onbuild heredoc", "ONBUILD RUN <<EOF\nhi\nEOF", '(onbuild (run "<<EOF"))'),
    ("unknown keyword", "FOO bar", '(foo "")'),
    ("healthcheck none", "HEALTHCHECK NONE", '(healthcheck "NONE")'),
    ("invalid utf-8", b"LABEL a=\xff", '(label "a" "\\xff" "=")'),
]


@pytest.mark.parametrize(("text", "dump"), [c[1:] for c in DUMPS], ids=[c[0] for c in DUMPS])
def test_dump(text: str | bytes, dump: str) -> None:
    from builder.syntax.nodes import dump_nodes

    assert dump_nodes(parse_nodes(text).nodes) == dump


ERRORS = [
    # (name, text, message fragment, line:col)
    ("bad escape", "# escape=x\nFROM a", "invalid escape token 'x'", "1:1"),
    ("repeated directive", "# syntax=a\n# syntax=b\nFROM a", "only one syntax parser directive", "2:1"),
    ("unterminated heredoc", "FROM a\nRUN <<EOF\necho", "unterminated heredoc", "2:1"),
    ("line too long", "FROM a\nRUN " + "x" * 70000, "greater than max allowed size", "2:1"),
    ("no equals", "FROM a\nENV a=b c", "can't find = in \"c\"", "2:5"),
    ("nested json", 'FROM a\n  CMD ["a", ["b"]]', "strings only", "2:7"),
    ("empty", "\n# nothing\n", "file with no instructions", "1:1"),
]


@pytest.mark.parametrize(("text", "message", "where"), [c[1:] for c in ERRORS],
                         ids=[c[0] for c in ERRORS])
def test_errors(text: str, message: str, where: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_nodes(text, "Containerfile")
    assert message in info.value.message
    span = info.value.location.span  # type: ignore[union-attr]
    assert f"{span.line}:{span.column}" == where


def test_spans_follow_continuations_and_heredocs() -> None:
    text = "FROM a\n  RUN --mount=type=cache,target=/x \\\n    make \\\n\n    all\nCOPY <<A /a\nbody\nA\n"
    run, copy = parse_nodes(text).nodes[1:]
    assert run.span == Span(2, 3, 5, 8)
    assert run.flag_spans == (Span(2, 7, 2, 35),)
    assert run.args_span == Span(3, 5, 5, 8)
    assert copy.span == Span(6, 1, 8, 2)


def test_comments_attach_to_next_instruction() -> None:
    nodes = parse_nodes("# header\n\n# about a\n# more\nFROM a\nRUN b").nodes
    assert nodes[0].comments == ("about a", "more")
    assert nodes[1].comments == ()


@pytest.mark.parametrize(
    ("value", "quoted"),
    [("a\"b\\", '"a\\"b\\\\"'), ("\x00\x7f\x1b", '"\\x00\\x7f\\x1b"'), ("é☃ ", '"é☃ "'),
     ("\u00a0\u200b", '"\\u00a0\\u200b"'), ("\U000e0001", '"\\U000e0001"'),
     ("\a\b\f\n\r\t\v", '"\\a\\b\\f\\n\\r\\t\\v"')],
)
def test_go_quote(value: str, quoted: str) -> None:
    assert go_quote(value) == quoted
