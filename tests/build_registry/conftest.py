"""Registry fixtures for ``bud`` against a real registry (shared with tests/registry)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "registry"))

from registry_fixtures import registry  # noqa: E402,F401 - fixture

from tests.build.conftest import buildah  # noqa: E402,F401 - fixture


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/build_registry/" in str(item.fspath):
            item.add_marker(pytest.mark.registry)
