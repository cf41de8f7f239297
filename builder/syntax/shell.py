"""Shell-word expansion of instruction arguments (``$V``, ``${V:-w}``, quotes, escapes).

Follows the semantics of BuildKit's word lexer: quotes and the escape character
are removed, variables are looked up in a plain mapping (never the process
environment), and ``expand_words`` additionally splits at unquoted white space,
including white space that comes from unquoted variable values.

Pattern operators (``#``, ``##``, ``%``, ``%%``, ``/``, ``//``) use shell glob
patterns (``*``, ``?``, escaped literals), matched here by a bit-parallel NFA:
time is linear in the value for a given pattern, so crafted input cannot make
the expander backtrack.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from builder.errors import ExpansionError

__all__ = [
    "EXPANDED_FLAGS",
    "EXPANDED_KEYWORDS",
    "Expansion",
    "env_from_list",
    "expand_word",
    "expand_words",
    "process_word",
    "process_words",
]

# Keywords whose arguments go through the expander (BuildKit's commands that
# implement ``Expand`` plus those its dispatcher expands itself: FROM's image
# reference and EXPOSE's ports). RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK,
# ONBUILD and MAINTAINER arguments are left for the shell or taken literally.
EXPANDED_KEYWORDS = frozenset(
    {
        "ADD", "ARG", "COPY", "ENV", "EXPOSE", "FROM",
        "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
    }
)

# Flags whose values are expanded, per keyword.
EXPANDED_FLAGS: Mapping[str, frozenset[str]] = {
    "ADD": frozenset({"chown", "chmod", "checksum"}),
    "COPY": frozenset({"chown", "chmod", "from"}),
    "FROM": frozenset({"platform"}),
    "RUN": frozenset({"mount"}),
}

_SPECIAL_PARAMS = frozenset("@*#?-$!0")
_NOT_SPACE = frozenset("\x1c\x1d\x1e\x1f")  # str.isspace() says yes, the reference says no
_MAX_DEPTH = 64  # nested ${...} levels
_MAX_STEPS = 4_000_000  # pattern-matching work per call, in characters scanned
_MAX_SUBSTITUTED = 1 << 20  # characters that variable values may add to one word


def _is_space(ch: str) -> bool:
    return ch.isspace() and ch not in _NOT_SPACE


@dataclass(frozen=True)
class Expansion:
    """The result of expanding one word, with the variables it referenced."""

    value: str
    used: frozenset[str]  # referenced and set (possibly empty)
    unresolved: frozenset[str]  # referenced but not set


def expand_word(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Expand variables and remove quotes and escapes; white space is kept."""
    if "$" not in word and "'" not in word and '"' not in word and escape not in word:
        return word
    return _Lexer(word, env, escape).run(split=False)[0]


