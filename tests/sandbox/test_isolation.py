"""The chroot sandbox: isolation properties that fail when isolation breaks."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from builder.errors import UsageError
from builder.executor.capabilities import DEFAULT_CAPABILITIES, mask_of
from builder.executor.runspec import RunSpec
from builder.executor.sandbox import run_in_sandbox
from builder.runsettings import RunSettings

pytestmark = pytest.mark.sandbox
PATH = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"


def sh(root: Path, script: str, network: str = "", **kw: object) -> int:
    return run_in_sandbox(root, RunSpec(argv=["/bin/sh", "-c", script], env=[PATH],
                                        settings=RunSettings(network=network), **kw))


def test_host_files_are_invisible(busybox_root, tmp_path, capfd) -> None:
    canary = tmp_path / "canary-outside-root"
    canary.write_text("secret")
    assert sh(busybox_root, f"cat {canary} || ls / | grep -c canary; exit 0") == 0
    out = capfd.readouterr()
    assert "secret" not in out.out and out.out.strip() == "0"
    assert sh(busybox_root, f"test -e {canary}") == 1


def test_pid_namespace(busybox_root, capfd) -> None:
    assert sh(busybox_root, "echo $$; ls /proc | grep -c '^[0-9]'; "
                            f"test -d /proc/{os.getpid()} && echo host-visible; exit 0") == 0
    lines = capfd.readouterr().out.split()
    assert lines[0] == "2"  # the command is the only child of the namespace's PID 1
    assert int(lines[1]) <= 4 and "host-visible" not in lines


@pytest.mark.parametrize(("network", "address"), [("none", "127.0.1.1"),
                                                  ("private", "10.0.2.100")])
def test_hostname_and_etc_files(busybox_root, capfd, network, address) -> None:
    """/etc/hosts names the step's host name at its own address (loopback 127.0.1.1
    without an interface, as Debian does)."""
    assert sh(busybox_root, "hostname; cat /etc/hostname; grep buildbox /etc/hosts",
              hostname="buildbox", network=network) == 0
    assert capfd.readouterr().out.split()[:3] == ["buildbox", "buildbox", address]


@pytest.fixture
def server():
    """A TCP server on the host's loopback; yields (port, received lines)."""
    received: list[bytes] = []
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                received.append(conn.recv(100))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1], received
    sock.close()


@pytest.mark.parametrize(("network", "interfaces"), [("none", ["lo"]),
                                                     ("private", ["eth0", "lo"])])
def test_isolated_network_cannot_reach_host_loopback(busybox_root, server, network, interfaces,
                                                     capfd) -> None:
    port, received = server
    script = f"echo hello | nc -w 2 127.0.0.1 {port}; ls /sys/class/net"
    sh(busybox_root, script, network=network)
    assert received == []
    assert capfd.readouterr().out.split() == interfaces


def test_host_network_reaches_the_host(busybox_root, server) -> None:
    port, received = server
    assert sh(busybox_root, f"echo hello | nc -w 2 127.0.0.1 {port}", network="host") == 0
    for _ in range(100):
        if received:
            break
        threading.Event().wait(0.05)
    assert received == [b"hello\n"]


def test_privileged_operations_fail(busybox_root, capfd) -> None:
    assert sh(busybox_root, "echo x > /proc/sys/kernel/hostname") != 0
    assert sh(busybox_root, "mkdir -p /tmp/m && mount -t tmpfs t /tmp/m") != 0
    assert sh(busybox_root, "touch /sys/kernel/x") != 0
    assert sh(busybox_root, "grep -E 'CapBnd|NoNewPrivs' /proc/self/status") == 0
    status = dict(line.split(":\t") for line in capfd.readouterr().out.splitlines()[-2:])
    assert int(status["CapBnd"], 16) == mask_of(DEFAULT_CAPABILITIES)
    assert status["NoNewPrivs"] == "0"  # as Buildah: only --security-opt no-new-privileges


def test_background_processes_die_with_the_step(busybox_root) -> None:
    marker = b"sleep\x00987654\x00"
    assert sh(busybox_root, "sleep 987654 & sleep 987654 & exit 0") == 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            assert Path(f"/proc/{pid}/cmdline").read_bytes() != marker
        except OSError:
            continue


@pytest.mark.parametrize("script,status", [("exit 3", 3), ("kill -TERM $$", 143),
                                           ("true", 0), ("exit 200", 200)])
def test_exit_status_propagates(busybox_root, script, status) -> None:
    assert sh(busybox_root, script) == status


def test_missing_command(busybox_root, capfd) -> None:
    assert run_in_sandbox(busybox_root, RunSpec(argv=["nope"], env=[PATH])) == 127
    assert "running nope" in capfd.readouterr().err


@pytest.mark.parametrize("user,expected", [
    ("", "0 0 0"), ("root", "0 0 0"), ("user", "1000 1000 1000 10"),
    ("1000", "1000 1000 1000 10"), ("1000:10", "1000 10 10"), ("user:nogroup", "1000 65534 65534"),
    ("4242", "4242 0 0"),
])
def test_user_resolution(busybox_root, capfd, user, expected) -> None:
    assert sh(busybox_root, "echo $(id -u) $(id -g) $(id -G)", user=user) == 0
    assert capfd.readouterr().out.strip() == expected


@pytest.mark.parametrize("user", ["ghost", "user:ghosts"])
def test_unknown_user(busybox_root, user) -> None:
    with pytest.raises(UsageError, match="no matching entries"):
        sh(busybox_root, "true", user=user)


def test_env_workdir_and_home(fresh_root, capfd) -> None:
    spec = RunSpec(argv=["/bin/sh", "-c", "pwd; echo $GREETING $HOME"],
                   env=[PATH, "GREETING=hi"], cwd="/work/dir", user="user")
    assert run_in_sandbox(fresh_root, spec) == 0
    assert capfd.readouterr().out.split() == ["/work/dir", "hi", "/home/user"]
    assert (fresh_root / "work/dir").is_dir()


def test_stdin_is_closed_unless_asked(busybox_root, capfd) -> None:
    assert sh(busybox_root, "cat; echo done") == 0
    assert capfd.readouterr().out == "done\n"


def test_mount_points_leave_no_trace(tmp_path, busybox_root) -> None:
    root = tmp_path / "noetc"
    root.mkdir()
    os.symlink(busybox_root / "bin", root / "hostbin")  # a host path that must not be used
    (root / "bin").mkdir()
    os.link(busybox_root / "bin/busybox", root / "bin/busybox")
    os.symlink("busybox", root / "bin/sh")
    before = sorted(os.listdir(root))
    mtime = os.stat(root).st_mtime_ns
    assert run_in_sandbox(root, RunSpec(argv=["/bin/sh", "-c", "test -f /etc/hosts"],
                                        env=[])) == 0
    assert sorted(os.listdir(root)) == before
    assert os.stat(root).st_mtime_ns == mtime


def test_oci_isolation_with_runc(fresh_root, capfd) -> None:
    before = sorted(os.listdir(fresh_root))
    spec = RunSpec(argv=["/bin/sh", "-c", "echo $$ $(hostname) $(id -u); ls /sys/class/net;"
                         "echo x > /proc/sys/kernel/hostname || exit 5"],
                   env=[PATH], hostname="ocibox", user="user", isolation="oci",
                   settings=RunSettings(network="none"))
    assert run_in_sandbox(fresh_root, spec) == 5
    assert capfd.readouterr().out.split() == ["1", "ocibox", "1000", "lo"]
    assert sorted(os.listdir(fresh_root)) == before
