"""Declare-then-parse flags of one instruction (``--name=value`` words).

An instruction declares the flags it accepts, then parses the node's raw flag
words against them; anything undeclared is an ``InstructionError`` that lists
what is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from builder.errors import InstructionError
from builder.source import Location, Span

__all__ = ["FlagSet"]

Kind = Literal["string", "bool", "list"]


@dataclass
class FlagSet:
    """The flags ``keyword`` accepts, in declaration order."""

    keyword: str
    kinds: dict[str, Kind] = field(default_factory=dict)

    def string(self, *names: str) -> FlagSet:
        self.kinds.update((name, "string") for name in names)
        return self

    def boolean(self, *names: str) -> FlagSet:
        self.kinds.update((name, "bool") for name in names)
        return self

    def repeated(self, *names: str) -> FlagSet:
        self.kinds.update((name, "list") for name in names)
        return self

    def accepted(self) -> str:
        return ", ".join(f"--{name}" for name in self.kinds) or "none"

    def parse(
        self, words: tuple[str, ...], spans: tuple[Span, ...], file: str, fallback: Span
    ) -> dict[str, str | bool | tuple[str, ...]]:
        """Values by flag name: str, bool, or a tuple for repeatable flags."""
        values: dict[str, str | bool | tuple[str, ...]] = {}
        for index, word in enumerate(words):
            where = Location(file, spans[index] if index < len(spans) else fallback)
            name, has_value, value = word[2:].partition("=")
            kind = self.kinds.get(name)
            if kind is None:
                raise InstructionError(
                    f"{self.keyword}: unknown flag --{name} (accepted: {self.accepted()})", where
                )
            if kind == "list":
                if not has_value:
                    raise InstructionError(
                        f"{self.keyword}: missing a value on flag --{name}", where
                    )
                previous = values.get(name, ())
                assert isinstance(previous, tuple)
                values[name] = (*previous, value)
                continue
            if name in values:
                raise InstructionError(
                    f"{self.keyword}: duplicate flag specified: --{name}", where
                )
            if kind == "bool":
                if has_value and value.lower() not in ("true", "false"):
                    raise InstructionError(
                        f"{self.keyword}: expecting boolean value for flag --{name}, not: {value}",
                        where,
                    )
                values[name] = not has_value or value.lower() == "true"
            else:
                if not has_value:
                    raise InstructionError(
                        f"{self.keyword}: missing a value on flag --{name}", where
                    )
                values[name] = value
        return values
