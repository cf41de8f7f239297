"""Shared by the container, manifest and API tests: a busybox base image and a `pybuild`
command for shell scripts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, Pybuild

BUSYBOX_CONTAINERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /etc /tmp /root && chmod 1777 /tmp && \\
    echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd && \\
    echo 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >> /etc/passwd && \\
    echo 'root:x:0:' > /etc/group && echo 'nogroup:x:65534:' >> /etc/group
CMD ["/bin/sh"]
"""


def build_busybox_store(tmp: Path) -> Path:
    """A store holding localhost/busybox:latest (skips when it cannot be built)."""
    busybox = Path("/bin/busybox")
    if not busybox.exists():
        pytest.skip("busybox-static is not installed")
    context = tmp / "busybox-context"
    context.mkdir()
    shutil.copy2(busybox, context / "busybox")
    (context / "Containerfile").write_text(BUSYBOX_CONTAINERFILE)
    root = tmp / "store"
    proc = subprocess.run(
        [sys.executable, "-m", "builder", "bud", "-q", "--timestamp", "0",
         "-t", "localhost/busybox:latest", str(context)],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYBUILD_ROOT": str(root)},
    )
    if proc.returncode != 0:
        pytest.skip(f"building the busybox base image failed: {proc.stderr}")
    return root


def copy_store(source: Path, pybuild: Pybuild) -> Pybuild:
    shutil.copytree(source, pybuild.root, symlinks=True,
                    ignore=shutil.ignore_patterns("workspaces", "tmp", "lock", "gc.lock"))
    return pybuild


def shell_env(pybuild: Pybuild) -> dict[str, str]:
    """Environment for scripts: $PYBUILD runs the CLI against the test's store."""
    return {**pybuild.env, "PYBUILD": f"{sys.executable} -m builder"}
