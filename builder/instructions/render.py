"""Typed instructions back to Containerfile text.

``render(instruction)`` writes text that parses to an equal instruction
(location and original text aside): flags are re-quoted, arguments that
would not survive white-space splitting use the JSON form, heredoc bodies
follow their line, and the instruction's comments precede it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from builder.errors import ParseError
from builder.instructions import model as m
from builder.syntax.nodes import json_array, split_words

__all__ = ["render", "render_containerfile"]

_PLAIN_FLAG = re.compile(r"[^\s\"'\\`]*")
_SPACE = re.compile(r"\s")


def _flag(word: str, escape: str) -> str:
    if _PLAIN_FLAG.fullmatch(word):
        return word
    escaped = word.replace(escape, escape + escape).replace('"', escape + '"')
    return f'"{escaped}"'


def _json(values: Iterable[str]) -> str:
    return json.dumps(list(values), ensure_ascii=False)


def _words(values: tuple[str, ...]) -> str:
    """White-space separated words, or the JSON form when some word needs it."""

    plain = " ".join(values)
    if values and all(v and not _SPACE.search(v) for v in values):
        try:
            if json_array(plain) is None:
                return plain
        except ParseError:
            pass
    return _json(values)


def _command(command: m.Command) -> str:
    if command.is_exec:
        return _json(command.args)
    return command.args[0] if command.args else ""


def _heredocs(docs: tuple[m.Heredoc, ...]) -> str:
    return "".join(
        "\n" + doc.body + ("" if not doc.body or doc.body.endswith("\n") else "\n") + doc.name
        for doc in docs
    )


def _pairs(pairs: tuple[tuple[str, str], ...], legacy: bool) -> str:
    if legacy:
        return f"{pairs[0][0]} {pairs[0][1]}"
    return " ".join(f"{name}={value}" for name, value in pairs)


def _label(pairs: tuple[tuple[str, str], ...], escape: str) -> str:
    """name=value pairs; the legacy ``LABEL name value`` form when a value is not one word."""
    if len(pairs) == 1 and split_words(pairs[0][1], escape) != [pairs[0][1]]:
        return _pairs(pairs, True)
    return _pairs(pairs, False)


def _copy(i: Any, escape: str) -> str:
    sources = (*i.sources, i.dest)
    return _words(sources) if not i.heredocs else " ".join(sources)


def _healthcheck(i: m.HealthcheckInstruction, escape: str) -> str:
    if i.test is None:
        return "NONE"
    if i.test[0] == "CMD-SHELL":
        return f"CMD {i.test[1]}"
    return f"CMD {_json(i.test[1:])}"


_ARGUMENTS: dict[type, Callable[[Any, str], str]] = {
    m.FromInstruction: lambda i, e: i.image + (f" AS {i.stage_name}" if i.stage_name else ""),
    m.RunInstruction: lambda i, e: _command(i.command),
    m.CmdInstruction: lambda i, e: _command(i.command),
    m.EntrypointInstruction: lambda i, e: _command(i.command),
    m.ShellInstruction: lambda i, e: _json(i.shell),
    m.AddInstruction: _copy,
    m.CopyInstruction: _copy,
    m.EnvInstruction: lambda i, e: _pairs(i.pairs, i.legacy),
    m.LabelInstruction: lambda i, e: _label(i.pairs, e),
    m.ArgInstruction: lambda i, e: " ".join(
        a.name if a.default is None else f"{a.name}={a.default}" for a in i.args
    ),
    m.ExposeInstruction: lambda i, e: " ".join(i.ports),
    m.VolumeInstruction: lambda i, e: _words(i.paths),
    m.UserInstruction: lambda i, e: i.user,
    m.WorkdirInstruction: lambda i, e: i.path,
    m.StopsignalInstruction: lambda i, e: i.signal,
    m.MaintainerInstruction: lambda i, e: i.maintainer,
    m.HealthcheckInstruction: _healthcheck,
    m.OnbuildInstruction: lambda i, e: render(i.trigger, e),
}


def render(instruction: m.Instruction, escape: str = "\\") -> str:
    """Containerfile text for ``instruction`` (heredoc bodies and comments included)."""
    words = [instruction.keyword, *(_flag(f, escape) for f in instruction.flags)]
    if isinstance(instruction, m.OnbuildInstruction):
        words.append(render(instruction.trigger, escape))
    else:
        arguments = _ARGUMENTS[type(instruction)](instruction, escape)
        if arguments.startswith("--"):
            words.append("--")  # or the first argument would read as a flag
        if arguments:
            words.append(arguments)
    text = " ".join(words)
    if isinstance(instruction, (m.RunInstruction, m.CopyInstruction)):
        text += _heredocs(instruction.heredocs)
    comments = "".join(f"# {c}\n" if c else "#\n" for c in instruction.comments)
    return comments + text


def render_containerfile(containerfile: m.Containerfile) -> str:
    """The whole file: directives, global ARGs, then every stage."""
    lines = []
    if containerfile.syntax:
        lines.append(f"# syntax={containerfile.syntax}")
    if containerfile.escape != "\\":
        lines.append(f"# escape={containerfile.escape}")
    escape = containerfile.escape
    lines += [render(arg, escape) for arg in containerfile.meta_args]
    for stage in containerfile.stages:
        lines.append(render(stage.base, escape))
        lines += [render(instruction, escape) for instruction in stage.instructions]
    return "\n".join(lines) + "\n"
