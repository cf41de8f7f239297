"""Shared by the container, manifest and API tests: a busybox base image and a `pybuild`
command for shell scripts."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tests.conftest import REPO, Pybuild, build_busybox_store  # noqa: F401 - re-exported


def copy_store(source: Path, pybuild: Pybuild) -> Pybuild:
    shutil.copytree(source, pybuild.root, symlinks=True,
                    ignore=shutil.ignore_patterns("workspaces", "tmp", "lock", "gc.lock"))
    return pybuild


def shell_env(pybuild: Pybuild) -> dict[str, str]:
    """Environment for scripts: $PYBUILD runs the CLI against the test's store."""
    return {**pybuild.env, "PYBUILD": f"{sys.executable} -m builder"}
