"""Manifest-list tests use the registry tests' loopback ``docker-registry``."""

from __future__ import annotations

import pytest

from tests.registry.registry_fixtures import registry  # noqa: F401 - fixture


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/manifests/" in str(item.fspath) and "registry" in getattr(
                item, "fixturenames", ()):
            item.add_marker(pytest.mark.registry)
