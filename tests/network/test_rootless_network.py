"""The default network as an ordinary user. Today the sandbox makes the user namespace,
and slirp4netns (or pasta) enters it and the step's network namespace by the sandbox's
PID. The ``inside`` cases run the same as root of a user namespace made beforehand (as
``buildah unshare`` does, and pybuild will for ordinary users): the sandbox then makes
no user namespace and the tools stay in the one they share with it."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.network.conftest import Listener
from tests.sandbox.conftest import make_busybox

pytestmark = pytest.mark.sandbox
USER = "pbrootless"
PYTHON = "/usr/bin/python3"  # readable by every user, unlike a per-user interpreter
CODE = """
import sys
from pathlib import Path
from builder.executor.runspec import RunSpec
from builder.executor.sandbox import run_in_sandbox
from builder.runsettings import RunSettings
script = ("id -u; ls /sys/class/net; ip -4 -o addr show eth0 | grep -c inet; "
          "echo hello | nc -w 2 127.0.0.1 " + sys.argv[3] + "; "
          "wget -q -O- http://deb.debian.org/debian/dists/bookworm/Release | head -1")
sys.exit(run_in_sandbox(Path(sys.argv[1]), RunSpec(
    argv=["/bin/sh", "-c", script], env=[], settings=RunSettings(network=sys.argv[2]))))
"""


@pytest.fixture
def rootless_user() -> pwd.struct_passwd:
    if os.geteuid() != 0 or not shutil.which("useradd") or not Path(PYTHON).exists():
        pytest.skip("needs root (to create the user), useradd and a system python3")
    tun = os.stat("/dev/net/tun")
    if tun.st_mode & (stat.S_IROTH | stat.S_IWOTH) != stat.S_IROTH | stat.S_IWOTH:
        pytest.skip("/dev/net/tun is not usable by other users here (scripts/setup.sh makes "
                    "it 0666, as Debian's udev does)")
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "-M", "-s", "/bin/sh", USER], check=True)
        return pwd.getpwnam(USER)


@pytest.mark.parametrize("inside", [False, True], ids=["user", "inside-userns"])
@pytest.mark.parametrize("mode", ["private", pytest.param("pasta", marks=pytest.mark.skipif(
    shutil.which("pasta") is None, reason="pasta (Debian package passt) missing"))])
def test_rootless_step_reaches_out_but_not_the_host_loopback(
        rootless_user: pwd.struct_passwd, listener: Listener, mode: str, inside: bool) -> None:
    base = Path(tempfile.mkdtemp(prefix="pybuild-rootless-net-"))
    try:
        os.chmod(base, 0o755)
        root = make_busybox(base / "root")
        shutil.copytree(REPO / "builder", base / "pkg" / "builder",
                        ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run(["chown", "-R", f"{USER}:", base], check=True)
        unshare = ["unshare", "--user", "--map-auto", "--map-root-user", "--mount"]
        proc = subprocess.run(
            ["runuser", "-u", USER, "--", *(unshare if inside else []), "env",
             f"PYTHONPATH={base / 'pkg'}", PYTHON, "-c", CODE, str(root), mode,
             str(listener.port)],
            capture_output=True, text=True, cwd=base, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split("\n")[:5] == ["0", "eth0", "lo", "1", "Origin: Debian"]
        assert listener.wait(1) == []
        assert not (root / "etc/hosts").exists() and not (root / "etc/resolv.conf").exists()
    finally:
        shutil.rmtree(base)
