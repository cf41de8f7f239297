"""Fixtures for build tests: Buildah as a reference builder (the busybox base image is the
root conftest's ``busybox_store``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.build.imagetree import read_image
from tests.build.remote_servers import file_server, git_daemon, git_http  # noqa: F401
from tests.conftest import REPO, Pybuild

BUILDAH = shutil.which("buildah")


# Buildah 1.28's chroot isolation copies its own binary into a sealed memfd for each RUN,
# before the step's command starts; sealing sometimes fails with EBUSY while the kernel
# still holds the copy's pages. Seen once in a whole-suite run, failing one reference
# build; a CI run before that failed one such build without showing Buildah's error.
BUILDAH_TRANSIENT = "sealing memfd copy: Device or resource busy"


def run_buildah(argv: list[str], attempts: int = 3,
                **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a Buildah command (output captured as text), again while it fails only with
    Buildah's own transient error above; any other outcome is returned as it is."""
    for _ in range(attempts):
        done = subprocess.run(argv, capture_output=True, text=True, **kwargs)
        if done.returncode == 0 or BUILDAH_TRANSIENT not in done.stderr:
            break
    return done


class Buildah:
    """The system's buildah with a private vfs store; images are read back via ``oci:``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.flags = ["--root", str(base / "root"), "--runroot", str(base / "run"),
                      "--storage-driver", "vfs"]
        self.count = 0

    def run(self, *args: str, env: dict[str, str] | None = None) -> str:
        """``buildah`` with this store's flags; a failure shows Buildah's own error."""
        done = run_buildah(["buildah", *self.flags, *args], env=env)
        if done.returncode != 0:
            raise AssertionError(f"buildah {' '.join(args)} exited {done.returncode}:\n"
                                 f"{done.stderr[-4000:]}")
        return done.stdout

    def load(self, layout: Path, ref: str) -> None:
        """Copy an image from an OCI layout (a pybuild store) into Buildah's store as ``ref``."""
        pulled = self.run("pull", "-q", f"oci:{layout}:{ref}")
        self.run("tag", pulled.split()[-1], ref)

    def build(self, context: Path, *args: str) -> tuple[dict, dict]:
        self.count += 1
        tag = f"localhost/cmp{self.count}:latest"
        self.run("bud", "-q", "--isolation", "chroot", "-t", tag, *args, str(context),
                 env={**os.environ, "BUILDAH_FORMAT": "oci"})
        out = self.base / f"oci{self.count}"
        self.run("push", "-q", tag, f"oci:{out}:img")
        return read_image(out, "img")


@pytest.fixture(scope="session")
def buildah(tmp_path_factory: pytest.TempPathFactory) -> Buildah:
    if BUILDAH is None or os.geteuid() != 0:
        pytest.skip("buildah (run as root) is needed for interop comparisons")
    return Buildah(tmp_path_factory.mktemp("buildah"))


def pybuild_image(pybuild: Pybuild, context: Path, *args: str) -> tuple[dict, dict]:
    """Build with pybuild and read the image back from its store (an OCI layout)."""
    pybuild("bud", "-q", "-t", "cmp:latest", *args, context)
    return read_image(pybuild.root, "localhost/cmp:latest")


EXAMPLES = REPO / "Containerfile.examples"


