"""References the command line adds to a plan: ``--from`` and ``--build-context``.

``--from IMAGE`` replaces the image of the first FROM (its ``AS`` name stays), as
Buildah does before planning.

``--build-context NAME=VALUE`` names an extra source: an image
(``docker-image://REF``, ``container-image://REF``, ``docker://REF``, or
``oci-layout://DIR[:TAG]``) or a directory (a local path, or a git or https URL
the command fetched first). The plan resolves names through them first
(``builder.plan.graph.References``): every ``FROM NAME``, ``COPY/ADD --from=NAME``
and ``RUN --mount from=NAME`` whose name is a context is pointed at it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from builder.errors import UsageError
from builder.instructions.model import Containerfile
from builder.plan.graph import StageRef

__all__ = ["NamedContext", "image_context", "replace_first_from"]

_IMAGE_PREFIXES = ("docker-image://", "container-image://", "docker://")


@dataclass(frozen=True)
class NamedContext:
    """A ``--build-context`` value once made local: an image reference the build can
    pull or import, or a directory."""

    name: str
    image: str | None = None
    directory: Path | None = None

    def ref(self) -> StageRef:
        return StageRef(image=self.image) if self.image is not None else \
            StageRef(directory=self.directory)


def image_context(value: str) -> str | None:
    """The image reference a ``--build-context`` value names, or None when it names
    a directory or URL: ``docker-image://REF`` (also ``container-image://`` and
    ``docker://``) gives REF; ``oci-layout://DIR[:TAG]`` gives ``oci:DIR[:TAG]``."""
    for prefix in _IMAGE_PREFIXES:
        if value.startswith(prefix):
            ref = value[len(prefix):]
            if not ref:
                raise UsageError(f"parsing --build-context {value!r}: no image named")
            return ref
    if value.startswith("oci-layout://"):
        rest = value[len("oci-layout://"):]
        if not rest:
            raise UsageError(f"parsing --build-context {value!r}: no layout directory")
        return f"oci:{rest}"
    return None


def replace_first_from(containerfile: Containerfile, image: str | None) -> Containerfile:
    """``--from IMAGE``: the first FROM names ``image`` instead."""
    if not image or not containerfile.stages:
        return containerfile
    first = containerfile.stages[0]
    keyword, _, rest = first.base.original.partition(" ")
    original = f"{keyword} {rest.replace(first.base.image, image, 1)}"
    base = dataclasses.replace(first.base, image=image, original=original)
    stages = (dataclasses.replace(first, base=base), *containerfile.stages[1:])
    return dataclasses.replace(containerfile, stages=stages)
