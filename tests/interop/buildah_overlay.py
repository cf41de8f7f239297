"""Buildah on an overlay store: its opaque-directory handling then matches a real overlay."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from tests.build.conftest import Buildah

_T = TypeVar("_T")


def reference_build(build: Callable[[], _T]) -> _T:
    """Run a Buildah reference build on an overlay store. Once, in a CI run, Buildah's first
    build on a fresh overlay store failed while the next build on the same store passed,
    and it never failed here; so a failed reference build is tried once more (the failure
    is reported as a warning), and a second failure skips the comparison with Buildah's
    error instead of failing pybuild for it. pybuild's side is never retried."""
    try:
        return build()
    except AssertionError as first:
        warnings.warn(f"Buildah's reference build failed, trying once more: {first}",
                      stacklevel=2)
        try:
            return build()
        except AssertionError as second:
            pytest.skip(f"Buildah (overlay store) cannot build the reference here: {second}")


class OverlayBuildah(Buildah):
    """Buildah with an overlay store; ``build_layout`` returns the OCI layout it pushed to."""

    def __init__(self, base: Path) -> None:
        super().__init__(base)
        self.flags[-1] = "overlay"

    def build_layout(self, context: Path, *args: str) -> Path:
        reference_build(lambda: self.build(context, "--layers", *args))
        return self.base / f"oci{self.count}"
