"""References the command line adds to a plan: ``--from`` and ``--build-context``.

``--from IMAGE`` replaces the image of the first FROM (its ``AS`` name stays), as
Buildah does before planning.

``--build-context NAME=VALUE`` names an extra source: an image
(``docker-image://REF``, ``container-image://REF``, ``docker://REF``, or
``oci-layout://DIR[:TAG]``) or a directory (a local path, or a git or https URL
the command fetched first). ``resolve_named_contexts`` is one step after the
stage graph is made: every ``FROM NAME`` and ``COPY/ADD --from=NAME`` whose name
is a context is pointed at it. As in Buildah (and BuildKit) a context wins over a
stage of the same name; as in Buildah, only an image context can be a FROM base.
Stages no longer needed afterwards are dropped from the plan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from builder.errors import PlanError, UsageError
from builder.instructions.model import Containerfile, CopyInstruction
from builder.plan.graph import BuildPlan, StagePlan, StageRef

__all__ = ["NamedContext", "image_context", "replace_first_from", "resolve_named_contexts"]

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


def resolve_named_contexts(plan: BuildPlan, contexts: Mapping[str, NamedContext]) -> BuildPlan:
    """Point every FROM and ``--from`` naming a context at it; drop stages only the
    replaced references needed."""
    if not contexts:
        return plan
    stages = {p.index: p for p in plan.stages}
    names = {s.index: s.name for s in plan.containerfile.stages}
    for stage_plan in plan.stages:
        stage = stage_plan.stage
        found = _lookup(contexts, stage.base.image, stage_plan.base, names)
        if found is not None:
            if found.image is None:
                raise PlanError(
                    f"FROM {stage.base.image}: build context {found.name!r} is a directory, "
                    "not an image; only docker-image:// and oci-layout:// contexts can be "
                    "a base", stage.base.location)
            stage_plan.base = found.ref()
        for position, ref in list(stage_plan.sources.items()):
            instruction = stage.instructions[position]
            raw = instruction.from_ if isinstance(instruction, CopyInstruction) else None
            found = _lookup(contexts, raw, ref, names)
            if found is not None:
                stage_plan.sources[position] = found.ref()
        stage_plan.deps = {ref.stage for ref in [stage_plan.base, *stage_plan.sources.values()]
                           if ref.stage is not None}
    needed = _reachable(stages, plan.target.index)
    plan.stages = [p for p in plan.stages if p.index in needed]
    return plan


def _lookup(contexts: Mapping[str, NamedContext], raw: str | None, ref: StageRef,
            names: Mapping[int, str | None]) -> NamedContext | None:
    """The context a reference names: by its text, by the image name it resolved to,
    or by the name of the stage it resolved to (a stage index included)."""
    for candidate in (raw, ref.image, names.get(ref.stage) if ref.stage is not None else None):
        if candidate and candidate in contexts:
            return contexts[candidate]
    return None


def _reachable(stages: Mapping[int, StagePlan], target: int) -> set[int]:
    seen: set[int] = set()
    pending = [target]
    while pending:
        index = pending.pop()
        if index in seen or index not in stages:
            continue
        seen.add(index)
        pending.extend(stages[index].deps)
    return seen
