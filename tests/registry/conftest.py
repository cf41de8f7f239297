"""Registry fixtures (defined in ``registry_fixtures``); every test here is marked ``registry``."""

from __future__ import annotations

import pytest
from registry_fixtures import (  # noqa: F401 - fixtures
    fault_proxy,
    registry,
    secure_registry,
    token_registry,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/registry/" in str(item.fspath):
            item.add_marker(pytest.mark.registry)
