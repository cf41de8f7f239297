"""The stage graph: which stages a build needs and in which order.

Edges come from ``FROM <stage>``, ``COPY/ADD --from=<stage>`` and
``RUN --mount from=<stage>``. Stage names are case-insensitive; a number names
a stage by index. Only stages reachable from the target are planned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from builder.errors import ExpansionError, PlanError
from builder.instructions.model import (
    ArgInstruction,
    Containerfile,
    CopyInstruction,
    EnvInstruction,
    Instruction,
    RunInstruction,
    Stage,
)
from builder.plan.args import ArgScope
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
    """One stage to build: its base, dependencies and resolved ``--from`` sources."""

    stage: Stage
    base: StageRef
    deps: set[int] = field(default_factory=set)
    sources: dict[int, StageRef] = field(default_factory=dict)  # instruction position -> ref

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

    @property
    def target(self) -> StagePlan:
        return self.stages[-1]


def expand(word: str, env: Mapping[str, str], escape: str, location: Location) -> str:
    """Expand one word, attaching the instruction's location to expansion errors."""
    from builder.syntax.shell import expand_word

    try:
        return expand_word(word, env, escape)
    except ExpansionError as exc:
        if exc.location is None:
            exc.location = location
        raise


def mount_source(raw: str) -> str | None:
    """The ``from=`` value of a raw ``--mount`` option, if any."""
    for part in raw.split(","):
        key, _, value = part.partition("=")
        if key.strip().lower() == "from":
            return value.strip()
    return None


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
    skip_unused: bool = True,
) -> BuildPlan:
    """Resolve stages, ``--from`` references and the target; check for unknown stages and
    cycles. With ``skip_unused`` false every stage up to the target is built, as with
    Buildah's ``--skip-unused-stages=false``."""
    if not containerfile.stages:
        raise PlanError(f"planning {containerfile.path}: no FROM instruction")
    escape = containerfile.escape
    scope = ArgScope(build_args)
    global_values: dict[str, str] = dict(platform_values)
    for meta in containerfile.meta_args:
        for arg in meta.args:
            default = (
                None if arg.default is None
                else expand(arg.default, global_values, escape, meta.location)
            )
            scope.declare(arg.name, default, {})
            if arg.name in scope.values:
                global_values[arg.name] = scope.values[arg.name]
            else:
                global_values.pop(arg.name, None)

    plans: list[StagePlan] = []
    for stage in containerfile.stages:
        base_name = expand(stage.base.image, global_values, escape, stage.base.location)
        plan = StagePlan(stage, _resolve_base(containerfile, base_name, stage))
        if plan.base.stage is not None:
            plan.deps.add(plan.base.stage)
        _scan_stage(containerfile, plan, scope, global_values, image_exists)
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
    return BuildPlan(containerfile, [plans[i] for i in order], global_values, scope)


def _resolve_base(containerfile: Containerfile, name: str, stage: Stage) -> StageRef:
    lowered = name.lower()
    for earlier in containerfile.stages[: stage.index]:
        if earlier.name is not None and earlier.name.lower() == lowered:
            return StageRef(stage=earlier.index)
    if not name:
        raise PlanError("FROM: base name is empty after expansion", stage.base.location)
    return StageRef(image=name)


def _scan_stage(
    containerfile: Containerfile,
    plan: StagePlan,
    scope: ArgScope,
    global_values: Mapping[str, str],
    image_exists: Callable[[str], bool],
) -> None:
    """Walk a stage with its ARG/ENV values to resolve every ``--from`` it uses."""
    escape = containerfile.escape
    stage_scope = scope.child()
    env: dict[str, str] = {}
    for position, instruction in enumerate(plan.stage.instructions):
        values = {**stage_scope.values, **env}
        if isinstance(instruction, ArgInstruction):
            for arg in instruction.args:
                default = (
                    None if arg.default is None
                    else expand(arg.default, values, escape, instruction.location)
                )
                stage_scope.declare(arg.name, default, global_values)
        elif isinstance(instruction, EnvInstruction):
            for name, word in instruction.pairs:
                env[name] = expand(word, {**stage_scope.values, **env}, escape,
                                   instruction.location)
        source = _source_of(instruction, values, escape)
        if source is None:
            continue
        ref = _resolve_source(containerfile, plan, source, instruction, image_exists)
        plan.sources[position] = ref
        if ref.stage is not None:
            plan.deps.add(ref.stage)


def _source_of(instruction: Instruction, values: Mapping[str, str], escape: str) -> str | None:
    if isinstance(instruction, CopyInstruction) and instruction.from_:
        return expand(instruction.from_, values, escape, instruction.location)
    if isinstance(instruction, RunInstruction):
        for raw in instruction.mounts:
            value = mount_source(raw)
            if value:
                return expand(value, values, escape, instruction.location)
    return None


def _resolve_source(
    containerfile: Containerfile,
    plan: StagePlan,
    value: str,
    instruction: Instruction,
    image_exists: Callable[[str], bool],
) -> StageRef:
    keyword = instruction.keyword
    if not value:
        raise PlanError(f"{keyword} --from: empty value after expansion", instruction.location)
    index = _stage_index(containerfile, value, plan.index, instruction.location, keyword)
    if index is not None:
        if index == plan.index:
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