def expand_words(word: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Expand like ``expand_word``, then split at unquoted, unescaped white space."""
    return _Lexer(word, env, escape).run(split=True)[1]


def process_word(word: str, env: Mapping[str, str], escape: str = "\\") -> Expansion:
    """``expand_word`` that also reports which variables were used or missing."""
    lexer = _Lexer(word, env, escape)
    value = lexer.run(split=False)[0]
    return Expansion(value, frozenset(lexer.used), frozenset(lexer.unresolved))


def process_words(
    word: str, env: Mapping[str, str], escape: str = "\\"
) -> tuple[list[str], frozenset[str], frozenset[str]]:
    """``expand_words`` that also returns the used and the unresolved variable names."""
    lexer = _Lexer(word, env, escape)
    words = lexer.run(split=True)[1]
    return words, frozenset(lexer.used), frozenset(lexer.unresolved)


def env_from_list(entries: Iterable[str]) -> dict[str, str]:
    """Turn ``KEY=VALUE`` strings into a mapping; a bare ``KEY`` is empty, the last entry wins."""
    env: dict[str, str] = {}
    for entry in entries:
        key, _, value = entry.partition("=")
        env[key] = value
    return env


class _SyntaxProblem(Exception):
    """Raised inside the lexer; ``run`` turns it into an ExpansionError naming the word."""


class _Unterminated(_SyntaxProblem):
    """The input ended while looking for a closing character."""


class _Words:
    """Accumulates words for splitting; mirrors how the reference tracks them."""

    __slots__ = ("words", "parts", "length", "in_word")

    def __init__(self) -> None:
        self.words: list[str] = []
        self.parts: list[str] = []
        self.length = 0
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if _is_space(ch):
            if self.in_word and self.length:
                self.words.append("".join(self.parts))
                self.parts, self.length, self.in_word = [], 0, False
        else:
            self.add_raw(ch)

    def add_split(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw(self, text: str) -> None:
        self.parts.append(text)
        self.length += len(text)
        self.in_word = True

    def finish(self) -> list[str]:
        if self.length:
            self.words.append("".join(self.parts))
        return self.words


class _Lexer:
    """One expansion of one word: a hand-written scanner over ``text``."""

    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        if len(escape) != 1:
            raise ExpansionError(f"expanding words: bad escape character {escape!r}")
        self.text = text
        self.end = len(text)
        self.pos = 0
        self.env = env
        self.escape = escape
        self.used: set[str] = set()
        self.unresolved: set[str] = set()
        self.depth = 0
        self.budget = _MAX_STEPS
        self.substituted = 0

    def run(self, split: bool) -> tuple[str, list[str]]:
        words = _Words() if split else None
        try:
            value = self.until("", raw_escapes=False, words=words)
        except _SyntaxProblem as exc:
            raise ExpansionError(f'expanding "{self.text}": {exc}') from None
        return value, (words.finish() if words is not None else [])

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < self.end else ""

    def until(self, stop: str, raw_escapes: bool, words: _Words | None = None) -> str:
        """Process up to (and consuming) ``stop``; ``""`` means the end of the text."""
        out: list[str] = []
        text, escape = self.text, self.escape
        while self.pos < self.end:
            ch = text[self.pos]
            if stop and ch == stop:
                self.pos += 1
                return "".join(out)
            if ch == "'" or ch == '"':
                part = self.single_quoted() if ch == "'" else self.double_quoted()
                out.append(part)
                if words is not None:
                    words.add_raw(part)
                continue
            if ch == "$":
                part = self.dollar()
                out.append(part)
                if words is not None:
                    words.add_split(part)
                continue
            self.pos += 1
            if ch == escape:
                if raw_escapes:
                    out.append(ch)
                    if words is not None:
                        words.add_raw(ch)
                if self.pos >= self.end:
                    break  # a trailing escape is dropped
                ch = text[self.pos]
                self.pos += 1
                if words is not None:
                    words.add_raw(ch)
            elif words is not None:
                words.add_char(ch)
            out.append(ch)
        if stop:
            raise _Unterminated(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out)

    def single_quoted(self) -> str:
        start = self.pos + 1
        close = self.text.find("'", start)
        if close < 0:
            self.pos = self.end
            raise _Unterminated(
                "unexpected end of statement while looking for matching single-quote"
            )
        self.pos = close + 1
        return self.text[start:close]

    def double_quoted(self) -> str:
        out: list[str] = []
        text, escape = self.text, self.escape
        self.pos += 1
        while True:
            if self.pos >= self.end:
                raise _Unterminated(
                    "unexpected end of statement while looking for matching double-quote"
                )
            ch = text[self.pos]
            if ch == '"':
                self.pos += 1
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.pos += 1
            if ch == escape:
                if self.pos >= self.end:
                    continue  # reported as unterminated on the next turn
                if text[self.pos] in ('"', "$", escape):
                    ch = text[self.pos]
                    self.pos += 1
            out.append(ch)

    def name(self) -> str:
        """Read a variable name: letters, digits, ``_``; or all digits; or one special parameter."""
        text, start = self.text, self.pos
        if start >= self.end:
            return ""
        first = text[start]
        if first.isdecimal():
            pos = start
            while pos < self.end and text[pos].isdecimal():
                pos += 1
            self.pos = pos
            return text[start:pos]
        if first in _SPECIAL_PARAMS:
            self.pos += 1
            return first
        pos = start
        while pos < self.end and (text[pos].isalpha() or text[pos].isdecimal() or text[pos] == "_"):
            pos += 1
        self.pos = pos
        return text[start:pos]

    def lookup(self, name: str) -> tuple[str, bool]:
        try:
            value = self.env[name]
        except KeyError:
            self.unresolved.add(name)
            return "", False
        self.used.add(name)
        return value, True

    def dollar(self) -> str:
        part = self.substitution()
        self.substituted += len(part)
        if self.substituted > _MAX_SUBSTITUTED:
            raise _SyntaxProblem(
                f"variable values add more than {_MAX_SUBSTITUTED} characters to one word"
            )
        return part

    def substitution(self) -> str:
        self.pos += 1  # the "$"
        if self.peek() != "{":
            name = self.name()
            return self.lookup(name)[0] if name else "$"
        self.pos += 1
        first = self.peek()
        if not first:
            raise _Unterminated("syntax error: missing '}'")
        if first in "{}:":
            raise _SyntaxProblem("syntax error: bad substitution")
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise _SyntaxProblem(f"substitutions nested more than {_MAX_DEPTH} deep")
        try:
            return self.braced(self.name())
        finally:
            self.depth -= 1

    def braced(self, name: str) -> str:
        op = self.peek()
        if not op:
            raise _Unterminated("syntax error: missing '}'")
        self.pos += 1
        if op == "}":
            return self.lookup(name)[0]
        if op == "/":
            return self.substitute(name)
        colon = op == ":"
        if colon:
            op = self.peek()
            self.pos += 1
            if not op:
                raise _Unterminated("syntax error: missing '}'")
        modifier = (":" if colon else "") + op
        if op not in "+-?#%" or (colon and op in "#%"):
            raise _SyntaxProblem(f"unsupported modifier ({modifier}) in substitution")
        word = self.operand("}", raw_escapes=op in "#%", missing="syntax error: missing '}'")
        value, is_set = self.lookup(name)
        empty = not is_set or (colon and value == "")
        if op == "-":
            return word if empty else value
        if op == "+":
            return "" if empty else word
        if op == "?":
            if not is_set:
                raise _SyntaxProblem(f"{name}: {word or 'is not allowed to be unset'}")
            if empty:
                raise _SyntaxProblem(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        longest = word.startswith(op)
        glob = _Glob(word[1:] if longest else word, self.escape)
        if op == "#":
            return value[glob.prefix_end(value, longest, self) :]
        start = glob.reversed().prefix_end(value[::-1], longest, self)
        return value[: len(value) - start]

    def operand(self, stop: str, raw_escapes: bool, missing: str) -> str:
        try:
            return self.until(stop, raw_escapes)
        except _Unterminated:
            raise _Unterminated(missing) from None

    def substitute(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.pos += 1
        pattern = self.operand("/", raw_escapes=True, missing="syntax error: missing '/' in ${}")
        replacement = self.operand("}", raw_escapes=True, missing="syntax error: missing '}'")
        value = self.lookup(name)[0]
        return _Glob(pattern, self.escape).replace(value, replacement, replace_all, self)

    def spend(self, steps: int) -> None:
        self.budget -= steps
        if self.budget < 0:
            raise _SyntaxProblem("pattern matching needs too much work")


# Token markers; literal tokens are single characters, so these never collide.
_STAR = "<star>"
_ANY = "<any>"


class _Glob:
    """A shell glob (``*``, ``?``, literals) compiled to a bit-parallel NFA.

    Bit ``k`` of a state set means "about to match token ``k``"; bit ``len(tokens)``
    means "matched". ``*`` and ``?`` do not match a newline, like the reference.
    """

    def __init__(self, pattern: str | list[str], escape: str = "\\") -> None:
        self.tokens = self.parse(pattern, escape) if isinstance(pattern, str) else pattern
        self.star_mask = 0
        self.any_mask = 0
        self.literal_masks: dict[str, int] = {}
        for k, token in enumerate(self.tokens):
            if token == _STAR:
                self.star_mask |= 1 << k
            elif token == _ANY:
                self.any_mask |= 1 << k
            else:
                self.literal_masks[token] = self.literal_masks.get(token, 0) | 1 << k
        self.accept = 1 << len(self.tokens)
        self.begin = self.close(1)
        self.masks: dict[str, int] = {}

    @staticmethod
    def parse(pattern: str, escape: str) -> list[str]:
        tokens: list[str] = []
        pos, end = 0, len(pattern)
        while pos < end:
            ch = pattern[pos]
            pos += 1
            if ch == "*":
                if not tokens or tokens[-1] != _STAR:
                    tokens.append(_STAR)
            elif ch == "?":
                tokens.append(_ANY)
            elif ch == escape:
                nxt = pattern[pos] if pos < end else ""
                if nxt in ("}", "/"):
                    continue  # the escape only protected the delimiter
                if not nxt or nxt not in ("*", "?", escape):
                    raise _SyntaxProblem(
                        f"invalid pattern ({pattern}) in substitution: "
                        f"invalid escape '{escape}{nxt}'"
                    )
                tokens.append(nxt)
                pos += 1
            else:
                tokens.append(ch)
        return tokens

    def reversed(self) -> _Glob:
        return _Glob(self.tokens[::-1])

    def close(self, states: int) -> int:
        return states | (states & self.star_mask) << 1

    def step(self, states: int, ch: str) -> int:
        mask = self.masks.get(ch)
        if mask is None:
            mask = self.literal_masks.get(ch, 0)
            if ch != "\n":
                mask |= self.any_mask
            self.masks[ch] = mask
        moved = (states & mask) << 1
        if ch != "\n":
            moved |= states & self.star_mask
        return self.close(moved)

    def prefix_end(self, value: str, longest: bool, lexer: _Lexer, start: int = 0) -> int:
        """End of the shortest (or longest) match starting at ``start``; ``start`` if none."""
        states, best = self.begin, -1
        if states & self.accept:
            if not longest:
                return start
            best = start
        pos = start
        for ch in value[start:] if start else value:
            states = self.step(states, ch)
            pos += 1
            if not states:
                break
            if states & self.accept:
                if not longest:
                    return pos
                best = pos
        lexer.spend(pos - start + 1)
        return best if best >= 0 else start

    def match_end(self, value: str, start: int, lexer: _Lexer) -> int:
        """End of the longest match starting at ``start`` (one is known to exist)."""
        return self.prefix_end(value, True, lexer, start)

    def match_starts(self, value: str, lexer: _Lexer) -> list[bool]:
        """``starts[i]`` is true when some match begins at ``i`` (one backward scan)."""
        back = self.reversed()
        starts = [False] * (len(value) + 1)
        states = back.begin
        starts[-1] = bool(states & back.accept)
        for i in range(len(value) - 1, -1, -1):
            states = back.step(states, value[i]) | back.begin
            starts[i] = bool(states & back.accept)
        lexer.spend(len(value) + 1)
        return starts

    def replace(self, value: str, replacement: str, replace_all: bool, lexer: _Lexer) -> str:
        """Replace the leftmost-longest match (or every one, as the reference's regexp does)."""
        starts = self.match_starts(value, lexer)
        out: list[str] = []
        last_end = 0
        search = 0
        end = len(value)
        while search <= end:
            begin = search
            while begin <= end and not starts[begin]:
                begin += 1
            if begin > end:
                break
            stop = self.match_end(value, begin, lexer)
            out.append(value[last_end:begin])
            if stop > last_end or begin == 0:
                out.append(replacement)
            last_end = stop
            if not replace_all:
                break
            search = stop if stop > search else search + 1
        out.append(value[last_end:])
        return "".join(out)
