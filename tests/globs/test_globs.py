"""builder.globs: the one Go-style glob implementation (filepath.Match, plus ``**``)."""

from __future__ import annotations

import pytest

from builder.errors import PatternError
from builder.globs import has_magic, match, translate


@pytest.mark.parametrize(("pattern", "name", "plain", "double"), [
    ("*.txt", "a.txt", True, True),
    ("*.txt", "d/a.txt", False, False),
    ("**/bar", "bar", False, True),  # ** is zero or more directories only with double_star
    ("**/bar", "a/b/bar", False, True),
    ("**", "x", True, True),
    ("c/**/bar", "c/d/e/bar", False, True),
    ("c/**/bar", "c/bar", False, True),
    ("c/**", "c/d/e", False, True),
    ("[a-c]?", "b1", True, True),
    ("[^a-c]?", "b1", False, False),
    ("\\*", "*", True, True),
])
def test_match(pattern: str, name: str, plain: bool, double: bool) -> None:
    assert match(pattern, name) is plain
    assert match(pattern, name, double_star=True) is double


@pytest.mark.parametrize(("pattern", "kind"), [
    ("a/b", "exact"), ("a/**", "prefix"), ("**/a", "suffix"), ("a*/b", "regexp"),
])
def test_translate_classifies(pattern: str, kind: str) -> None:
    assert translate(pattern)[0] == kind


@pytest.mark.parametrize("pattern", ["a[", "[]", "[z-a]", "a\\", "[a-"])
def test_go_rejects(pattern: str) -> None:
    with pytest.raises(PatternError, match="syntax error in pattern"):
        translate(pattern)


def test_has_magic() -> None:
    assert [has_magic(t) for t in ("a/b", "a*", "a?", "[ab]", "a\\b")] == [
        False, True, True, True, True]
