#!/usr/bin/env python3
"""Long fuzz runs of the word expander and the ignore matcher (hypothesis).

    python bench/fuzz_words.py [--examples 10000]

Checks, each for ``--examples`` random inputs:

* expander: any word and environment either expands or raises ExpansionError,
  and the single-word, tracking and splitting entry points agree;
* glob trims: ``${V#p}``, ``${V##p}``, ``${V%p}``, ``${V%%p}`` and ``${V/p/r}``
  equal a brute-force reference that tries every cut of the value;
* ignore matcher: any pattern list either compiles or raises IgnoreError, and
  ``excluded``, ``matches_parent_aware`` with and without parent results agree.

Prints examples run and seconds per check; exits non-zero on the first failure.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder.errors import ExpansionError, IgnoreError
from builder.ignore import IgnoreMatcher, clean_path
from builder.syntax.shell import expand_word, expand_words, process_word

WORD_PIECES = list("${}:-+?#%/\\`'\" *a_Z1\t\n한")
WORD_PIECES += ["${A", "${A:-", "${A#", "${A##", "${A%", "${A//", "$A", "}"]
WORDS = st.lists(st.sampled_from(WORD_PIECES), max_size=40).map("".join)
NAMES = st.sampled_from(["A", "B", "Z", "a_", "1"])
ENVS = st.dictionaries(NAMES, st.text(alphabet="ab *?\\/ \n", max_size=10))
GLOBS = st.lists(st.sampled_from(["a", "b", "*", "?", "\\*", "\\?"]), max_size=6)
VALUES = st.text(alphabet="ab*?\n", max_size=12)
PATTERN_PIECES = st.sampled_from(list("*?[]^-\\/!ab.") + ["**", "**/"])
PATTERNS = st.lists(PATTERN_PIECES, min_size=1, max_size=14).map("".join)
PATH_PARTS = st.sampled_from(["a", "b", "ab", ".a", "a*b", "[a]", "-", "a\\b"])
PATHS = st.lists(PATH_PARTS, min_size=1, max_size=6).map("/".join)


def check_expander(profile: settings) -> None:
    @profile
    @given(WORDS, ENVS, st.sampled_from(["\\", "`"]))
    def run(word: str, env: dict[str, str], escape: str) -> None:
        try:
            result = process_word(word, env, escape)
        except ExpansionError:
            return
        assert result.value == expand_word(word, env, escape)
        assert not result.used & result.unresolved
        assert all(expand_words(word, env, escape))

    run()


def glob_matches(tokens: tuple[str, ...], text: str) -> bool:
    """Brute-force shell glob: ``*`` and ``?`` stop at newlines, like the expander."""

    @cache
    def at(t: int, s: int) -> bool:
        if t == len(tokens):
            return s == len(text)
        token = tokens[t]
        if token == "*":
            return at(t + 1, s) or (s < len(text) and text[s] != "\n" and at(t, s + 1))
        if s == len(text):
            return False
        if token == "?":
            return text[s] != "\n" and at(t + 1, s + 1)
        return text[s] == token[-1] and at(t + 1, s + 1)

    return at(0, 0)


def check_glob_trims(profile: settings) -> None:
    @profile
    @given(GLOBS, VALUES)
    def run(pieces: list[str], value: str) -> None:
        tokens = tuple(pieces)
        pattern = "".join(pieces)
        env = {"V": value}
        ends = [i for i in range(len(value) + 1) if glob_matches(tokens, value[:i])]
        starts = [i for i in range(len(value) + 1) if glob_matches(tokens, value[i:])]
        if pattern.startswith(("#", "%")):
            return
        assert expand_word(f"${{V#{pattern}}}", env) == value[ends[0] if ends else 0 :]
        assert expand_word(f"${{V##{pattern}}}", env) == value[ends[-1] if ends else 0 :]
        shortest, longest = (starts[-1], starts[0]) if starts else (len(value), len(value))
        assert expand_word(f"${{V%{pattern}}}", env) == value[:shortest]
        assert expand_word(f"${{V%%{pattern}}}", env) == value[:longest]
        if not pattern or "/" in pattern:
            return
        first = next(
            ((i, j) for i in range(len(value) + 1) for j in range(len(value), i - 1, -1)
             if glob_matches(tokens, value[i:j])),
            None,
        )
        want = value if first is None else value[: first[0]] + "X" + value[first[1] :]
        assert expand_word(f"${{V/{pattern}/X}}", env) == want

    run()


def check_ignore(profile: settings) -> None:
    @profile
    @given(st.lists(PATTERNS, max_size=5), st.lists(PATHS, max_size=6))
    def run(patterns: list[str], paths: list[str]) -> None:
        try:
            matcher = IgnoreMatcher(patterns)
        except IgnoreError:
            return
        for raw in paths:
            path = clean_path(raw)
            excluded = matcher.excluded(path)
            assert matcher.matches_parent_aware(path)[0] is excluded
            parts = path.split("/")
            results = None
            matched = False
            for depth in range(1, len(parts) + 1):
                matched, results = matcher.matches_parent_aware("/".join(parts[:depth]), results)
            assert matched is excluded
            matcher.matches(path)

    run()


CHECKS: dict[str, Callable[[settings], None]] = {
    "expander": check_expander,
    "glob-trims": check_glob_trims,
    "ignore": check_ignore,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000)
    args = parser.parse_args()
    profile = settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    for name, check in CHECKS.items():
        start = time.perf_counter()
        try:
            check(profile)
        except AssertionError:
            print(f"{name}: FAILED", file=sys.stderr)
            raise
        print(f"{name}: {args.examples} examples in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
