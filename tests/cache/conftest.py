"""Fixtures for cache tests: a registry (the busybox base image is the root conftest's)."""

from tests.registry.registry_fixtures import registry  # noqa: F401 - fixture
