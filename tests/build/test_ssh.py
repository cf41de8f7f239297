"""RUN --mount=type=ssh with bud --ssh, against a real ssh-agent holding a key made here.

The image is the busybox base plus Debian's ssh-add and the libraries ``ldd`` names.
Rules as BuildKit and Buildah 1.28 agree (default id ``default``, target
``/run/buildkit/ssh_agent.N``, SSH_AUTH_SOCK naming the first ssh mount, an optional
mount simply absent without --ssh), BuildKit's mode 0600 (Buildah's 0620 comes from a
decimal literal in its source), and no mount stub left in the layer (Buildah leaves an
empty /run/buildkit)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.build.imagetree import read_image
from tests.conftest import Pybuild

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, Path]]:
    """(agent socket, the key's fingerprint, the private key file)."""
    if shutil.which("ssh-agent") is None:
        pytest.fail("ssh-agent is needed (Debian package openssh-client)")
    base = tmp_path_factory.mktemp("ssh")
    key = base / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pybuild-test",
                    "-f", str(key)], check=True)
    sock = base / "agent.sock"
    process = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    for _ in range(500):
        if sock.exists():
            break
        process.wait(timeout=0.01) if process.poll() is not None else None
        subprocess.run(["sleep", "0.01"])
    subprocess.run(["ssh-add", str(key)], check=True, capture_output=True,
                   env={**os.environ, "SSH_AUTH_SOCK": str(sock)})
    listed = subprocess.run(["ssh-keygen", "-l", "-f", str(key)], check=True,
                            capture_output=True, text=True).stdout
    yield sock, listed.split()[1], key
    process.send_signal(signal.SIGTERM)
    process.wait()


def add_binaries(root: Path, *binaries: str) -> None:
    """Copy host binaries into ``root`` with the libraries ``ldd`` names."""
    for binary in binaries:
        target = root / binary.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(binary, target)
        ldd = subprocess.run(["ldd", binary], check=True, capture_output=True,
                             text=True).stdout
        for library in re.findall(r"(/\S+\.so[.\d]*)", ldd):
            target = root / library.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.realpath(library), target)


@pytest.fixture
def ssh_base(with_busybox: Pybuild, tmp_path: Path) -> Pybuild:
    """The store with localhost/ssh-base: busybox plus ssh-add, ssh and git, and a
    passwd entry for root (ssh wants one)."""
    context = tmp_path / "base"
    root = context / "root"
    add_binaries(root, "/usr/bin/ssh-add", "/usr/bin/ssh", "/usr/bin/git")
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "root").mkdir()
    (context / "Containerfile").write_text("FROM localhost/busybox\nCOPY root/ /\n")
    with_busybox("bud", "-q", "-t", "ssh-base", context)
    return with_busybox


def bud(pybuild: Pybuild, tmp_path: Path, run: str, *flags: str, sock: Path | None = None,
        check: bool = True) -> tuple[int, str]:
    context = tmp_path / "ctx"
    context.mkdir(exist_ok=True)
    (context / "Containerfile").write_text(f"FROM localhost/ssh-base\n{run}\n")
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    if sock is not None:
        env["SSH_AUTH_SOCK"] = str(sock)
    runner = Pybuild(pybuild.root, env)
    result = runner("bud", "--no-cache", "-t", "x", *flags, context, check=check)
    return result.returncode, result.output


def test_the_step_lists_the_agents_key(ssh_base: Pybuild, tmp_path: Path,
                                       agent: tuple[Path, str, Path]) -> None:
    sock, fingerprint, _ = agent
    _, out = bud(ssh_base, tmp_path, 'RUN --mount=type=ssh sh -c \'echo "sock=$SSH_AUTH_SOCK"; '
                 'stat -c "%u:%g %a" $SSH_AUTH_SOCK; ssh-add -l\'', "--ssh", "default",
                 sock=sock)
    assert "sock=/run/buildkit/ssh_agent.0" in out
    assert "0:0 600" in out and fingerprint in out
    _, tree = read_image(ssh_base.root, "localhost/x:latest")
    assert not any(path.startswith("run") for path in tree)  # no mount stub in the layer


def test_target_owner_and_mode(ssh_base: Pybuild, tmp_path: Path,
                               agent: tuple[Path, str, Path]) -> None:
    sock, fingerprint, _ = agent
    _, out = bud(ssh_base, tmp_path, "RUN --mount=type=ssh,target=/tmp/agent.sock,mode=0666,"
                 'uid=1000,gid=1000 sh -c \'echo "sock=$SSH_AUTH_SOCK"; stat -c "%u:%g %a" '
                 "/tmp/agent.sock; ssh-add -l'", "--ssh", "default", sock=sock)
    assert "sock=/tmp/agent.sock" in out and "1000:1000 666" in out and fingerprint in out


