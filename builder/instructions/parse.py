"""Typed instructions from raw nodes: arity, flags and forms checked, nothing expanded.

``parse_containerfile`` is the entry point: text → nodes (``builder.syntax``)
→ one frozen dataclass per instruction → stages. Every instruction carries
the location of its node; errors point at the offending flag or line.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Any

from builder.errors import InstructionError
from builder.instructions import model as m
from builder.instructions.flags import FlagSet
from builder.instructions.mounts import parse_mount
from builder.source import Finding, Location
from builder.syntax.nodes import Node, parse_nodes

__all__ = ["KEYWORDS", "parse_containerfile", "parse_instruction"]

KEYWORDS = (
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
    "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
)
_DURATION = re.compile(r"(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|ms|s|m|h))+")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_NETWORKS = ("default", "none", "host")
_SECURITY = ("sandbox", "insecure")


class _Context:
    """What parsing one node needs: the node, its file, the warnings so far."""

    def __init__(self, node: Node, path: str, warnings: list[Finding]) -> None:
        self.node = node
        self.path = path
        self.warnings = warnings
        self.keyword = node.name.upper()
        self.location = Location(path, node.span)

    def error(self, message: str) -> InstructionError:
        return InstructionError(message, self.location)

    def flags(self, flags: FlagSet) -> dict[str, Any]:
        return flags.parse(self.node.flags, self.node.flag_spans, self.path, self.node.span)

    def common(self) -> dict[str, Any]:
        return {
            "keyword": self.keyword,
            "original": self.node.original,
            "location": self.location,
            "flags": self.node.flags,
            "comments": self.node.comments,
        }

    def warn(self, rule: str, message: str) -> None:
        self.warnings.append(Finding(rule, message, self.location))

    def exactly_one(self) -> str:
        if len(self.node.args) != 1:
            raise self.error(f"{self.keyword} requires exactly one argument")
        return self.node.args[0]

    def at_least(self, count: int, words: str = "one argument") -> tuple[str, ...]:
        if len(self.node.args) < count:
            raise self.error(f"{self.keyword} requires at least {words}")
        return self.node.args

    def command(self) -> m.Command:
        return m.Command(self.node.args, prepend_shell=not self.node.json)


def _from(c: _Context) -> m.FromInstruction:
    values = c.flags(FlagSet(c.keyword).string("platform"))
    args = c.node.args
    if len(args) not in (1, 3) or (len(args) == 3 and args[1].lower() != "as"):
        raise c.error("FROM requires either one or three arguments")
    name = args[2].lower() if len(args) == 3 else None  # checked after expansion, by plan
    return m.FromInstruction(**c.common(), image=args[0], stage_name=name,
                             platform=values.get("platform"))


def _run(c: _Context) -> m.RunInstruction:
    flags = FlagSet(c.keyword).repeated("mount").string("network", "security")
    values = c.flags(flags)
    network, security = values.get("network"), values.get("security")
    if network is not None and network not in _NETWORKS:
        raise c.error(f"RUN: unsupported value for --network: {network!r} "
                      f"(accepted: {', '.join(_NETWORKS)})")
    if security is not None and security not in _SECURITY:
        raise c.error(f"RUN: unsupported value for --security: {security!r} "
                      f"(accepted: {', '.join(_SECURITY)})")
    mounts = []
    for raw in values.get("mount", ()):
        try:
            mounts.append(parse_mount(raw))
        except InstructionError as exc:
            exc.location = c.location
            raise
    return m.RunInstruction(**c.common(), command=c.command(), mounts=tuple(mounts),
                            network=network, security=security,
                            heredocs=c.node.heredocs)


def _cmd(c: _Context) -> m.CmdInstruction:
    c.flags(FlagSet(c.keyword))
    return m.CmdInstruction(**c.common(), command=c.command())


def _entrypoint(c: _Context) -> m.EntrypointInstruction:
    c.flags(FlagSet(c.keyword))
    return m.EntrypointInstruction(**c.common(), command=c.command())


def _shell(c: _Context) -> m.ShellInstruction:
    c.flags(FlagSet(c.keyword))
    if not c.node.json:
        if not c.node.args:
            raise c.error("SHELL requires at least one argument")
        raise c.error("SHELL requires the arguments to be in JSON form")
    return m.ShellInstruction(**c.common(), shell=c.at_least(1))


def _copy_fields(c: _Context, values: dict[str, Any]) -> dict[str, Any]:
    args = c.at_least(2, "two arguments")
    return {
        **c.common(),
        "sources": args[:-1],
        "dest": args[-1],
        "chown": values.get("chown"),
        "chmod": values.get("chmod"),
        "link": values.get("link", False),
        "excludes": values.get("exclude", ()),
        "heredocs": c.node.heredocs,
    }


def _copy(c: _Context) -> m.CopyInstruction:
    flags = FlagSet(c.keyword).string("from", "chown", "chmod").boolean("link", "parents")
    values = c.flags(flags.repeated("exclude"))
    return m.CopyInstruction(**_copy_fields(c, values), from_=values.get("from"),
                             parents=values.get("parents", False))


def _add(c: _Context) -> m.AddInstruction:
    flags = FlagSet(c.keyword).string("chown", "chmod").boolean("link").string("checksum")
    values = c.flags(flags.boolean("keep-git-dir").repeated("exclude").boolean("unpack"))
    return m.AddInstruction(**_copy_fields(c, values), checksum=values.get("checksum"),
                            keep_git_dir=values.get("keep-git-dir", False),
                            unpack=values.get("unpack"))


def _pairs(c: _Context) -> tuple[tuple[tuple[str, str], ...], bool]:
    c.flags(FlagSet(c.keyword))
    args = c.at_least(1)
    pairs = tuple((args[i], args[i + 1]) for i in range(0, len(args) - 2, 3))
    if any(not name for name, _ in pairs):
        raise c.error(f"{c.keyword} names can not be blank")
    legacy = args[2] == ""
    if legacy:
        c.warn("LegacyKeyValueFormat",
               f'"{c.keyword} key=value" should be used instead of legacy '
               f'"{c.keyword} key value" format')
    return pairs, legacy


def _env(c: _Context) -> m.EnvInstruction:
    pairs, legacy = _pairs(c)
    return m.EnvInstruction(**c.common(), pairs=pairs, legacy=legacy)


def _label(c: _Context) -> m.LabelInstruction:
    pairs, _ = _pairs(c)
    return m.LabelInstruction(**c.common(), pairs=pairs)


def _arg(c: _Context) -> m.ArgInstruction:
    c.flags(FlagSet(c.keyword))
    definitions = []
    for word in c.at_least(1):
        name, has_default, default = word.partition("=")
        if not name:
            raise c.error("ARG names can not be blank")
        definitions.append(m.ArgDefinition(name, default if has_default else None))
    return m.ArgInstruction(**c.common(), args=tuple(definitions))


def _expose(c: _Context) -> m.ExposeInstruction:
    c.flags(FlagSet(c.keyword))
    return m.ExposeInstruction(**c.common(), ports=c.at_least(1))


def _volume(c: _Context) -> m.VolumeInstruction:
    c.flags(FlagSet(c.keyword))
    paths = c.at_least(1)
    if any(not path.strip() for path in paths):
        raise c.error("VOLUME specified can not be an empty string")
    return m.VolumeInstruction(**c.common(), paths=paths)


def _user(c: _Context) -> m.UserInstruction:
    c.flags(FlagSet(c.keyword))
    return m.UserInstruction(**c.common(), user=c.exactly_one())


def _workdir(c: _Context) -> m.WorkdirInstruction:
    c.flags(FlagSet(c.keyword))
    return m.WorkdirInstruction(**c.common(), path=c.exactly_one())


def _stopsignal(c: _Context) -> m.StopsignalInstruction:
    c.flags(FlagSet(c.keyword))
    return m.StopsignalInstruction(**c.common(), signal=c.exactly_one())


def _maintainer(c: _Context) -> m.MaintainerInstruction:
    c.flags(FlagSet(c.keyword))
    maintainer = c.exactly_one()
    c.warn("MaintainerDeprecated", "MAINTAINER instruction is deprecated in favor of using label")
    return m.MaintainerInstruction(**c.common(), maintainer=maintainer)


def _duration(c: _Context, flag: str, value: str | None) -> str | None:
    if value is None or value == "0":
        return value
    match = _DURATION.fullmatch(value)
    if match is None:
        raise c.error(f"HEALTHCHECK: invalid duration for --{flag}: {value!r}")
    seconds = sum(float(number or 0) * _UNIT_SECONDS[unit]
                  for number, unit in re.findall(r"([0-9.]+)(ns|us|µs|ms|s|m|h)", value))
    if 0 < seconds < 1e-3:
        raise c.error(f"HEALTHCHECK: --{flag} cannot be less than 1ms")
    return value


def _healthcheck(c: _Context) -> m.HealthcheckInstruction:
    flags = FlagSet(c.keyword).string("interval", "timeout", "start-period", "start-interval")
    values = c.flags(flags.string("retries"))
    args = c.at_least(1)
    kind = args[0].upper()
    test: tuple[str, ...] | None
    if kind == "NONE":
        if len(args) > 1 or values:
            raise c.error("HEALTHCHECK NONE takes no arguments")
        test = None
    elif kind == "CMD":
        if len(args) == 1:
            raise c.error("HEALTHCHECK CMD requires a command")
        test = ("CMD", *args[1:]) if c.node.json else ("CMD-SHELL", args[1])
    else:
        raise c.error(f"HEALTHCHECK: unknown type {args[0]} (accepted: CMD, NONE)")
    retries = values.get("retries")
    if retries is not None:
        if not re.fullmatch(r"-?[0-9]+", retries):
            raise c.error(f"HEALTHCHECK: invalid value for --retries: {retries!r}")
        if int(retries) < 0:
            raise c.error("HEALTHCHECK: --retries cannot be negative")
    return m.HealthcheckInstruction(
        **c.common(), test=test,
        interval=_duration(c, "interval", values.get("interval")),
        timeout=_duration(c, "timeout", values.get("timeout")),
        start_period=_duration(c, "start-period", values.get("start-period")),
        start_interval=_duration(c, "start-interval", values.get("start-interval")),
        retries=int(retries) if retries is not None else None,
    )


def _onbuild(c: _Context) -> m.OnbuildInstruction:
    c.flags(FlagSet(c.keyword))
    trigger = c.node.next
    if trigger is None:
        raise c.error("ONBUILD requires at least one argument")
    name = trigger.name.upper()
    if name == "ONBUILD":
        raise c.error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if name in ("FROM", "MAINTAINER"):
        raise c.error(f"{name} isn't allowed as an ONBUILD trigger")
    parsed = parse_instruction(trigger, c.path, c.warnings)
    return m.OnbuildInstruction(**c.common(), trigger=parsed, expression=trigger.original)


_PARSERS: dict[str, Callable[[_Context], m.Instruction]] = {
    "ADD": _add, "ARG": _arg, "CMD": _cmd, "COPY": _copy, "ENTRYPOINT": _entrypoint,
    "ENV": _env, "EXPOSE": _expose, "FROM": _from, "HEALTHCHECK": _healthcheck,
    "LABEL": _label, "MAINTAINER": _maintainer, "ONBUILD": _onbuild, "RUN": _run,
    "SHELL": _shell, "STOPSIGNAL": _stopsignal, "USER": _user, "VOLUME": _volume,
    "WORKDIR": _workdir,
}


def parse_instruction(node: Node, path: str, warnings: list[Finding]) -> m.Instruction:
    """The typed instruction of one node; warnings found are appended to ``warnings``."""
    context = _Context(node, path, warnings)
    parser = _PARSERS.get(context.keyword)
    if parser is None:
        guess = difflib.get_close_matches(context.keyword, KEYWORDS, n=1, cutoff=0.6)
        hint = f" (did you mean {guess[0]}?)" if guess else ""
        raise InstructionError(f"unknown instruction: {context.keyword}{hint}", context.location)
    return parser(context)


def parse_containerfile(text: str | bytes, path: str = "Containerfile") -> m.Containerfile:
    """Parse a Containerfile into stages of typed instructions."""
    result = parse_nodes(text, path)
    warnings = list(result.warnings)
    meta_args: list[m.ArgInstruction] = []
    stages: list[m.Stage] = []
    body: list[m.Instruction] = []
    for node in result.nodes:
        instruction = parse_instruction(node, path, warnings)
        if isinstance(instruction, m.FromInstruction):
            if stages:
                stages[-1] = _with_body(stages[-1], body)
            stages.append(m.Stage(len(stages), instruction.stage_name, instruction))
            body = []
        elif stages:
            body.append(instruction)
        elif isinstance(instruction, m.ArgInstruction):
            meta_args.append(instruction)
        else:
            raise InstructionError(
                f"{instruction.keyword}: no build stage in current context "
                "(only ARG may come before the first FROM)",
                instruction.location,
            )
    if not stages:
        raise InstructionError("no FROM instruction: a Containerfile needs at least one stage",
                               Location(path, result.nodes[-1].span))
    stages[-1] = _with_body(stages[-1], body)
    return m.Containerfile(
        path=path,
        stages=tuple(stages),
        meta_args=tuple(meta_args),
        escape=result.escape,
        syntax=result.directives.get("syntax"),
        warnings=tuple(warnings),
    )


def _with_body(stage: m.Stage, body: list[m.Instruction]) -> m.Stage:
    return m.Stage(stage.index, stage.name, stage.base, tuple(body))
