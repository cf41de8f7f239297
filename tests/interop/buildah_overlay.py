"""Buildah on an overlay store: its opaque-directory handling then matches a real overlay."""

from __future__ import annotations

from pathlib import Path

from tests.build.conftest import Buildah


class OverlayBuildah(Buildah):
    """Buildah with an overlay store; ``build_layout`` returns the OCI layout it pushed to."""

    def __init__(self, base: Path) -> None:
        super().__init__(base)
        self.flags[-1] = "overlay"

    def build_layout(self, context: Path, *args: str) -> Path:
        self.build(context, "--layers", *args)
        return self.base / f"oci{self.count}"
