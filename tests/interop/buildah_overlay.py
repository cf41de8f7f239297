"""Buildah on an overlay store: its opaque-directory handling then matches a real overlay."""

from __future__ import annotations

import subprocess
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

    def unmount(self) -> None:
        """Buildah leaves its overlay store mounted (the driver's home bind-mounted on itself,
        a container's merged view at times); unmount all of it, deepest first, so that the
        directory can be deleted (pytest deletes old temporary directories)."""
        prefix = f"{self.base}/"
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            points = [line.split()[4] for line in f]
        for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)
