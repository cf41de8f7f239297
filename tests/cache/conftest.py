"""Fixtures for cache tests: the busybox base image of the build tests and a registry."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "registry"))

from registry_fixtures import registry  # noqa: E402,F401 - fixture

from tests.build.conftest import busybox_store, with_busybox  # noqa: E402,F401 - fixtures
