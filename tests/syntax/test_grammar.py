"""The lark grammar: shipped as package data, compiled once, errors wrapped."""

from __future__ import annotations

import subprocess
import sys
from importlib.resources import files

import pytest

from builder.errors import ParseError
from builder.syntax import grammar


def test_grammar_is_package_data() -> None:
    text = files("builder").joinpath("grammar/containerfile.lark").read_text(encoding="utf-8")
    assert "json_array" in text and text == grammar.grammar_text()


def test_parser_is_cached_per_escape() -> None:
    assert grammar.parser() is grammar.parser("\\")
    assert grammar.parser("`") is not grammar.parser()


def test_compiled_tables_are_cached_on_disk(tmp_path: object) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    code = "from builder.syntax import grammar; grammar.parser()"
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    assert list((tmp_path / "pybuild").glob("containerfile-grammar-*"))  # type: ignore[operator]


@pytest.mark.parametrize(("start", "text"), [("line", ""), ("json_array", "[1,"), ("json_array", "[")])
def test_lark_errors_become_parse_errors(start: str, text: str) -> None:
    with pytest.raises(ParseError):
        grammar.parse(text, start)


def test_backtick_grammar_treats_backslash_literally() -> None:
    tree = grammar.parse("a\\ b `c", "words", escape="`")
    assert [len(word.children) for word in tree.children] == [1, 1, 1]
