"""Go-style glob patterns, the one implementation: ``filepath.Match`` plus ``**``.

``*`` matches any run of characters but ``/``, ``?`` one character but ``/``,
``[...]`` a bracket expression (ranges, ``^`` to negate) and a backslash
escapes the next character, as Go's ``filepath.Match``. With ``double_star``
(moby/patternmatcher, ignore files and ``COPY --parents``) a ``**`` component
matches any number of directories, zero included; without it ``**`` is two
``*`` (Go's COPY sources, where ``**`` does not cross ``/``).

Patterns Go would reject (an unterminated or empty bracket expression, a bad
range, a trailing backslash) raise ``PatternError``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

from builder.errors import PatternError

__all__ = ["Kind", "compile_glob", "components", "has_magic", "match", "translate"]

Kind = Literal["exact", "prefix", "suffix", "regexp"]
_MAGIC = re.compile(r"[*?\[\\]")


def has_magic(text: str) -> bool:
    """Whether ``text`` holds a glob character (or an escape)."""
    return _MAGIC.search(text) is not None


def translate(pattern: str, *, double_star: bool = True) -> tuple[Kind, str]:
    """Classify ``pattern`` and build its regular expression (for ``fullmatch``).

    ``kind`` is ``exact`` (no glob characters), ``prefix`` (literal text then a final
    ``**``), ``suffix`` (a leading ``**`` then literal text) or ``regexp``; the first
    three let callers test with string operations.
    """
    out: list[str] = []
    kind: Kind = "exact"
    pos, end = 0, len(pattern)
    while pos < end:
        ch = pattern[pos]
        first = pos == 0
        pos += 1
        if ch == "*":
            if double_star and pos < end and pattern[pos] == "*":
                pos += 1
                if pos < end and pattern[pos] == "/":
                    pos += 1
                if pos >= end:
                    out.append(".*")
                    kind = "prefix" if kind == "exact" else "regexp"
                else:
                    if not out or out[-1] != "(?:.*/)?":
                        out.append("(?:.*/)?")
                    kind = "regexp"
                if first:
                    kind = "suffix"
            else:
                out.append("[^/]*")
                kind = "regexp"
        elif ch == "?":
            out.append("[^/]")
            kind = "regexp"
        elif ch == "\\":
            if pos >= end:
                raise PatternError(f"syntax error in pattern {pattern!r}: trailing backslash")
            out.append(re.escape(pattern[pos]))
            pos += 1
            kind = "regexp"
        elif ch == "[":
            cls, pos = _bracket(pattern, pos)
            out.append(cls)
            kind = "regexp"
        else:
            out.append(re.escape(ch))
    return kind, "".join(out)


@lru_cache(maxsize=1024)
def compile_glob(pattern: str, *, double_star: bool = False) -> re.Pattern[str]:
    return re.compile(translate(pattern, double_star=double_star)[1], re.DOTALL)


def match(pattern: str, name: str, *, double_star: bool = False) -> bool:
    """Whether ``name`` matches ``pattern`` (Go's ``filepath.Match`` without
    ``double_star``)."""
    return compile_glob(pattern, double_star=double_star).fullmatch(name) is not None


def components(pattern: str) -> list[re.Pattern[str] | None] | None:
    """Per-directory-level regexes of a pattern (None for a ``**`` level).

    The whole result is None when the pattern cannot be cut at its slashes
    (an escaped slash, or a bracket expression that could match one).
    """
    comps: list[re.Pattern[str] | None] = []
    for text in pattern.split("/"):
        if "**" in text:
            comps.append(None)
            continue
        if text.endswith("\\") or "[^" in text or re.search(r"\[[^\]]*$", text):
            return None
        try:
            comps.append(re.compile(translate(text)[1]))
        except PatternError:
            return None
    return comps


def _class_char(pattern: str, pos: int) -> tuple[str, int]:
    """One (possibly escaped) character of a bracket expression."""
    if pos >= len(pattern) or pattern[pos] in "-]":
        raise PatternError(f"syntax error in pattern {pattern!r}: bad bracket expression")
    if pattern[pos] == "\\":
        pos += 1
        if pos >= len(pattern):
            raise PatternError(f"syntax error in pattern {pattern!r}: bad bracket expression")
    if pos + 1 >= len(pattern):
        raise PatternError(f"syntax error in pattern {pattern!r}: unterminated bracket "
                           "expression")
    return pattern[pos], pos + 1


def _bracket(pattern: str, pos: int) -> tuple[str, int]:
    """Translate the bracket expression after ``[`` at ``pos``; the regex and the end."""
    negated = pos < len(pattern) and pattern[pos] == "^"
    if negated:
        pos += 1
    items: list[str] = []
    while True:
        if pos < len(pattern) and pattern[pos] == "]" and items:
            pos += 1
            break
        lo, pos = _class_char(pattern, pos)
        hi = lo
        if pattern[pos] == "-":
            hi, pos = _class_char(pattern, pos + 1)
        if hi < lo:
            raise PatternError(f"syntax error in pattern {pattern!r}: invalid character "
                               f"class range {lo}-{hi}")
        items.append(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}")
    return ("[^" if negated else "[") + "".join(items) + "]", pos