@pytest.mark.parametrize(("flags", "mount"), [
    ((), "type=ssh"),  # no --ssh: an optional mount is absent
    (("--ssh", "default"), "type=ssh,id=other"),  # an id that was not forwarded
])
def test_an_optional_mount_without_its_agent_is_absent(
        ssh_base: Pybuild, tmp_path: Path, agent: tuple[Path, str, Path],
        flags: tuple[str, ...], mount: str) -> None:
    bud(ssh_base, tmp_path, f'RUN --mount={mount} sh -c \'test -z "$SSH_AUTH_SOCK" && '
        "test ! -e /run/buildkit/ssh_agent.0'", *flags, sock=agent[0])


def test_a_required_mount_without_its_agent_fails(ssh_base: Pybuild, tmp_path: Path) -> None:
    status, out = bud(ssh_base, tmp_path, "RUN --mount=type=ssh,required=true true",
                      check=False)
    assert status == 125
    assert "ssh required but no ssh with id 'default' found" in out and ":2:1" in out


@pytest.mark.parametrize("how", ["socket", "key"])
def test_another_id_or_key_files(ssh_base: Pybuild, tmp_path: Path,
                                 agent: tuple[Path, str, Path], how: str) -> None:
    sock, fingerprint, key = agent
    source = sock if how == "socket" else key  # key files: served by pybuild's own agent
    _, out = bud(ssh_base, tmp_path, "RUN --mount=type=ssh,id=other ssh-add -l",
                 "--ssh", f"other={source}")
    assert fingerprint in out


@pytest.mark.parametrize(("flags", "env_sock", "message"), [
    (("--ssh", "default"), False, "$SSH_AUTH_SOCK not set"),
    (("--ssh", "default=/nonexistent/sock"), True, "no such file or socket"),
])
def test_bad_ssh_flags(ssh_base: Pybuild, tmp_path: Path, agent: tuple[Path, str, Path],
                       flags: tuple[str, ...], env_sock: bool, message: str) -> None:
    status, out = bud(ssh_base, tmp_path, "RUN --mount=type=ssh true", *flags,
                      sock=agent[0] if env_sock else None, check=False)
    assert status == 125 and message in out


def test_an_ssh_mount_takes_no_source(ssh_base: Pybuild, tmp_path: Path) -> None:
    status, out = bud(ssh_base, tmp_path, "RUN --mount=type=ssh,src=x true", check=False)
    assert status == 125 and "option not valid here: 'src'" in out and ":2:1" in out


@pytest.fixture
def sshd(tmp_path: Path, agent: tuple[Path, str, Path]) -> Iterator[tuple[int, Path]]:
    """Debian's sshd on 127.0.0.1 (a free port), letting root in with the agent's key
    only; (port, a bare git repository with one commit)."""
    if not Path("/usr/sbin/sshd").exists():
        pytest.fail("sshd is needed (Debian package openssh-server; scripts/setup.sh)")
    if os.geteuid() != 0:
        pytest.skip("sshd logs in as the user it runs as: the root lane starts it")
    base = tmp_path / "sshd"
    base.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(base / "host_key")], check=True)
    authorized = base / "authorized_keys"
    authorized.write_text(Path(f"{agent[2]}.pub").read_text())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = base / "sshd_config"
    config.write_text(f"""ListenAddress 127.0.0.1:{port}
HostKey {base / "host_key"}
AuthorizedKeysFile {authorized}
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile {base / "sshd.pid"}
""")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # its privilege-separation directory
    work = base / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "hello.txt").write_text("over ssh\n")
    git = ["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    repo = base / "repo.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(repo)], check=True)
    log = base / "sshd.log"
    with open(log, "wb") as err:
        process = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
                                   stderr=err)
    for _ in range(500):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        if process.poll() is not None:
            pytest.fail(f"sshd did not start: {log.read_text()[-2000:]}")
        time.sleep(0.01)
    yield port, repo
    process.terminate()
    process.wait()


def test_a_step_clones_a_repository_over_ssh(ssh_base: Pybuild, tmp_path: Path,
                                             agent: tuple[Path, str, Path],
                                             sshd: tuple[int, Path]) -> None:
    """Why users want the mount: git over ssh with the forwarded agent, no key or socket
    left in the image. The step uses the host's network to reach sshd on 127.0.0.1 (the default
    network keeps steps off the host's loopback)."""
    port, repo = sshd
    ssh = f"ssh -p {port} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
    _, out = bud(ssh_base, tmp_path,
                 f"RUN --network=host --mount=type=ssh GIT_SSH_COMMAND='{ssh}' "
                 f"git clone -q ssh://root@127.0.0.1{repo} /src && cat /src/hello.txt",
                 "--ssh", "default", sock=agent[0])
    assert "over ssh" in out
    _, tree = read_image(ssh_base.root, "localhost/x:latest")
    assert "src/hello.txt" in tree
    assert not any(path.startswith("run") for path in tree)
