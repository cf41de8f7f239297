"""Config instructions: how ENV, LABEL, EXPOSE, USER, CMD, ... change an image config.

Every ``run_<keyword>`` has one signature: the instruction and a ``ConfigStep``
(the config being built, the step's values for expansion, the image format),
and changes the config in place; ``RUNNERS`` maps each instruction type to its
function. Nothing here touches the file system: WORKDIR's and VOLUME's
directories are the stage's business.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from builder.errors import ExpansionError, StepError
from builder.image.spec import ContainerConfig
from builder.instructions import model as m
from builder.plan.args import apply_env, expand
from builder.source import Location
from builder.syntax.shell import expand_words

DEFAULT_SHELL = ("/bin/sh", "-c")
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                   "m": 60_000_000_000, "h": 3_600_000_000_000}
_OCI_DROPPED = "{what} is not supported for OCI image format{detail} and will be ignored. " \
    "Must use `docker` format"



@dataclass
class ConfigState:
    """The config being built plus what the stage needs to know about it."""

    config: ContainerConfig
    author: str | None = None
    cmd_set: bool = False  # CMD given in this stage (ENTRYPOINT then keeps it)
    warnings: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)  # VOLUMEs declared by the last step

    @property
    def shell(self) -> list[str]:
        return list(self.config.shell or DEFAULT_SHELL)

    def env_map(self) -> dict[str, str]:
        return dict(pair.partition("=")[::2] for pair in self.config.env or [])


def set_env(config: ContainerConfig, name: str, value: str) -> None:
    """Set one variable, keeping the position of an existing one."""
    env = list(config.env or [])
    for i, pair in enumerate(env):
        if pair.partition("=")[0] == name:
            env[i] = f"{name}={value}"
            break
    else:
        env.append(f"{name}={value}")
    config.env = env


@dataclass(frozen=True)
class ConfigStep:
    """What a config instruction works with: the config being built, the step's values
    for expansion (ARGs in scope, then ENV over them) and the image format."""

    state: ConfigState
    values: Mapping[str, str]
    escape: str
    format: str
    location: Location

    def expand(self, word: str) -> str:
        return expand(word, self.values, self.escape, self.location)

    def expand_words(self, word: str) -> list[str]:
        try:
            return expand_words(word, self.values, self.escape)
        except ExpansionError as exc:
            exc.location = exc.location or self.location
            raise


def run_env(ins: m.EnvInstruction, step: ConfigStep) -> None:
    for name, value in apply_env(ins, step.values, step.escape):
        set_env(step.state.config, name, value)


def run_label(ins: m.LabelInstruction, step: ConfigStep) -> None:
    labels = dict(step.state.config.labels or {})
    for key, value in ins.pairs:
        labels[step.expand(key)] = step.expand(value)
    step.state.config.labels = labels


def parse_port(text: str) -> str:
    """``80`` -> ``80/tcp``; ``8000-8002/udp`` is kept as one key, as Buildah does."""
    port, _, proto = text.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise StepError(f"EXPOSE: invalid protocol {proto!r} in {text!r}")
    start, _, end = port.partition("-")
    if not start.isdigit() or (end and not end.isdigit()):
        raise StepError(f"EXPOSE: invalid port {text!r}")
    first, last = int(start), int(end or start)
    if not 0 < first <= last <= 65535:
        raise StepError(f"EXPOSE: invalid port range {text!r}")
    return f"{port}/{proto}"


def run_expose(ins: m.ExposeInstruction, step: ConfigStep) -> None:
    ports = dict(step.state.config.exposed_ports or {})
    for raw in ins.ports:
        for word in step.expand_words(raw):
            ports[parse_port(word)] = {}
    step.state.config.exposed_ports = ports


def run_volume(ins: m.VolumeInstruction, step: ConfigStep) -> None:
    """Add the volumes (their paths go to ``state.volumes``: the stage creates missing
    directories)."""
    volumes = dict(step.state.config.volumes or {})
    for raw in ins.paths:
        path = step.expand(raw)
        if not path:
            raise StepError("VOLUME: empty path")
        volumes[path] = {}
        step.state.volumes.append(path)
    step.state.config.volumes = volumes


def run_user(ins: m.UserInstruction, step: ConfigStep) -> None:
    step.state.config.user = step.expand(ins.user)


def workdir_path(current: str, value: str) -> str:
    """WORKDIR's new directory: relative paths are taken from the current one."""
    if not value.startswith("/"):
        value = posixpath.join(current or "/", value)
    return posixpath.normpath(value) if value != "/" else "/"


def run_workdir(ins: m.WorkdirInstruction, step: ConfigStep) -> None:
    """Set the working directory (the stage creates it)."""
    path = step.expand(ins.path)
    if not path:
        raise StepError("WORKDIR: empty path")
    step.state.config.working_dir = workdir_path(step.state.config.working_dir, path)


