"""Rootless: the sandbox run by an ordinary user, root mapped to that user."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from .conftest import REPO, make_busybox

pytestmark = pytest.mark.sandbox
# user -> the sizes of its subordinate ranges (the lanes' users)
RANGES = {"pbrootless": (65536,), "pbtworanges": (1000, 65536)}
PYTHON = "/usr/bin/python3"  # readable by every user, unlike a per-user interpreter
CODE = """
import sys
from pathlib import Path
from builder.executor.runspec import RunSpec
from builder.executor.sandbox import run_in_sandbox
from builder.runsettings import RunSettings
script = "id -u; hostname; cat /proc/self/uid_map; ls /sys/class/net; touch /made; exit 4"
sys.exit(run_in_sandbox(Path(sys.argv[1]), RunSpec(argv=["/bin/sh", "-c", script], env=[],
                                                   settings=RunSettings(network="none"),
                                                   hostname="rl")))
"""


@pytest.fixture(params=list(RANGES), ids=["one-range", "two-ranges"])
def rootless_user(request: pytest.FixtureRequest) -> pwd.struct_passwd:
    """An ordinary user with one or two subordinate ranges (the lanes' users)."""
    from tests.lanes import ensure_user

    if not Path(PYTHON).exists():
        pytest.skip("needs a system python3")
    return ensure_user(request.param, RANGES[request.param])


def test_rootless_sandbox(rootless_user: pwd.struct_passwd) -> None:
    """Root maps to the user, then every subordinate range follows, one after the other."""
    user = rootless_user.pw_name
    base = Path(tempfile.mkdtemp(prefix="pybuild-rootless-"))
    try:
        os.chmod(base, 0o755)
        root = make_busybox(base / "root")
        # the checkout may sit under a directory other users cannot enter (/root)
        shutil.copytree(REPO / "builder", base / "pkg" / "builder",
                        ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run(["chown", "-R", f"{user}:", base], check=True)
        proc = subprocess.run(
            ["runuser", "-u", user, "--", "env", f"PYTHONPATH={base / 'pkg'}", PYTHON, "-c", CODE,
             str(root)], capture_output=True, text=True, cwd=base, timeout=60)
        assert proc.returncode == 4, proc.stderr
        out = proc.stdout.split()
        assert out[:2] == ["0", "rl"]
        assert out[2:5] == ["0", str(rootless_user.pw_uid), "1"]  # root is the invoking user
        subuid = [line.split(":")[1:] for line in Path("/etc/subuid").read_text().split()
                  if line.startswith(user + ":")]
        inside, expected = 1, []
        for start, count in subuid:  # newuidmap's ranges
            expected += [str(inside), start, count]
            inside += int(count)
        assert [int(count) for _, count in subuid] == list(RANGES[user])
        assert out[5:-1] == expected
        assert out[-1] == "lo"
        assert os.stat(root / "made").st_uid == rootless_user.pw_uid
        assert not (root / "proc").exists() and not (root / "etc/hosts").exists()
    finally:
        shutil.rmtree(base)
