"""API tests: a store with localhost/busybox:latest and the loopback registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Pybuild
from tests.containers.support import build_busybox_store, copy_store
from tests.registry.registry_fixtures import registry  # noqa: F401 - fixture


@pytest.fixture(scope="session")
def busybox_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_busybox_store(tmp_path_factory.mktemp("api-busybox"))


@pytest.fixture
def bb(pybuild: Pybuild, busybox_root: Path) -> Pybuild:
    return copy_store(busybox_root, pybuild)
