"""argparse as Buildah's command line behaves: usage errors exit 125, booleans take
``--flag``, ``--flag=true`` and ``--flag=false``.

Buildah (cobra) exits 125 for every error, a bad flag included, and scripts check
for that; argparse's own ``exit(2)`` is replaced here. A Go boolean flag never
takes the next word as its value (``--rm .`` names the context), so a boolean
option (``BoolFlag``, or any optional-value option whose bare form means True)
given bare is rewritten to ``--flag=true`` before argparse sees it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["USAGE_EXIT", "BoolFlag", "Parser", "parse_bool"]

USAGE_EXIT = 125  # Buildah's status for a command line it cannot parse
_TRUE = ("true", "1", "t", "yes")
_FALSE = ("false", "0", "f", "no")


def parse_bool(text: str) -> bool:
    """Go's strconv.ParseBool spellings (and yes/no)."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


class BoolFlag(argparse.Action):
    """A Go-style boolean: ``--flag`` or ``--flag=BOOL``; the value is never the next
    word. ``default`` may be None to tell "not given" from false."""

    def __init__(self, option_strings: Sequence[str], dest: str, default: Any = False,
                 help: str | None = None, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs="?", const=True, default=default,
                         type=parse_bool, help=help, metavar="BOOL", **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, True if values is None else values)

    def format_usage(self) -> str:
        return self.option_strings[0]


def _is_bool(action: argparse.Action) -> bool:
    """A boolean option: ``BoolFlag``, or any optional-value option whose bare form
    means True (``--tls-verify`` of the registry flags)."""
    return isinstance(action, BoolFlag) or (action.nargs == "?" and action.const is True
                                            and bool(action.option_strings))


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors exit 125 and whose ``BoolFlag`` options
    never consume the following word."""

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None
                         ) -> tuple[argparse.Namespace, list[str]]:
        words = list(sys.argv[1:] if args is None else args)
        bools = {option for action in self._actions if _is_bool(action)
                 for option in action.option_strings}
        if bools:
            out: list[str] = []
            for position, word in enumerate(words):
                if word == "--":
                    out += words[position:]
                    break
                out.append(f"{word}=true" if word in bools else word)
            words = out
        return super().parse_known_args(words, namespace)

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_EXIT, f"Error: {self.prog}: {message}\n"
                              f"See '{self.prog} --help'.\n")
