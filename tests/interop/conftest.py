"""Fixtures for interop tests: a busybox base both builders read from an OCI layout, and
Buildah on an overlay store."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.build.conftest import Buildah, buildah  # noqa: F401  (a fixture used by the tests)
from tests.build.remote_servers import file_server, git_http  # noqa: F401  (fixtures)
from tests.conftest import REPO
from tests.interop.buildah_overlay import OverlayBuildah


@pytest.fixture(scope="session")
def overlay_buildah(buildah: Buildah,  # noqa: F811  (skips when buildah is missing)
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[OverlayBuildah]:
    overlay = OverlayBuildah(tmp_path_factory.mktemp("buildah-overlay"))
    yield overlay
    overlay.unmount()


@pytest.fixture(scope="session")
def base_layout(busybox_store: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """``oci:DIR:latest`` holding pybuild's busybox image, the BASE of every comparison."""
    layout = tmp_path_factory.mktemp("busybox-oci") / "layout"
    subprocess.run([sys.executable, "-m", "builder", "--root", str(busybox_store), "push",
                    "localhost/busybox:latest", f"oci:{layout}:latest"],
                   check=True, capture_output=True, cwd=REPO)
    return f"oci:{layout}:latest"
