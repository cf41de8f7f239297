"""Property tests: the expander fails only with ExpansionError, whatever the input."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from builder.errors import ExpansionError
from builder.syntax.shell import expand_word, expand_words, process_word

PIECES = list("${}:-+?#%/\\`'\" *a_Z1\t\n한") + ["${A", "${A:-", "${A#", "${A//", "$A", "}"]
ALPHABET = st.sampled_from(PIECES)
WORDS = st.lists(ALPHABET, max_size=30).map("".join)
NAMES = st.sampled_from(["A", "B", "Z", "a_", "1"])
ENVS = st.dictionaries(NAMES, st.text(alphabet="ab *?\\/ ", max_size=8))


@settings(max_examples=300, deadline=None)
@given(WORDS, ENVS, st.sampled_from(["\\", "`"]))
def test_only_expansion_errors(word: str, env: dict[str, str], escape: str) -> None:
    try:
        value = process_word(word, env, escape)
    except ExpansionError:
        return
    assert value.value == expand_word(word, env, escape)
    assert not value.used & value.unresolved
    words = expand_words(word, env, escape)
    assert all(w for w in words)
