"""Config instructions applied to a ContainerConfig."""

from __future__ import annotations

import pytest

from builder.errors import StepError
from builder.executor import config as cfg
from builder.image.spec import ContainerConfig
from builder.instructions.parse import parse_containerfile


def _run(text: str, format: str = "oci", config: ContainerConfig | None = None):
    state = cfg.ConfigState(config or ContainerConfig())
    env = {"P": "8080", "D": "/data"}
    for ins in parse_containerfile("FROM scratch\n" + text).stages[0].instructions:
        # one signature and one table for every config instruction
        cfg.RUNNERS[type(ins)](ins, cfg.ConfigStep(state, env, "\\", format, ins.location))
    return state


@pytest.mark.parametrize("port,key", [("80", "80/tcp"), ("53/UDP", "53/udp"),
                                      ("8000-8002/tcp", "8000-8002/tcp")])
def test_ports(port: str, key: str) -> None:
    assert cfg.parse_port(port) == key


@pytest.mark.parametrize("port", ["http", "0", "70000", "9-1", "80/xyz"])
def test_bad_ports(port: str) -> None:
    with pytest.raises(StepError, match="EXPOSE"):
        cfg.parse_port(port)


def test_commands_and_shell() -> None:
    state = _run('CMD echo hi\nSHELL ["/bin/bash", "-c"]\nENTRYPOINT run it\n')
    assert state.config.entrypoint == ["/bin/bash", "-c", "run it"]
    assert state.config.cmd == ["/bin/sh", "-c", "echo hi"]
    assert state.warnings == ["SHELL is not supported for OCI image format, [/bin/bash -c] "
                              "and will be ignored. Must use `docker` format"]
    inherited = ContainerConfig(cmd=["base"])
    assert _run('ENTRYPOINT ["/e"]\n', config=inherited).config.cmd is None
    assert _run('CMD ["c"]\nENTRYPOINT ["/e"]\n', config=inherited).config.cmd == ["c"]


def test_env_label_expose_volume_user_workdir_stopsignal() -> None:
    state = _run("ENV A=1 B=2\nENV A=3\nLABEL k=v\nEXPOSE $P 53/udp\nVOLUME $D /logs\n"
                 "USER app:app\nWORKDIR /srv\nWORKDIR sub/../app\nSTOPSIGNAL SIGUSR1\n"
                 "MAINTAINER me\n")
    c = state.config
    assert c.env == ["A=3", "B=2"]
    assert c.labels == {"k": "v"}
    assert c.exposed_ports == {"8080/tcp": {}, "53/udp": {}}
    assert c.volumes == {"/data": {}, "/logs": {}}
    assert (c.user, c.working_dir, c.stop_signal, state.author) == \
        ("app:app", "/srv/app", "SIGUSR1", "me")


def test_healthcheck_and_onbuild() -> None:
    state = _run("HEALTHCHECK --interval=1m30s --timeout=500ms --retries=2 CMD [\"check\"]\n"
                 "ONBUILD RUN make\n", format="docker")
    assert state.config.healthcheck == {"Test": ["CMD", "check"], "Interval": 90_000_000_000,
                                        "Timeout": 500_000_000, "Retries": 2}
    assert state.config.on_build == ["RUN make"]
    assert state.warnings == []
    assert _run("HEALTHCHECK NONE\n").config.healthcheck == {"Test": ["NONE"]}


def test_history_text() -> None:
    stage = parse_containerfile("FROM scratch\nENV A=1\nRUN make all\n").stages[0]
    assert [cfg.history_text(i) for i in stage.instructions] == [
        "/bin/sh -c #(nop) ENV A=1", "/bin/sh -c make all"]