def command_argv(command: m.Command, shell: list[str]) -> list[str]:
    """Exec form as is; shell form through the shell."""
    return [*shell, command.args[0]] if command.prepend_shell else list(command.args)


def run_cmd(ins: m.CmdInstruction, step: ConfigStep) -> None:
    step.state.config.cmd = command_argv(ins.command, step.state.shell)
    step.state.cmd_set = True


def run_entrypoint(ins: m.EntrypointInstruction, step: ConfigStep) -> None:
    step.state.config.entrypoint = command_argv(ins.command, step.state.shell)
    if not step.state.cmd_set:
        step.state.config.cmd = None


def run_shell(ins: m.ShellInstruction, step: ConfigStep) -> None:
    step.state.config.shell = list(ins.shell)
    if step.format == "oci":
        step.state.warnings.append(_OCI_DROPPED.format(
            what="SHELL", detail=f", [{' '.join(ins.shell)}]"))


def run_stopsignal(ins: m.StopsignalInstruction, step: ConfigStep) -> None:
    signal = step.expand(ins.signal)
    if not re.fullmatch(r"(SIG)?[A-Z0-9+-]+|[0-9]+", signal):
        raise StepError(f"STOPSIGNAL: invalid signal {signal!r}")
    step.state.config.stop_signal = signal


def duration_ns(text: str | None) -> int:
    """Go duration text (``1m30s``) in nanoseconds; 0 for None."""
    if not text or text == "0":
        return 0
    total = 0.0
    for number, unit in re.findall(r"([0-9.]+)(ns|us|µs|ms|s|m|h)", text):
        total += float(number) * _DURATION_UNITS[unit]
    return int(total)


def healthcheck_config(test: list[str], *, interval: str | None = None,
                       timeout: str | None = None, start_period: str | None = None,
                       start_interval: str | None = None,
                       retries: int | None = None) -> dict[str, object]:
    """The config's ``Healthcheck``: durations in nanoseconds, unset ones left out."""
    check: dict[str, object] = {"Test": test}
    for key, value in (("Interval", interval), ("Timeout", timeout),
                       ("StartPeriod", start_period), ("StartInterval", start_interval)):
        if duration_ns(value):
            check[key] = duration_ns(value)
    if retries:
        check["Retries"] = retries
    return check


def run_healthcheck(ins: m.HealthcheckInstruction, step: ConfigStep) -> None:
    step.state.config.healthcheck = healthcheck_config(
        ["NONE"] if ins.test is None else list(ins.test), interval=ins.interval,
        timeout=ins.timeout, start_period=ins.start_period, start_interval=ins.start_interval,
        retries=ins.retries)
    if step.format == "oci":
        step.state.warnings.append(_OCI_DROPPED.format(what="HEALTHCHECK", detail=""))


def run_onbuild(ins: m.OnbuildInstruction, step: ConfigStep) -> None:
    step.state.config.on_build = [*(step.state.config.on_build or []), ins.expression]
    if step.format == "oci":
        step.state.warnings.append(_OCI_DROPPED.format(
            what="ONBUILD", detail=f", [{ins.expression}]"))


def run_maintainer(ins: m.MaintainerInstruction, step: ConfigStep) -> None:
    step.state.author = ins.maintainer


# instruction type -> what it does to the config (ARG, COPY/ADD and RUN are the stage's)
RUNNERS: dict[type[m.Instruction], Callable[[Any, ConfigStep], None]] = {
    m.EnvInstruction: run_env,
    m.LabelInstruction: run_label,
    m.ExposeInstruction: run_expose,
    m.VolumeInstruction: run_volume,
    m.UserInstruction: run_user,
    m.WorkdirInstruction: run_workdir,
    m.CmdInstruction: run_cmd,
    m.EntrypointInstruction: run_entrypoint,
    m.ShellInstruction: run_shell,
    m.StopsignalInstruction: run_stopsignal,
    m.HealthcheckInstruction: run_healthcheck,
    m.OnbuildInstruction: run_onbuild,
    m.MaintainerInstruction: run_maintainer,
}


def created_by(text: str, *, run: bool = False) -> str:
    """A history entry's ``created_by``, shaped like Buildah's: ``/bin/sh -c COMMAND`` for
    what ran, ``/bin/sh -c #(nop) INSTRUCTION`` for everything else."""
    return f"/bin/sh -c {text}" if run else f"/bin/sh -c #(nop) {text}"


def history_text(ins: m.Instruction) -> str:
    """The ``created_by`` of an instruction's history entry."""
    if isinstance(ins, m.RunInstruction):
        return created_by(ins.original.split(None, 1)[1] if " " in ins.original else "",
                          run=True)
    return created_by(ins.original)
