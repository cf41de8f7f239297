"""Shared by the container, manifest and API tests: a busybox base image and a `pybuild`
command for shell scripts."""

from __future__ import annotations

from tests.conftest import REPO, Pybuild, build_busybox_store, copy_store  # noqa: F401


def shell_env(pybuild: Pybuild) -> dict[str, str]:
    """Environment for scripts: $PYBUILD runs the CLI against the test's store."""
    return {**pybuild.env, "PYBUILD": " ".join(pybuild.argv())}
