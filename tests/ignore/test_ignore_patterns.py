"""Ignore-pattern matching against the patternmatcher tables (fixtures/corpus/ignore)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from builder.errors import IgnoreError
from builder.ignore import IgnoreMatcher, _Pattern, clean_path, read_ignore_patterns

DATA = Path(__file__).resolve().parents[2] / "fixtures" / "corpus" / "ignore"


def load_cases() -> list[Any]:
    lines = (DATA / "cases.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"))) for line in lines[1:]]
    return [
        pytest.param(
            row["semantics"],
            json.loads(row["patterns_json"]),
            json.loads(row["path_json"]),
            row["expected"],
            id=f"row{row['id']}",
        )
        for row in rows
    ]


CASES = load_cases()
READALL = json.loads((DATA / "readall.json").read_text())


def test_row_count() -> None:
    assert len(CASES) == 138
    assert sum(1 for case in CASES if case.values[0] == "parent-aware") == 73


def walked(matcher: IgnoreMatcher, path: str) -> bool:
    """Feed parent results down the tree, as a directory walk does."""
    parts = path.split("/")
    results: tuple[bool, ...] | None = None
    matched = False
    for depth in range(1, len(parts) + 1):
        matched, results = matcher.matches_parent_aware("/".join(parts[:depth]), results)
    return matched


@pytest.mark.parametrize(("semantics", "patterns", "path", "expected"), CASES)
def test_cases(semantics: str, patterns: list[str], path: str, expected: str) -> None:
    if expected == "error":
        with pytest.raises(IgnoreError):
            IgnoreMatcher(patterns).matches(path)
        return
    matcher = IgnoreMatcher(patterns)
    want = expected == "match"
    if semantics == "legacy":
        assert matcher.matches(path) is want
    # Every row, legacy ones included, holds under the parent-aware rule.
    assert matcher.matches_parent_aware(path)[0] is want
    assert walked(matcher, path) is want
    if path.strip("/"):
        assert matcher.excluded(path) is want


SAMPLES = ("file", "a/b", "dir/dir2/file", "x.txt", "a/file.txt", "ace", ".foo", "x/dir2/y")


def compile_rows() -> list[Any]:
    lines = (DATA / "compile.tsv").read_text().splitlines()[1:]
    return [pytest.param(*line.split("\t"), id=f"row{i}") for i, line in enumerate(lines, 1)]


@pytest.mark.parametrize(("pattern_json", "kind", "regexp_unix", "regexp_windows"), compile_rows())
def test_compile(pattern_json: str, kind: str, regexp_unix: str, regexp_windows: str) -> None:
    pattern = _Pattern(json.loads(pattern_json))
    assert pattern.kind == kind
    if kind == "regexp":
        # Same language as the reference's expression; spot-check it on samples.
        reference = re.compile(regexp_unix)
        for sample in SAMPLES:
            assert pattern.test(sample) is bool(reference.search(sample)), sample


@pytest.mark.parametrize("case", READALL["readall_cases"], ids=lambda c: c["description"][:30])
def test_read_all(case: dict[str, Any]) -> None:
    assert read_ignore_patterns(case["input"] or "") == case["expected_patterns"]


@pytest.mark.parametrize(
    "case", READALL["pattern_list_cases"], ids=lambda c: c.get("note", "plain")
)
def test_pattern_list(case: dict[str, Any]) -> None:
    expected = case["expected"]
    if expected.get("error"):
        with pytest.raises(IgnoreError):
            IgnoreMatcher(case["patterns"])
        return
    matcher = IgnoreMatcher(case["patterns"])
    if "active_patterns" in expected:
        assert len(matcher.patterns) == expected["active_patterns"]
    if "has_exclusions" in expected:
        assert matcher.has_exceptions is expected["has_exclusions"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\ufeff# c\nfoo\r\n", ["foo"]),
        ("./a/../b//c/\n", ["b/c"]),
        ("  # not a comment\n", ["# not a comment"]),
        ("/\n", ["/"]),
    ],
)
def test_read_rules(text: str, expected: list[str]) -> None:
    assert read_ignore_patterns(text) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("", "."),
        ("a//b/./c/", "a/b/c"),
        ("/../a", "/a"),
        ("../../a", "../../a"),
        ("a/../..", ".."),
        ("//x", "/x"),
    ],
)
def test_clean_path(path: str, expected: str) -> None:
    assert clean_path(path) == expected


def test_error_names_the_pattern() -> None:
    with pytest.raises(IgnoreError) as info:
        IgnoreMatcher(["ok", "a[z-a]"])
    assert "a[z-a]" in str(info.value)


@pytest.mark.parametrize(
    ("patterns", "path", "expected"),
    [
        (["*.md", "!README.md"], "README.md", False),
        (["*.md", "!README.md"], "docs/x.md", False),
        (["**/*.md", "!README.md"], "docs/x.md", True),
        (["build"], "build/out/a.o", True),
        (["build", "!build/keep"], "build/keep/a", False),
        (["/abs"], "abs", True),
        (["!x", "*"], "x", True),
        (["*", "!x"], "x", False),
    ],
)
def test_excluded(patterns: list[str], path: str, expected: bool) -> None:
    assert IgnoreMatcher(read_ignore_patterns("\n".join(patterns))).excluded(path) is expected
