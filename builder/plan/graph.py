"""The stage graph: which stages a build needs and in which order.

Edges come from ``FROM <stage>``, ``COPY/ADD --from=<stage>`` and
``RUN --mount from=<stage>``. Stage names are case-insensitive; a number names
a stage by index. Only stages reachable from the target are planned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from builder.errors import PlanError
from builder.instructions.model import (
    ArgInstruction,
    Containerfile,
    CopyInstruction,
    EnvInstruction,
    Instruction,
    RunInstruction,
    Stage,
)
from builder.plan.args import ArgScope, apply_env, declare_args, expand
from builder.platform import Platform, emulation_registered, machine_name, needs_emulation
from builder.source import Location


@dataclass(frozen=True)
class StageRef:
    """What a FROM or --from names: a stage (by index), an image reference, or a
    directory (a ``--build-context``, see ``builder.plan.contexts``)."""

    stage: int | None = None
    image: str | None = None
    directory: Path | None = None


SCRATCH = "scratch"


@dataclass
class StagePlan:
    """One stage to build: its base, dependencies and every resolved reference: the
    ``COPY/ADD --from`` of an instruction and the ``from`` of each of a RUN's mounts
    (None for a mount without one), by instruction position."""

    stage: Stage
    base: StageRef
    deps: set[int] = field(default_factory=set)
    sources: dict[int, StageRef] = field(default_factory=dict)
    mounts: dict[int, tuple[StageRef | None, ...]] = field(default_factory=dict)

    @property
    def index(self) -> int:
        return self.stage.index

    @property
    def name(self) -> str | None:
        return self.stage.name


@dataclass
class BuildPlan:
    """Stages to build in order; the last one is the target."""

    containerfile: Containerfile
    stages: list[StagePlan]
    global_args: dict[str, str]
    scope: ArgScope  # holds the build args and which of them were consumed
    references: References

    @property
    def target(self) -> StagePlan:
        return self.stages[-1]

    def resolve(self, value: str, stage: int, instruction: Instruction) -> StageRef:
        """What a ``--from`` value (expanded) names from stage ``stage`` (ONBUILD
        triggers, which come from a base image while the build runs, are resolved with
        this too)."""
        return self.references.source(value, stage, instruction)


@dataclass(frozen=True)
class References:
    """The one rule for what a name in FROM or ``--from`` means: a named build context
    first (``--build-context``: an image or a directory; Buildah and BuildKit let it win
    over a stage of the same name), then an earlier stage by name or index, else an
    image (one that looks like a stage name must exist)."""

    containerfile: Containerfile
    image_exists: Callable[[str], bool] = lambda ref: True
    contexts: Mapping[str, StageRef] = field(default_factory=dict)

    def base(self, name: str, stage: Stage) -> StageRef:
        """What ``FROM name`` names in ``stage``."""
        context = self.contexts.get(name)
        if context is not None:
            if context.directory is not None:  # as Buildah: only an image can be a base
                raise PlanError(
                    f"FROM {name}: build context {name!r} is a directory, not an image; "
                    "only docker-image:// and oci-layout:// contexts can be a base",
                    stage.base.location)
            return context
        return _resolve_base(self.containerfile, name, stage)

    def source(self, value: str, stage: int, instruction: Instruction) -> StageRef:
        """What ``--from=value`` (expanded) names in stage ``stage``."""
        context = self.contexts.get(value)
        if context is not None:
            return context
        ref = _resolve_source(self.containerfile, stage, value, instruction, self.image_exists)
        if ref.stage is not None:  # a stage by index whose name is a context
            name = self.containerfile.stages[ref.stage].name
            if name is not None and name in self.contexts:
                return self.contexts[name]
        return ref


def _stage_index(
    containerfile: Containerfile, value: str, current: int, location: Location, keyword: str
) -> int | None:
    lowered = value.lower()
    for stage in containerfile.stages:
        if stage.name is not None and stage.name.lower() == lowered:
            return stage.index
    if value.isdigit():
        index = int(value)
        if index >= len(containerfile.stages):
            raise PlanError(f"{keyword} --from={value}: no stage with index {index}", location)
        return index
    return None


def _looks_like_stage(value: str) -> bool:
    return not any(c in value for c in "/:@.")


def make_plan(
    containerfile: Containerfile,
    build_args: Mapping[str, str],
    platform_values: Mapping[str, str],
    *,
    target: str | None = None,
    image_exists: Callable[[str], bool] = lambda ref: True,
    contexts: Mapping[str, StageRef] | None = None,
    skip_unused: bool = True,
) -> BuildPlan:
    """Resolve stages, every ``--from`` reference (named ``contexts`` included) and the
    target; check for unknown stages and cycles. With ``skip_unused`` false every stage up
    to the target is built, as with Buildah's ``--skip-unused-stages=false``."""
    references = References(containerfile, image_exists, dict(contexts or {}))
    if not containerfile.stages:
        raise PlanError(f"planning {containerfile.path}: no FROM instruction")
    escape = containerfile.escape
    scope = ArgScope(build_args)
    global_values: dict[str, str] = dict(platform_values)
    for meta in containerfile.meta_args:
        for name in declare_args(meta, scope, global_values, {}, escape):
            if name in scope.values:
                global_values[name] = scope.values[name]
            else:
                global_values.pop(name, None)

    plans: list[StagePlan] = []
    for stage in containerfile.stages:
        base_name = expand(stage.base.image, global_values, escape, stage.base.location)
        plan = StagePlan(stage, references.base(base_name, stage))
        if plan.base.stage is not None:
            plan.deps.add(plan.base.stage)
        _scan_stage(references, plan, scope, global_values)
        plans.append(plan)

    target_index = len(plans) - 1
    if target:
        matches = [p.index for p in plans if p.name and p.name.lower() == target.lower()]
        if not matches:
            raise PlanError(f"building: target stage {target!r} not found")
        target_index = matches[0]
    roots = [target_index] if skip_unused else [*range(target_index), target_index]
    order = _order(plans, roots)
    order = order[: order.index(target_index) + 1]  # a stage built on the target is unused
    return BuildPlan(containerfile, [plans[i] for i in order], global_values, scope,
                     references)


