"""A busybox root filesystem for sandbox tests, built with fixtures/make-busybox.sh."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def make_busybox(dest: Path) -> Path:
    if not Path("/bin/busybox").exists():
        pytest.skip("busybox-static is not installed")
    subprocess.run([REPO / "fixtures/make-busybox.sh", dest], check=True)
    return dest


@pytest.fixture(scope="session")
def busybox_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shared, read-mostly busybox root; tests write only under /tmp/<own name>."""
    return make_busybox(tmp_path_factory.mktemp("busybox") / "root")


@pytest.fixture
def fresh_root(tmp_path: Path, busybox_root: Path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(busybox_root, root, symlinks=True)
    return root
