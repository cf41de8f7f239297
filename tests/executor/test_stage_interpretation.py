"""The stage interpreter driven with a recording fake of its effects: no namespaces, no
store. What each step asks the effects to do, with which words expanded and which
``--from`` resolved, and what a second build with the same cache asks for (nothing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from builder.cache.index import CacheEntry
from builder.cache.statcache import StatCache
from builder.executor.copier import CopyRequest, SourceTree
from builder.executor.effects import RunStep, StageResult
from builder.executor.output import Progress
from builder.executor.stage import StageExecutor, StageOptions, StepContext
from builder.image.layer import Layer
from builder.image.spec import ContainerConfig, ImageConfig
from builder.instructions.model import FromInstruction
from builder.instructions.parse import parse_containerfile
from builder.plan.args import platform_args
from builder.plan.graph import BuildPlan, StageRef, make_plan
from builder.platform import Platform


@dataclass
class Recording:
    """Effects that record what they were asked; each commit after a change makes a
    made-up layer."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    changed: bool = False
    made: set[str] = field(default_factory=set)

    def copy(self, stage: StageResult, request: CopyRequest, source: StageRef | None,
             chown: str | None, add: bool) -> None:
        self.calls.append(("copy", (request.sources, request.dest, source, chown, add)))
        self.changed = True

    def run(self, stage: StageResult, step: RunStep) -> int:
        self.calls.append(("run", step))
        self.changed = True
        return 0

    def ensure_dir(self, stage: StageResult, path: str, user: str) -> bool:
        self.calls.append(("ensure_dir", (path, user)))
        made = path.startswith("/new") and path not in self.made
        self.made.add(path)
        self.changed = self.changed or made
        return made

    def commit(self, stage: StageResult) -> Layer | None:
        if not self.changed:
            return None
        self.changed = False
        number = len(self.calls)
        return Layer(f"sha256:{number:064x}", f"sha256:{number + 1000:064x}", 10,
                     "application/vnd.oci.image.layer.v1.tar+gzip")


@dataclass
class DictCache:
    entries: dict[str, CacheEntry] = field(default_factory=dict)
    enabled: bool = True

    def lookup(self, key: str) -> CacheEntry | None:
        return self.entries.get(key)

    def record(self, key: str, entry: CacheEntry) -> None:
        self.entries[key] = entry

    def share(self, key: str) -> None:
        pass


@dataclass
class Inputs:
    context: Path
    results: dict[int, StageResult] = field(default_factory=dict)

    def context_tree(self) -> SourceTree:
        return SourceTree(self.context)

    def stat_cache(self) -> StatCache:
        return StatCache(self.context.parent / "store", self.context)

    def stage(self, index: int) -> StageResult:
        return self.results[index]

    def register(self, result: StageResult) -> None:
        self.results[result.plan.index] = result

    def base_image(self, name: str, base: FromInstruction | None
                   ) -> tuple[ImageConfig, list[Layer]]:
        return ImageConfig("amd64", "linux", config=ContainerConfig(env=["PATH=/bin"])), []

    def image_digest(self, name: str) -> str:
        return f"digest-of-{name}"


OPTIONS = StageOptions(format="oci", layer_format="oci", compression="gzip", timestamp=0,
                       created="1970-01-01T00:00:00Z", isolation=None, driver=None)


def interpret(text: str, context: Path, cache: DictCache) -> tuple[Recording, Inputs]:
    """Run every planned stage of ``text`` through the interpreter with fakes."""
    plan: BuildPlan = make_plan(parse_containerfile(text), {"V": "from-arg"},
                                platform_args(Platform("linux", "amd64")))
    effects, inputs = Recording(), Inputs(context)
    context_ = StepContext(plan, OPTIONS, Progress(quiet=True), cache, inputs, effects,
                           store=None)  # type: ignore[arg-type]
    for position, stage_plan in enumerate(plan.stages, 1):
        StageExecutor(context_, stage_plan, position).run()
    return effects, inputs


@pytest.fixture
def context(tmp_path: Path) -> Path:
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "app.py").write_text("print('hi')\n")
    return tmp_path / "ctx"


def test_steps_ask_the_effects_with_words_expanded(context: Path) -> None:
    text = ("FROM base\nARG V\nENV HOME=/home/app D=/new/app\nWORKDIR $D\n"
            "COPY --chown=1:2 app.py ./\nUSER 1000\n"
            "RUN --mount=type=cache,target=$HOME/.cache echo $V\n")
    effects, inputs = interpret(text, context, DictCache())
    kinds = [kind for kind, _ in effects.calls]
    assert kinds == ["ensure_dir", "copy", "ensure_dir", "run"]
    assert effects.calls[0][1] == ("/new/app", "")
    assert effects.calls[1][1] == (("app.py",), "/new/app/./", None, "1:2", False)
    step = effects.calls[3][1]
    assert step.argv == ["/bin/sh", "-c", "echo $V"]  # the shell expands RUN's words
    assert "V=from-arg" in step.env and "HOME=/home/app" in step.env
    assert (step.cwd, step.user, step.settings.network) == ("/new/app", "1000", "private")
    assert [(m.type, m.target) for m, _ in step.mounts] == [("cache", "/home/app/.cache")]
    result = inputs.results[0]
    assert len(result.layers) == 3  # WORKDIR made its directory; COPY; RUN
    assert [h.empty_layer for h in result.config.history] == [
        True, True, False, False, True, False]


def test_a_second_build_with_the_same_cache_asks_for_nothing(context: Path) -> None:
    text = "FROM base\nWORKDIR /new\nCOPY app.py /app.py\nRUN make\n"
    cache = DictCache()
    first, _ = interpret(text, context, cache)
    assert len(first.calls) == 4
    again, inputs = interpret(text, context, cache)
    assert again.calls == []
    assert len(inputs.results[0].layers) == 3
    (context / "app.py").write_text("changed\n")
    changed, _ = interpret(text, context, cache)
    assert [kind for kind, _ in changed.calls] == ["copy", "ensure_dir", "run"]


def test_every_mount_from_reaches_the_run_resolved(context: Path) -> None:
    text = ("FROM base AS a\nRUN echo A > /a.txt\nFROM base AS b\nRUN echo B > /b.txt\n"
            "FROM base\nRUN --mount=type=bind,from=a,target=/ma "
            "--mount=type=bind,from=b,target=/mb cat /ma/a.txt /mb/b.txt\n")
    effects, _ = interpret(text, context, DictCache())
    runs = [step for kind, step in effects.calls if kind == "run"]
    assert [ref for _, ref in runs[-1].mounts] == [StageRef(stage=0), StageRef(stage=1)]


def test_copy_from_a_variable_set_by_env_uses_the_values_before_the_instruction(
        context: Path) -> None:
    text = ("FROM base AS a\nRUN true\nFROM base AS x\nRUN true\nFROM base\nENV S=a\n"
            "ENV S=x T=$S\nCOPY --from=$T /f /f\n")
    effects, inputs = interpret(text, context, DictCache())
    copies = [args for kind, args in effects.calls if kind == "copy"]
    assert copies == [(("/f",), "/f", StageRef(stage=0), None, False)]
    assert "T=a" in (inputs.results[2].config.config.env or [])