def _resolve_base(containerfile: Containerfile, name: str, stage: Stage) -> StageRef:
    lowered = name.lower()
    for earlier in containerfile.stages[: stage.index]:
        if earlier.name is not None and earlier.name.lower() == lowered:
            return StageRef(stage=earlier.index)
    if not name:
        raise PlanError("FROM: base name is empty after expansion", stage.base.location)
    return StageRef(image=name)


def _scan_stage(references: References, plan: StagePlan, scope: ArgScope,
                global_values: Mapping[str, str]) -> None:
    """Walk a stage with its ARG/ENV values (as the executor will) to resolve every
    ``--from`` it uses."""
    escape = references.containerfile.escape
    stage_scope = scope.child()
    env: dict[str, str] = {}
    for position, instruction in enumerate(plan.stage.instructions):
        values = {**stage_scope.values, **env}
        if isinstance(instruction, ArgInstruction):
            declare_args(instruction, stage_scope, env, global_values, escape)
        elif isinstance(instruction, EnvInstruction):
            env.update(apply_env(instruction, values, escape))
        elif isinstance(instruction, CopyInstruction) and instruction.from_:
            value = expand(instruction.from_, values, escape, instruction.location)
            plan.sources[position] = _depend(
                plan, references.source(value, plan.index, instruction))
        elif isinstance(instruction, RunInstruction) and \
                any(mount.from_ for mount in instruction.mounts):
            plan.mounts[position] = tuple(
                _depend(plan, references.source(
                    expand(mount.from_, values, escape, instruction.location), plan.index,
                    instruction)) if mount.from_ else None
                for mount in instruction.mounts)


def _depend(plan: StagePlan, ref: StageRef) -> StageRef:
    if ref.stage is not None:
        plan.deps.add(ref.stage)
    return ref


def _resolve_source(
    containerfile: Containerfile,
    stage: int,
    value: str,
    instruction: Instruction,
    image_exists: Callable[[str], bool],
) -> StageRef:
    keyword = instruction.keyword
    if not value:
        raise PlanError(f"{keyword} --from: empty value after expansion", instruction.location)
    index = _stage_index(containerfile, value, stage, instruction.location, keyword)
    if index is not None:
        if index == stage:
            raise PlanError(
                f"{keyword} --from={value}: no stage or image found with that name "
                "(a stage cannot copy from itself)",
                instruction.location,
            )
        return StageRef(stage=index)
    if _looks_like_stage(value) and not image_exists(value):
        raise PlanError(
            f"{keyword} --from={value}: no stage or image found with that name",
            instruction.location,
        )
    return StageRef(image=value)


def _order(plans: list[StagePlan], roots: list[int]) -> list[int]:
    """Stages reachable from the roots (the target last), dependencies first; cycles
    are errors."""
    state: dict[int, str] = {}
    order: list[int] = []

    def visit(index: int, path: list[int]) -> None:
        if state.get(index) == "done":
            return
        if state.get(index) == "active":
            cycle = path[path.index(index):] + [index]
            names = " -> ".join(_label(plans[i]) for i in cycle)
            raise PlanError(
                f"planning stages: circular dependency: {names}", plans[index].stage.base.location
            )
        state[index] = "active"
        for dep in sorted(plans[index].deps):
            visit(dep, path + [index])
        state[index] = "done"
        order.append(index)

    for root in roots:
        visit(root, [])
    return order


def _label(plan: StagePlan) -> str:
    return plan.name or str(plan.index)


def check_emulation(plan: BuildPlan, platform: Platform) -> None:
    """A RUN for a platform this host cannot run needs a binfmt_misc handler: fail
    before anything runs when there is none."""
    if not needs_emulation(platform):
        return
    machine = machine_name(platform)
    for stage_plan in plan.stages:
        for instruction in stage_plan.stage.instructions:
            if not isinstance(instruction, RunInstruction):
                continue
            if platform.os != "linux":
                raise PlanError(f"RUN for {platform}: only linux binaries can run here",
                                instruction.location)
            if not emulation_registered(machine):
                raise PlanError(f"RUN for {platform} needs emulation: no binfmt_misc handler "
                                f"for {machine} is registered", instruction.location)
            return
