"""Shell-word expansion against BuildKit's data files (fixtures/corpus/shell-words)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from builder.errors import ExpansionError
from builder.syntax.shell import (
    EXPANDED_KEYWORDS,
    Expansion,
    env_from_list,
    expand_word,
    expand_words,
    process_word,
    process_words,
)

DATA = Path(__file__).resolve().parents[2] / "fixtures" / "corpus" / "shell-words"
ENV_VAR_ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}


def env_var_cases() -> list[Any]:
    """``envVarTest``: ``platform|input|expected`` lines, Linux platforms only."""
    cases = []
    for number, raw in enumerate((DATA / "envVarTest").read_text().splitlines(), 1):
        line = raw.strip()
        if raw.startswith("#") or not line:
            continue
        platform, text, expected = (field.strip() for field in line.split("|"))
        if platform in ("A", "U"):
            cases.append(pytest.param(text, expected, id=f"L{number}"))
    return cases


def words_cases() -> list[Any]:
    """``wordsTest``: ``ENV`` lines accumulate; others are ``input | w1,w2``."""
    cases, env = [], {}
    for number, line in enumerate((DATA / "wordsTest").read_text().split("\n"), 1):
        if line.startswith("#") or not line:
            continue
        if line.startswith("ENV "):
            name, _, value = line[4:].lstrip(" ").partition("=")
            env = {**env, name: value}
            continue
        text, expected = line.split("|")
        words = expected.lstrip(" ").split(",")
        cases.append(pytest.param(text.strip(), words, env, id=f"L{number}"))
    return cases


PROCESS = json.loads((DATA / "process-cases.json").read_text())


def process_cases(group: str) -> list[Any]:
    return [pytest.param(case, id=f"{group}-{i}") for i, case in enumerate(PROCESS[group]["cases"])]


ENV_VAR_CASES = env_var_cases()
WORDS_CASES = words_cases()
PROCESS_CASES = [
    *process_cases("process_with_matches"),
    *process_cases("platform_release_name"),
    *process_cases("mandatory_vars"),
]


def test_case_counts() -> None:
    assert len(ENV_VAR_CASES) == 228
    assert len(WORDS_CASES) == 24
    assert len(PROCESS_CASES) == 47 + 3 + 6


@pytest.mark.parametrize(("text", "expected"), ENV_VAR_CASES)
def test_env_var(text: str, expected: str) -> None:
    if expected == "error":
        with pytest.raises(ExpansionError):
            expand_word(text, ENV_VAR_ENV)
    else:
        assert expand_word(text, ENV_VAR_ENV) == expected


@pytest.mark.parametrize(("text", "expected", "env"), WORDS_CASES)
def test_words(text: str, expected: list[str], env: dict[str, str]) -> None:
    if expected == ["error"]:
        with pytest.raises(ExpansionError):
            expand_words(text, env)
    else:
        assert expand_words(text, env) == expected


@pytest.mark.parametrize("case", PROCESS_CASES)
def test_process_with_matches(case: dict[str, Any]) -> None:
    if case.get("expect_error"):
        with pytest.raises(ExpansionError) as info:
            process_word(case["input"], case["env"])
        assert case.get("error_contains", "") in str(info.value)
        return
    result = process_word(case["input"], case["env"])
    assert result.value == case["expected"]
    if "matched" in case:
        assert result.used == frozenset(case["matched"])
        assert result.unresolved == frozenset(case["unmatched"])


@pytest.mark.parametrize("case", process_cases("env_lookup"))
def test_env_from_list(case: dict[str, Any]) -> None:
    assert env_from_list(case["env_list"]).get(case["name"], "") == case["value"]


def test_process_words_tracks_names() -> None:
    words, used, unresolved = process_words("$A ${B:-x y} '$C'", {"A": "1 2"})
    assert words == ["1", "2", "x", "y", "$C"]
    assert used == {"A"} and unresolved == {"B"}


def test_expansion_is_frozen_value() -> None:
    assert process_word("a$X", {"X": "b"}) == Expansion("ab", frozenset({"X"}), frozenset())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a`$X", "a$X"),
        ('"a`"b"', 'a"b'),
        ("C:\\dir\\$X", "C:\\dir\\v"),
        ("${Y%%`*}", "ab"),
    ],
)
def test_backtick_escape(text: str, expected: str) -> None:
    assert expand_word(text, {"X": "v", "Y": "ab*"}, escape="`") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${X:?}", 'expanding "${X:?}": X: is not allowed to be unset'),
        ("${E:?}", 'expanding "${E:?}": E: is not allowed to be empty'),
        ("${X:?custom $E here}", "X: custom  here"),
        ("${X", "syntax error: missing '}'"),
        ("${}", "bad substitution"),
        ("${X:=a}", "unsupported modifier (:=) in substitution"),
        ("${X#\\a}", "invalid escape"),
        ("'abc", "matching single-quote"),
    ],
)
def test_error_messages(text: str, message: str) -> None:
    with pytest.raises(ExpansionError) as info:
        expand_word(text, {"E": ""})
    assert message in str(info.value)
    assert info.value.location is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${V#*/}", "b/c.d"),
        ("${V##*/}", "c.d"),
        ("${V%/*}", "a/b"),
        ("${V%%/*}", "a"),
        ("${V%.?}", "a/b/c"),
        ("${V/\\//-}", "a-b/c.d"),
        ("${V//\\//-}", "a-b-c.d"),
        ("${V//[/x}", "a/b/c.d"),
        ("${V//*/x}", "x"),
        ("${V/#/x}", "a/b/c.d"),
        ("${N//?/ab}", "ab\nab"),
    ],
)
def test_pattern_operators(text: str, expected: str) -> None:
    assert expand_word(text, {"V": "a/b/c.d", "N": "x\ny"}) == expected


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(ExpansionError):
        expand_word("${A:-" * 500 + "x" + "}" * 500, {})


def test_long_pattern_input_is_linear() -> None:
    value = "a" * 20000
    assert expand_word("${V##*a*a*a*a*a*a*b}", {"V": value}) == value
    assert expand_word("${V//a*a*a*b/x}", {"V": value}) == value


def test_expanded_keywords() -> None:
    assert {"ADD", "COPY", "ENV", "ARG", "FROM", "WORKDIR", "USER", "LABEL"} <= EXPANDED_KEYWORDS
    assert not {"RUN", "CMD", "ENTRYPOINT", "SHELL", "ONBUILD", "HEALTHCHECK"} & EXPANDED_KEYWORDS
