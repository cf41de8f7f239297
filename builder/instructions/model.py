"""Typed instructions: one frozen dataclass per Containerfile keyword.

Nothing here is expanded: values are exactly the words of the Containerfile
(quotes kept where the reference parser keeps them). The executor expands
them with the step's environment when the step runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from builder.instructions.mounts import RunMount
from builder.source import Finding, Location
from builder.syntax.nodes import Heredoc as Heredoc  # a field of RUN, COPY and ADD


@dataclass(frozen=True, slots=True)
class Command:
    """A command line: exec form (``prepend_shell`` False) or shell form (one string)."""

    args: tuple[str, ...]
    prepend_shell: bool

    @property
    def is_exec(self) -> bool:
        return not self.prepend_shell


@dataclass(frozen=True, kw_only=True)
class Instruction:
    """Fields shared by every instruction."""

    keyword: str  # upper case, e.g. "COPY"
    original: str  # the logical line as written (continuations joined)
    location: Location
    flags: tuple[str, ...] = ()  # raw "--name=value" words, for rendering
    comments: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class FromInstruction(Instruction):
    image: str
    stage_name: str | None = None  # the "AS name", lower-cased
    platform: str | None = None


@dataclass(frozen=True, kw_only=True)
class RunInstruction(Instruction):
    command: Command
    mounts: tuple[RunMount, ...] = ()
    network: str | None = None
    security: str | None = None
    heredocs: tuple[Heredoc, ...] = ()


@dataclass(frozen=True, kw_only=True)
class CmdInstruction(Instruction):
    command: Command


@dataclass(frozen=True, kw_only=True)
class EntrypointInstruction(Instruction):
    command: Command


@dataclass(frozen=True, kw_only=True)
class ShellInstruction(Instruction):
    shell: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class CopyInstruction(Instruction):
    sources: tuple[str, ...]
    dest: str
    from_: str | None = None
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    parents: bool = False
    excludes: tuple[str, ...] = ()
    heredocs: tuple[Heredoc, ...] = ()


@dataclass(frozen=True, kw_only=True)
class AddInstruction(CopyInstruction):
    checksum: str | None = None
    keep_git_dir: bool = False
    unpack: bool | None = None


@dataclass(frozen=True, kw_only=True)
class EnvInstruction(Instruction):
    pairs: tuple[tuple[str, str], ...]  # (name, raw value word)
    legacy: bool = False  # the "ENV key value" form


@dataclass(frozen=True, kw_only=True)
class LabelInstruction(Instruction):
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ArgDefinition:
    name: str
    default: str | None  # raw word; None when declared without a value


@dataclass(frozen=True, kw_only=True)
class ArgInstruction(Instruction):
    args: tuple[ArgDefinition, ...]


@dataclass(frozen=True, kw_only=True)
class ExposeInstruction(Instruction):
    ports: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class VolumeInstruction(Instruction):
    paths: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class UserInstruction(Instruction):
    user: str


@dataclass(frozen=True, kw_only=True)
class WorkdirInstruction(Instruction):
    path: str


@dataclass(frozen=True, kw_only=True)
class StopsignalInstruction(Instruction):
    signal: str


@dataclass(frozen=True, kw_only=True)
class MaintainerInstruction(Instruction):
    maintainer: str


@dataclass(frozen=True, kw_only=True)
class HealthcheckInstruction(Instruction):
    """``test`` is None for HEALTHCHECK NONE; else ("CMD", ...) or ("CMD-SHELL", cmd)."""

    test: tuple[str, ...] | None
    interval: str | None = None
    timeout: str | None = None
    start_period: str | None = None
    start_interval: str | None = None
    retries: int | None = None


@dataclass(frozen=True, kw_only=True)
class OnbuildInstruction(Instruction):
    trigger: Instruction
    expression: str  # the trigger's text, as stored in the image config


@dataclass(frozen=True)
class Stage:
    """One FROM and the instructions after it."""

    index: int
    name: str | None
    base: FromInstruction
    instructions: tuple[Instruction, ...] = field(default=())


@dataclass(frozen=True)
class Containerfile:
    """The typed result of parsing one Containerfile."""

    path: str
    stages: tuple[Stage, ...]
    meta_args: tuple[ArgInstruction, ...]  # ARGs before the first FROM
    escape: str = "\\"
    syntax: str | None = None
    warnings: tuple[Finding, ...] = ()
