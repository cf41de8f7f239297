"""Config instructions: how ENV, LABEL, EXPOSE, USER, CMD, ... change an image config.

Each ``run_<keyword>`` takes the instruction, the ``ContainerConfig`` being
built and an ``expand`` callable (the step's environment already bound) and
changes the config in place. Nothing here touches the file system.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from builder.errors import StepError
from builder.image.spec import ContainerConfig
from builder.instructions import model as m

DEFAULT_SHELL = ("/bin/sh", "-c")
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                   "m": 60_000_000_000, "h": 3_600_000_000_000}
_OCI_DROPPED = "{what} is not supported for OCI image format{detail} and will be ignored. " \
    "Must use `docker` format"

Expand = Callable[[str], str]
ExpandWords = Callable[[str], list[str]]


@dataclass
class ConfigState:
    """The config being built plus what the stage needs to know about it."""

    config: ContainerConfig
    author: str | None = None
    cmd_set: bool = False  # CMD given in this stage (ENTRYPOINT then keeps it)
    warnings: list[str] = field(default_factory=list)

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


def run_env(ins: m.EnvInstruction, state: ConfigState, expand: Expand) -> None:
    for name, word in ins.pairs:
        set_env(state.config, name, expand(word))


def run_label(ins: m.LabelInstruction, state: ConfigState, expand: Expand) -> None:
    labels = dict(state.config.labels or {})
    for key, value in ins.pairs:
        labels[expand(key)] = expand(value)
    state.config.labels = labels


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


def run_expose(ins: m.ExposeInstruction, state: ConfigState, words: ExpandWords) -> None:
    ports = dict(state.config.exposed_ports or {})
    for raw in ins.ports:
        for word in words(raw):
            ports[parse_port(word)] = {}
    state.config.exposed_ports = ports


def run_volume(ins: m.VolumeInstruction, state: ConfigState, expand: Expand) -> list[str]:
    """Add the volumes; returns their paths (the stage creates missing directories)."""
    volumes = dict(state.config.volumes or {})
    paths = []
    for raw in ins.paths:
        path = expand(raw)
        if not path:
            raise StepError("VOLUME: empty path")
        volumes[path] = {}
        paths.append(path)
    state.config.volumes = volumes
    return paths


def run_user(ins: m.UserInstruction, state: ConfigState, expand: Expand) -> None:
    state.config.user = expand(ins.user)


def workdir_path(current: str, value: str) -> str:
    """WORKDIR's new directory: relative paths are taken from the current one."""
    if not value.startswith("/"):
        value = posixpath.join(current or "/", value)
    return posixpath.normpath(value) if value != "/" else "/"


def run_workdir(ins: m.WorkdirInstruction, state: ConfigState, expand: Expand) -> str:
    path = expand(ins.path)
    if not path:
        raise StepError("WORKDIR: empty path")
    state.config.working_dir = workdir_path(state.config.working_dir, path)
    return state.config.working_dir


def command_argv(command: m.Command, shell: list[str]) -> list[str]:
    """Exec form as is; shell form through the shell."""
    return [*shell, command.args[0]] if command.prepend_shell else list(command.args)


def run_cmd(ins: m.CmdInstruction, state: ConfigState) -> None:
    state.config.cmd = command_argv(ins.command, state.shell)
    state.cmd_set = True


def run_entrypoint(ins: m.EntrypointInstruction, state: ConfigState) -> None:
    state.config.entrypoint = command_argv(ins.command, state.shell)
    if not state.cmd_set:
        state.config.cmd = None


def run_shell(ins: m.ShellInstruction, state: ConfigState, format: str) -> None:
    state.config.shell = list(ins.shell)
    if format == "oci":
        state.warnings.append(_OCI_DROPPED.format(
            what="SHELL", detail=f", [{' '.join(ins.shell)}]"))


def run_stopsignal(ins: m.StopsignalInstruction, state: ConfigState, expand: Expand) -> None:
    signal = expand(ins.signal)
    if not re.fullmatch(r"(SIG)?[A-Z0-9+-]+|[0-9]+", signal):
        raise StepError(f"STOPSIGNAL: invalid signal {signal!r}")
    state.config.stop_signal = signal


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


def run_healthcheck(ins: m.HealthcheckInstruction, state: ConfigState, format: str) -> None:
    state.config.healthcheck = healthcheck_config(
        ["NONE"] if ins.test is None else list(ins.test), interval=ins.interval,
        timeout=ins.timeout, start_period=ins.start_period, start_interval=ins.start_interval,
        retries=ins.retries)
    if format == "oci":
        state.warnings.append(_OCI_DROPPED.format(what="HEALTHCHECK", detail=""))


def run_onbuild(ins: m.OnbuildInstruction, state: ConfigState, format: str) -> None:
    state.config.on_build = [*(state.config.on_build or []), ins.expression]
    if format == "oci":
        state.warnings.append(_OCI_DROPPED.format(
            what="ONBUILD", detail=f", [{ins.expression}]"))


def run_maintainer(ins: m.MaintainerInstruction, state: ConfigState) -> None:
    state.author = ins.maintainer


def history_text(ins: m.Instruction) -> str:
    """The ``created_by`` of a history entry, shaped like Buildah's."""
    if isinstance(ins, m.RunInstruction):
        return f"/bin/sh -c {ins.original.split(None, 1)[1] if ' ' in ins.original else ''}"
    return f"/bin/sh -c #(nop) {ins.original}"
