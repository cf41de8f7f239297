"""Hypothesis strategies for Containerfile text: random and mutated corpus files.

Shared by ``test_fuzz.py`` (small budget) and ``bench/fuzz_parser.py`` (large).
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import strategies as st

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "corpus"
SEEDS = tuple(
    sorted((CORPUS / "real-world").rglob("*.Dockerfile"))[::7]
    + sorted((CORPUS / "parser" / "testfiles").glob("*/Dockerfile"))
    + [CORPUS / "parser" / "heredoc" / "Dockerfile"]
)

KEYWORDS = ("FROM", "RUN", "CMD", "COPY", "ADD", "ENV", "LABEL", "ARG", "EXPOSE", "VOLUME",
            "USER", "WORKDIR", "SHELL", "STOPSIGNAL", "MAINTAINER", "HEALTHCHECK", "ONBUILD",
            "ENTRYPOINT", "from", "Run", "BOGUS")
PIECES = ("--from=x", "--mount=type=cache,target=/a", "--link", "--", "--chown", "-- ",
          "<<EOF", "<<-'E O'", "3<<X", "EOF", "X", "E O", '["a", "b"]', "[1]", '["a"', "[",
          "]", '"', "'", "\\", "`", "=", " ", "\t", "\n", "\r\n", "\\\n", "`\n", "#", "# escape=`\n",
          "# syntax=x\n", "# check=skip=all\n", "a=b", "a", "AS", "NONE", "CMD", "$X", "${X:-y}",
          "é", "\u00a0", "\x00", "\ufeff", "{", "}", ":", ",", "1")


@st.composite
def random_containerfiles(draw: st.DrawFn) -> str:
    """Lines made of keywords and the language's special pieces."""
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        words = [draw(st.sampled_from(KEYWORDS))]
        words += draw(st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=4)),
                               max_size=8))
        lines.append(" ".join(words) if draw(st.booleans()) else "".join(words))
    return "\n".join(lines) + draw(st.sampled_from(("", "\n", "\\", "\n\n")))


@st.composite
def mutated_corpus_files(draw: st.DrawFn) -> bytes:
    """A corpus file with bytes inserted, deleted or replaced at random places."""
    data = bytearray(draw(st.sampled_from(SEEDS)).read_bytes())
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        choice = draw(st.integers(0, 2))
        if choice == 0:
            insert = draw(st.one_of(st.sampled_from(PIECES).map(str.encode), st.binary(max_size=3)))
            data[at:at] = insert
        elif choice == 1:
            del data[at : at + draw(st.integers(1, 40))]
        else:
            data[at : at + 1] = draw(st.binary(min_size=1, max_size=1))
    return bytes(data)


containerfiles = st.one_of(random_containerfiles(), mutated_corpus_files())
