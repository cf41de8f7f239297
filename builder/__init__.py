"""pybuild: build OCI container images from Containerfiles, without a daemon.

The Python API (``builder.api``) is re-exported here and imported on first
use, so ``import builder`` stays cheap.
"""

from __future__ import annotations

TYPE_CHECKING = False  # importing typing costs more than the replay check

if TYPE_CHECKING:
    from typing import Any

    from builder.api import (
        BuildRequest,
        CommitOptions,
        ConfigChanges,
        CopyOptions,
        FromOptions,
        RunOptions,
        RunSettings,
        Session,
        WorkingContainer,
    )

__all__ = [
    "BuildRequest",
    "CommitOptions",
    "ConfigChanges",
    "CopyOptions",
    "FromOptions",
    "RunOptions",
    "RunSettings",
    "Session",
    "WorkingContainer",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from builder import api

        return getattr(api, name)
    raise AttributeError(f"module 'builder' has no attribute {name!r}")
