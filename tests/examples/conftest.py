"""The registry fixtures of tests/registry, for the example scripts."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "registry"))

from registry_fixtures import registry  # noqa: E402,F401 - fixture
