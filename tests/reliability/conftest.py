"""Fixtures for reliability tests: a store with two small images, built by the
real CLI in a subprocess (so no test process is registered as using it)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import Pybuild

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "registry"))
from registry_fixtures import registry  # noqa: E402, F401 - for pulls of corrupt images


def build_context(path: Path, content: bytes, extra: str = "") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "data").write_bytes(content)
    (path / "Containerfile").write_text(f"FROM scratch\nCOPY data /data\n{extra}")
    return path


@pytest.fixture(scope="session")
def two_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store template holding localhost/a:latest and localhost/b:latest."""
    base = tmp_path_factory.mktemp("two-images")
    runner = Pybuild(base / "store")
    for name in ("a", "b"):
        runner("bud", "-q", "--timestamp", "0", "-t", name,
               build_context(base / name, name.encode() * 1000))
    return base / "store"


@pytest.fixture
def store_ab(pybuild: Pybuild, two_images: Path) -> Pybuild:
    """The ``pybuild`` runner on a fresh copy of the two-image store."""
    shutil.copytree(two_images, pybuild.root, symlinks=True,
                    ignore=shutil.ignore_patterns("tmp", "workspaces"))
    return pybuild
