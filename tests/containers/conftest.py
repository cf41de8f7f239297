"""Fixtures for working-container tests: a store with localhost/busybox:latest."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Pybuild
from tests.containers.support import build_busybox_store, copy_store


@pytest.fixture(scope="session")
def busybox_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_busybox_store(tmp_path_factory.mktemp("ctr-busybox"))


@pytest.fixture
def bb(pybuild: Pybuild, busybox_root: Path) -> Pybuild:
    """The `pybuild` runner with a store that holds localhost/busybox:latest."""
    return copy_store(busybox_root, pybuild)
