"""Property tests: bad patterns raise IgnoreError; good ones agree across matching modes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from builder.errors import IgnoreError
from builder.ignore import IgnoreMatcher, clean_path

PIECES = st.sampled_from(list("*?[]^-\\/!ab.") + ["**", "**/"])
PATTERN = st.lists(PIECES, min_size=1, max_size=12).map("".join)
NAMES = st.sampled_from(["a", "b", "ab", ".a", "a*b", "[a]", "-"])
PATH = st.lists(NAMES, min_size=1, max_size=5).map("/".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(PATTERN, max_size=4), st.lists(PATH, max_size=5))
def test_matchers_agree(patterns: list[str], paths: list[str]) -> None:
    try:
        matcher = IgnoreMatcher(patterns)
    except IgnoreError:
        return
    for path in paths:
        path = clean_path(path)
        excluded = matcher.excluded(path)
        assert matcher.matches_parent_aware(path)[0] is excluded
        parts = path.split("/")
        results = None
        for depth in range(1, len(parts) + 1):
            matched, results = matcher.matches_parent_aware("/".join(parts[:depth]), results)
        assert matched is excluded
        matcher.matches(path)
