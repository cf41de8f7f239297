"""The busybox base image of the build tests."""

from tests.build.conftest import busybox_store, with_busybox  # noqa: F401 - fixtures
