"""Fixtures for working-container tests: a store with localhost/busybox:latest."""

from __future__ import annotations

import pytest

from tests.conftest import Pybuild


@pytest.fixture
def bb(with_busybox: Pybuild) -> Pybuild:
    """The `pybuild` runner with a store that holds localhost/busybox:latest."""
    return with_busybox
