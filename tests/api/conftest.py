"""API tests: a store with localhost/busybox:latest and the loopback registry."""

from __future__ import annotations

import pytest

from tests.conftest import Pybuild
from tests.registry.registry_fixtures import registry  # noqa: F401 - fixture


@pytest.fixture
def bb(with_busybox: Pybuild) -> Pybuild:
    """The `pybuild` runner with a store that holds localhost/busybox:latest."""
    return with_busybox
