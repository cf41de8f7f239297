"""BuildKit's parser cases (fixtures/corpus/parser): dumps, rejections, lines, warnings, heredocs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder.errors import ParseError
from builder.syntax.nodes import dump_nodes, heredoc_word, heredoc_words, parse_nodes, split_words

PARSER = Path(__file__).resolve().parents[2] / "fixtures" / "corpus" / "parser"
POSITIVE = sorted(p for p in (PARSER / "testfiles").iterdir() if p.is_dir())
NEGATIVE = sorted(p for p in (PARSER / "negative").iterdir() if p.is_dir())
EXTRA = json.loads((PARSER / "extra-cases.json").read_text(encoding="utf-8"))
HEREDOC = json.loads((PARSER / "heredoc" / "expected.json").read_text(encoding="utf-8"))


def test_corpus_sizes() -> None:
    assert (len(POSITIVE), len(NEGATIVE)) == (33, 4)


@pytest.mark.parametrize("case", POSITIVE, ids=lambda p: p.name)
def test_dump_matches_result(case: Path) -> None:
    result = parse_nodes((case / "Dockerfile").read_bytes(), str(case / "Dockerfile"))
    assert dump_nodes(result.nodes) + "\n" == (case / "result").read_text(encoding="utf-8")


@pytest.mark.parametrize("case", NEGATIVE, ids=lambda p: p.name)
def test_negative_rejected_with_location(case: Path) -> None:
    path = str(case / "Dockerfile")
    with pytest.raises(ParseError) as info:
        parse_nodes((case / "Dockerfile").read_bytes(), path)
    assert info.value.location is not None and info.value.location.file == path
    assert info.value.location.span.line >= 1


def test_line_info() -> None:
    expected = json.loads((PARSER / "line-info" / "expected.json").read_text())
    nodes = parse_nodes((PARSER / "line-info" / "Dockerfile").read_bytes()).nodes
    assert len(nodes) == expected["instruction_count"]
    assert [{"start_line": n.span.line, "end_line": n.span.end_line} for n in nodes] == (
        expected["instructions"]
    )
    assert (nodes[0].span.line, nodes[-1].span.end_line) == (
        expected["file_start_line"], expected["file_end_line"]
    )


def test_empty_continuation_warnings() -> None:
    expected = json.loads((PARSER / "empty-continuation-warning" / "expected.json").read_text())
    result = parse_nodes((PARSER / "empty-continuation-warning" / "Dockerfile").read_bytes())
    assert len(result.warnings) == expected["warnings_count"]
    for warning, wanted in zip(result.warnings, expected["warnings"], strict=True):
        assert warning.rule == "NoEmptyContinuation"
        for fragment in wanted["short_contains"]:
            assert fragment in warning.message
    assert expected["first_warning_detail_contains"] in result.warnings[0].message


def _heredoc_json(node: object) -> list[dict[str, object]] | None:
    docs = [
        {"name": d.name, "content": d.body, "expand": d.expand, "chomp": d.chomp,
         "file_descriptor": d.fd or 0}
        for d in node.heredocs  # type: ignore[attr-defined]
    ]
    return docs or None


@pytest.mark.parametrize("case", HEREDOC["instructions"], ids=lambda c: c["upstream_comment"])
def test_heredoc_bodies(case: dict[str, object]) -> None:
    nodes = parse_nodes((PARSER / "heredoc" / "Dockerfile").read_bytes()).nodes
    assert _heredoc_json(nodes[case["instruction_index"]]) == case["heredocs"]  # type: ignore[index]


def _single_word(word: str) -> list[tuple[str, bool, bool, int | None]]:
    found = heredoc_word(word)
    return [found] if found else []


@pytest.mark.parametrize("word", HEREDOC["heredoc_word_cases"]["valid_name_EOF"])
def test_heredoc_word_valid(word: str) -> None:
    assert [name for name, *_ in _single_word(word)] == ["EOF"]


@pytest.mark.parametrize("word", HEREDOC["heredoc_word_cases"]["invalid_error"])
def test_heredoc_word_invalid(word: str) -> None:
    with pytest.raises(ParseError):
        _single_word(word)


@pytest.mark.parametrize("word", HEREDOC["heredoc_word_cases"]["not_heredoc"])
def test_heredoc_word_not_heredoc(word: str) -> None:
    assert _single_word(word) == []


@pytest.mark.parametrize("case", HEREDOC["heredoc_names_from_line"]["cases"],
                         ids=lambda c: c["line"])
def test_heredoc_names_from_line(case: dict[str, object]) -> None:
    keyword_and_rest = str(case["line"]).split(" ", 1)[1]
    names = [name for name, *_ in heredoc_words(keyword_and_rest)]
    assert (names or None) == case["heredoc_names"]


def test_json_form_has_no_heredocs() -> None:
    nodes = parse_nodes(HEREDOC["json_form_has_no_heredocs"]["dockerfile"]).nodes
    assert [n.heredocs for n in nodes[1:]] == [(), (), ()]


@pytest.mark.parametrize("case", EXTRA["word_splitting"]["cases"], ids=lambda c: c["input"])
def test_word_splitting(case: dict[str, object]) -> None:
    assert split_words(str(case["input"])) == case["expected_words"]


@pytest.mark.parametrize("case", EXTRA["json_arrays"]["valid"], ids=lambda c: c["text"])
def test_json_arrays(case: dict[str, object]) -> None:
    node = parse_nodes(f"CMD {case['text']}").nodes[0]
    assert node.json and list(node.args) == case["expected_elements"]


@pytest.mark.parametrize("text", EXTRA["json_arrays"]["not_string_array"])
def test_json_arrays_of_non_strings_are_errors(text: str) -> None:
    with pytest.raises(ParseError, match="arrays must be comprised of strings only"):
        parse_nodes(f"CMD {text}")


@pytest.mark.parametrize("case", EXTRA["name_value"]["cases"], ids=lambda c: c["args"])
def test_name_value(case: dict[str, object]) -> None:
    text = f"{case['instruction']} {case['args']}"
    if "expected_error" in case:
        with pytest.raises(ParseError, match=str(case["expected_error"])):
            parse_nodes(text)
    else:
        assert list(parse_nodes(text).nodes[0].args) == case["expected_values"]


@pytest.mark.parametrize("case", EXTRA["directives"]["cases"], ids=lambda c: c["text"])
def test_directives(case: dict[str, object]) -> None:
    result = parse_nodes(str(case["text"]) + "FROM x\n")
    expected = {d["name"]: d["value"] for d in case["expected"]}  # type: ignore[union-attr]
    assert result.directives == expected
