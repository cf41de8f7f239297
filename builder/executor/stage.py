"""One stage of a build: for each instruction, expand, carry it out, record a layer or not.

``StageExecutor`` interprets: it expands each step with that step's values,
edits the config (``executor.config``'s table), computes the step's cache key
(``builder.cache.keys``) and, when the cache does not have the step, asks an
``Effects`` (``executor.effects``) to change the root file system. It sees the
build around it only through a ``StepContext``: the plan, options, progress,
the step cache and the inputs keys are made of; every ``--from`` arrives
resolved by the plan.

Steps that change the file system (RUN, COPY, ADD, WORKDIR creating its
directory) become one layer each when they changed something; every other
step is an empty-layer history entry. A step found in the cache is not run:
its layer is stacked onto the stage and its history entry reused. The stage's
root is only assembled when a step has to run, so a fully cached stage mounts
nothing.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import posixpath
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from builder import replay
from builder.cache.index import CacheEntry, claim
from builder.cache.keys import paths_digest, step_key
from builder.cache.statcache import StatCache
from builder.context import context_path
from builder.errors import ContainerfileError, PybuildError, StepError
from builder.executor import config as cfg
from builder.executor.confinement import settings_key
from builder.executor.copier import CopyRequest, SourceTree, check_chmod, source_paths
from builder.executor.effects import Effects, RunStep, StageResult
from builder.executor.gitsource import split_git_sources
from builder.executor.network import step_settings
from builder.executor.output import Progress
from builder.image.layer import Layer
from builder.image.spec import History, ImageConfig
from builder.instructions import model as m
from builder.instructions.parse import parse_containerfile
from builder.plan.args import ArgScope, declare_args, expand
from builder.plan.graph import BuildPlan, StagePlan, StageRef
from builder.rootfs.layercache import StoreLike
from builder.runsettings import RunSettings

__all__ = ["StageExecutor", "StageInputs", "StageOptions", "StageResult", "StepCache",
           "StepContext"]


@dataclass(frozen=True)
class StageOptions:
    """The options of a build that decide what its steps make."""

    format: str  # image format: oci or docker
    layer_format: str  # layer media types: oci or docker
    compression: str
    timestamp: int | None
    created: str  # the history entries' time
    isolation: str | None
    driver: str | None
    run_settings: RunSettings = RunSettings()  # network, DNS, hosts, proxies of RUN steps
    proxy_args: tuple[tuple[str, str], ...] = ()  # proxy build args: RUN's env, no ARG line
    stdin: bool = False  # RUN steps read pybuild's stdin (--stdin)


class StepCache(Protocol):
    """The step cache as a stage sees it."""

    @property
    def enabled(self) -> bool: ...

    def lookup(self, key: str) -> CacheEntry | None: ...
    def record(self, key: str, entry: CacheEntry) -> None: ...
    def share(self, key: str) -> None: ...


class StageInputs(Protocol):
    """What a stage starts from and what its cache keys are made of."""

    @property
    def context(self) -> Path: ...

    def context_tree(self) -> SourceTree: ...
    def stat_cache(self) -> StatCache: ...
    def stage(self, index: int) -> StageResult: ...
    def register(self, result: StageResult) -> None: ...
    def base_image(self, name: str, base: m.FromInstruction | None
                   ) -> tuple[ImageConfig, list[Layer]]: ...
    def image_digest(self, name: str) -> str: ...
    def git_commits(self, urls: tuple[str, ...], keep_git_dir: bool,
                    checksum: str | None) -> list[str]: ...


@dataclass(frozen=True)
class StepContext:
    """What interpreting a stage needs from the build around it."""

    plan: BuildPlan
    options: StageOptions
    progress: Progress
    cache: StepCache
    inputs: StageInputs
    effects: Effects
    store: StoreLike


class StageExecutor:
    """Interprets the instructions of one stage; an ``Effects`` does what they do."""

    def __init__(self, context: StepContext, plan: StagePlan, position: int) -> None:
        self.ctx = context
        self.plan = plan
        self.position = position
        self.escape = context.plan.containerfile.escape
        self.scope: ArgScope = context.plan.scope.child()
        self.state: cfg.ConfigState
        self.pending_volumes: list[str] = []  # VOLUMEs after the last file system change
        self.preserved: list[str] = []  # VOLUMEs whose contents RUN steps do not change
        self.result: StageResult

    # expansion

    def values(self) -> dict[str, str]:
        """The step's environment for expansion: ARGs in scope, then ENV over them."""
        return {**self.scope.values, **self.state.env_map()}

    def expand(self, word: str, ins: m.Instruction) -> str:
        return expand(word, self.values(), self.escape, ins.location)

    def config_step(self, ins: m.Instruction) -> cfg.ConfigStep:
        return cfg.ConfigStep(self.state, self.values(), self.escape, self.ctx.options.format,
                              ins.location)

    # the stage

    def run(self) -> StageResult:
        stage = self.plan.stage
        steps = 1 + len(stage.instructions)
        progress = self.ctx.progress
        progress.step(self.position, 1, steps, stage.base.original)
        self.result = self._open_base(self.plan.base, stage.base)
        self.state = cfg.ConfigState(self.result.config.config, self.result.config.author)
        triggers = list(self.result.config.config.on_build or [])
        if triggers:
            self.result.config.config.on_build = None
            for text in triggers:
                for trigger in _parse_trigger(text, stage.base):
                    self.step(trigger, None)
        for number, instruction in enumerate(stage.instructions, 2):
            progress.step(self.position, number, steps, instruction.original)
            self.step(instruction, number - 2)
        self.make_volumes()
        self.result.config.author = self.state.author
        return self.result

    def _open_base(self, ref: StageRef, base: m.FromInstruction) -> StageResult:
        inputs = self.ctx.inputs
        if ref.stage is not None:
            parent = inputs.stage(ref.stage)
            config = copy.deepcopy(parent.config)
            layers = list(parent.layers)
            key = parent.key
        else:
            assert ref.image is not None
            config, layers = inputs.base_image(ref.image, base)
            key = step_key("FROM", inputs.image_digest(ref.image), config.diff_ids)
        result = StageResult(self.plan, self.ctx.store, self.ctx.options.driver, config,
                             layers, key)
        inputs.register(result)  # closed by the build, even on failure
        return result

    def make_volumes(self) -> None:
        """Create the directories of VOLUMEs declared after the last step that changed
        the file system, in one last layer; Buildah keeps only those."""
        if not self.pending_volumes:
            return
        volume_steps = [h for h in self.result.config.history if "VOLUME" in (h.created_by or "")]
        key = self.fs_key("VOLUMES", sorted(self.pending_volumes))
        with self.claim(key):
            entry = self.lookup(key)
            if entry is None:
                made = False
                for path in self.pending_volumes:
                    made = self.ctx.effects.ensure_dir(
                        self.result, posixpath.join("/", path), "") or made
                layer = self.commit() if made else None
                entry = self.remember(key, volume_steps[-1], layer)
            elif entry.layer is not None:
                self.stack(entry)
        self.key = key
        if entry.layer is not None:
            volume_steps[-1].empty_layer = False

    # the cache

    @property
    def key(self) -> str:
        return self.result.key

    @key.setter
    def key(self, value: str) -> None:
        self.result.key = value

    def fs_key(self, *parts: Any) -> str:
        """The key of a step that may change the file system: the parent, the top
        layer, what decides the layer's bytes, then ``parts``."""
        options = self.ctx.options
        return step_key(self.key, self.result.config.diff_ids[-1:],
                        [options.timestamp, options.compression, options.layer_format],
                        *parts)

    def claim(self, key: str) -> AbstractContextManager[None]:
        return claim(key) if self.ctx.cache.enabled else contextlib.nullcontext()

    def lookup(self, key: str) -> CacheEntry | None:
        """The cached result of step ``key`` (locally or in a --cache-from registry)."""
        entry = self.ctx.cache.lookup(key)
        if entry is not None:
            self.ctx.progress.using_cache(key, hit=True)
        return entry

    def stack(self, entry: CacheEntry) -> None:
        """Put a cached step's layer on top of the stage."""
        assert entry.layer is not None
        self.result.drop_workspace()
        self.result.layers.append(entry.layer)
        self.result.config.diff_ids.append(entry.layer.diff_id)

    def remember(self, key: str, history: History, layer: Layer | None) -> CacheEntry:
        """Record a step that ran under ``key``."""
        entry = CacheEntry(history, layer, time.time())
        self.ctx.cache.record(key, entry)
        self.ctx.progress.using_cache(key, hit=False)
        return entry

    def commit(self) -> Layer | None:
        """The changes of the step that ran, as the stage's next layer."""
        layer = self.ctx.effects.commit(self.result)
        if layer is not None:
            self.result.layers.append(layer)
            self.result.config.diff_ids.append(layer.diff_id)
        return layer

    # steps

    def step(self, instruction: m.Instruction, position: int | None) -> None:
        """Carry out one instruction; errors get the instruction's location."""
        try:
            if type(instruction) in _FS_STEPS or self.volume_before_run(instruction, position):
                self.fs_step(instruction, position)
            else:
                self.config_step_cached(instruction)
        except ContainerfileError as exc:
            if exc.location is None:
                exc.location = instruction.location
            raise
        except PybuildError as exc:
            raise StepError(
                f'building at STEP "{instruction.original}": {exc}', instruction.location,
                hint=exc.hint,
            ) from exc
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise StepError(f'building at STEP "{instruction.original}": '
                            f"{where}{exc.strerror or exc}", instruction.location) from exc
        for warning in self.state.warnings:
            self.ctx.progress.warn(warning)
        self.state.warnings.clear()

    def config_step_cached(self, ins: m.Instruction) -> None:
        """A step that only changes the config (or the ARGs in scope)."""
        if isinstance(ins, m.ArgInstruction):
            declare_args(ins, self.scope, self.state.env_map(), self.ctx.plan.global_args,
                         self.escape)
        else:
            cfg.RUNNERS[type(ins)](ins, self.config_step(ins))
            self.pending_volumes.extend(self.state.volumes)
            self.state.volumes.clear()
        key = step_key(self.key, ins.original, sorted(self.scope.values.items()),
                       self.state.config.to_json(self.ctx.options.format))
        entry = self.lookup(key)
        if entry is None:
            history = History(created=self.ctx.options.created, created_by=cfg.history_text(ins),
                              empty_layer=True)
            entry = self.remember(key, history, None)
        self.result.config.history.append(copy.copy(entry.history))
        self.key = key

    def fs_step(self, ins: m.Instruction, position: int | None) -> None:
        """A step that may change the file system: looked up in the cache under its key
        (the inputs it reads), run and recorded when it is not there."""
        prepare = _FS_STEPS.get(type(ins), StageExecutor.prepare_volume)
        key, carry_out = prepare(self, ins, position)
        with self.claim(key):
            entry = self.lookup(key)
            if entry is None:
                changed = carry_out()
                layer = self.commit() if changed else None
                history = History(created=self.ctx.options.created,
                                  created_by=cfg.history_text(ins), empty_layer=layer is None)
                self.result.config.history.append(history)
                entry = self.remember(key, history, layer)
            else:
                if entry.layer is not None:
                    self.stack(entry)
                self.result.config.history.append(copy.copy(entry.history))
        if entry.layer is not None or not isinstance(ins, (m.WorkdirInstruction,
                                                           m.VolumeInstruction)):
            self.pending_volumes.clear()
        self.ctx.cache.share(key)
        self.key = key

    # WORKDIR

    def prepare_workdir(self, ins: m.Instruction, position: int | None
                        ) -> tuple[str, Callable[[], bool]]:
        assert isinstance(ins, m.WorkdirInstruction)
        cfg.run_workdir(ins, self.config_step(ins))
        path = self.state.config.working_dir
        user = self.state.config.user or ""
        key = self.fs_key(ins.original, path, self.state.config.user)
        return key, lambda: self.ctx.effects.ensure_dir(self.result, path, user)

    # VOLUME

    def volume_before_run(self, ins: m.Instruction, position: int | None) -> bool:
        """Whether ``ins`` is a VOLUME with a RUN after it in the stage: Buildah 1.28 then
        creates its directories at once and keeps every later RUN's changes out of them
        (a VOLUME with no RUN after it creates its directories only when no step after
        it changes the file system, see ``make_volumes``)."""
        if not isinstance(ins, m.VolumeInstruction) or position is None:
            return False
        return any(isinstance(later, m.RunInstruction)
                   for later in self.plan.stage.instructions[position + 1:])

    def prepare_volume(self, ins: m.Instruction, position: int | None
                       ) -> tuple[str, Callable[[], bool]]:
        assert isinstance(ins, m.VolumeInstruction)
        cfg.run_volume(ins, self.config_step(ins))
        paths = [posixpath.join("/", path) for path in self.state.volumes]
        self.state.volumes.clear()
        self.preserved.extend(paths)
        key = self.fs_key("VOLUME", ins.original, paths,
                          self.state.config.to_json(self.ctx.options.format))

        def carry_out() -> bool:
            made = False
            for path in paths:  # owned by root whatever USER says, as in Buildah
                made = self.ctx.effects.ensure_dir(self.result, path, "") or made
            return made

        return key, carry_out

    # COPY / ADD

    def copy_request(self, ins: m.CopyInstruction) -> tuple[CopyRequest, str | None]:
        """The step with every word expanded (no owner yet) and its --chown text."""
        heredoc_names = {f"<<{h.name}": h for h in ins.heredocs}
        heredoc_names.update({f"<<-{h.name}": h for h in ins.heredocs})
        sources: list[str] = []
        heredocs: dict[str, bytes] = {}
        for raw in ins.sources:
            doc = heredoc_names.get(raw)
            if doc is not None:
                body = self.expand(doc.body, ins) if doc.expand else doc.body
                heredocs[doc.name] = body.encode()
                sources.append(doc.name)
            else:
                sources.append(self.expand(raw, ins))
        raw_dest = self.expand(ins.dest, ins)
        workdir = self.state.config.working_dir or "/"
        dest = raw_dest if raw_dest.startswith("/") else posixpath.join(workdir, raw_dest)
        dest_is_dir = raw_dest.endswith(("/", "/.")) or raw_dest in (".", "./")
        chown = self.expand(ins.chown, ins) if ins.chown else None
        chmod = self.expand(ins.chmod, ins) if ins.chmod else None
        if chmod:
            check_chmod(chmod)
        checksum = None
        keep_git_dir = isinstance(ins, m.AddInstruction) and ins.keep_git_dir
        if isinstance(ins, m.AddInstruction) and ins.checksum:
            checksum = self.expand(ins.checksum, ins)
        request = CopyRequest(
            keyword=ins.keyword, sources=tuple(sources), dest=dest, dest_is_dir=dest_is_dir,
            chmod=chmod, parents=ins.parents,
            excludes=tuple(self.expand(x, ins) for x in ins.excludes), heredocs=heredocs,
            checksum=checksum, timestamp=self.ctx.options.timestamp, keep_git_dir=keep_git_dir,
        )
        return request, chown

    def copy_source(self, ins: m.CopyInstruction, position: int | None) -> StageRef | None:
        """What ``--from`` names (None: the context), resolved by the plan; an ONBUILD
        trigger's is resolved now, by the plan's rule."""
        if position is not None:
            return self.plan.sources.get(position)
        if not ins.from_:
            return None
        value = self.expand(ins.from_, ins)
        return self.ctx.plan.resolve(value, self.plan.index, ins)

    def prepare_copy(self, ins: m.Instruction, position: int | None
                     ) -> tuple[str, Callable[[], bool]]:
        """The key of a COPY/ADD: its expanded words and the content it reads."""
        assert isinstance(ins, m.CopyInstruction)
        request, chown = self.copy_request(ins)
        source = self.copy_source(ins, position)
        rest, urls = split_git_sources(request) if isinstance(ins, m.AddInstruction) \
            else (request, ())
        content: str | list[str]
        if source is not None:  # Buildah and BuildKit keep a stage's or image's owners
            request = dataclasses.replace(request, preserve_owner=not chown)
            content = self.ref_identity(source)
        elif urls:  # ADD <git URL>: the commits (builder.executor.gitsource)
            content = self.ctx.inputs.git_commits(urls, request.keep_git_dir,
                                                  request.checksum)
            if rest.sources:
                content.append(self.context_digest(rest))
        else:
            content = self.context_digest(request)
        if isinstance(ins, m.AddInstruction) and not request.checksum and any(
                s.lower().startswith(("http://", "https://")) for s in rest.sources):
            content = uuid.uuid4().hex  # a download without a checksum always runs
            replay.cancel("download")
        key = self.fs_key(ins.keyword, dataclasses.asdict(request), chown, content)
        add = isinstance(ins, m.AddInstruction)

        def carry_out() -> bool:
            self.ctx.effects.copy(self.result, request, source, chown, add)
            return True

        return key, carry_out

    def context_digest(self, request: CopyRequest) -> str:
        """Digest of the context files a COPY/ADD reads (after the ignore file)."""
        tree = self.ctx.inputs.context_tree()
        rels = source_paths(tree, request)
        visible = tree.visible if tree.included is not None else None
        return paths_digest(os.fspath(tree.root), rels, visible=visible,
                            stats=self.ctx.inputs.stat_cache())

    def ref_identity(self, ref: StageRef) -> str:
        """What a resolved ``--from`` names: a stage's layers or an image's digest."""
        if ref.stage is not None:
            return self.ctx.inputs.stage(ref.stage).identity()
        if ref.directory is not None:  # a --build-context directory: its content
            return paths_digest(os.fspath(ref.directory), [""])
        assert ref.image is not None
        return self.ctx.inputs.image_digest(ref.image)

    # RUN

    def run_step(self, ins: m.RunInstruction, position: int | None) -> RunStep:
        """The RUN with its words expanded and its mounts' sources resolved."""
        state = self.state
        options = self.ctx.options
        mounts = [mount.expanded(lambda word: self.expand(word, ins)) for mount in ins.mounts]
        planned = self.plan.mounts.get(position, ()) if position is not None else ()
        sources = [planned[index] if index < len(planned) else None if not mount.from_
                   else self.ctx.plan.resolve(self.expand(mount.from_, ins), self.plan.index,
                                              ins)
                   for index, mount in enumerate(mounts)]
        # proxy build args reach the step without an ARG line, and stay out of its key
        env = {**dict(options.proxy_args), **self.scope.values, **state.env_map()}
        return RunStep(
            argv=_run_argv(ins, state.shell), env=[f"{k}={v}" for k, v in env.items()],
            cwd=state.config.working_dir or "/", user=state.config.user or "",
            hostname="pybuild", settings=step_settings(ins.network, options.run_settings),
            isolation=options.isolation or "chroot", mounts=tuple(zip(mounts, sources)),
            preserve=tuple(self.preserved), stdin=options.stdin)

    def prepare_run(self, ins: m.Instruction, position: int | None
                    ) -> tuple[str, Callable[[], bool]]:
        """The key of a RUN: its command, environment, user, network and what its other
        settings decide (``confinement.settings_key``), heredocs and mounts, and the
        content of what it binds from the context or other stages."""
        assert isinstance(ins, m.RunInstruction)
        step = self.run_step(ins, position)
        used: list[str] = []
        for mount, ref in step.mounts:
            if mount.type != "bind":
                continue  # caches and tmpfs start as they are; a secret counts by its id
            if ref is not None:
                used.append(self.ref_identity(ref))
            else:
                # what the step will see: the source as mounted, without ignored paths
                tree = self.ctx.inputs.context_tree()
                rel = context_path(mount.source or ".")
                used.append(paths_digest(os.fspath(tree.root), [rel], visible=tree.hides,
                                         stats=self.ctx.inputs.stat_cache()))
        key = self.fs_key(
            "RUN", ins.original, step.argv, sorted({**self.scope.values,
                                                   **self.state.env_map()}.items()),
            step.cwd, step.user, settings_key(step.settings), self.ctx.options.isolation,
            step.preserve,
            [h.body for h in ins.heredocs], [dataclasses.asdict(mount) for mount, _ in step.mounts],
            used,
        )

        def carry_out() -> bool:
            self.ctx.effects.ensure_dir(self.result, step.cwd, step.user)
            status = self.ctx.effects.run(self.result, step)
            if status != 0:
                raise StepError(
                    f'error building at STEP "{ins.original}": exit status {status}',
                    ins.location, status=status,
                )
            return True

        return key, carry_out


# The steps that may change the file system, each with one signature: the step's cache
# key and what carrying it out does (True: the file system may have changed).
_Prepare = Callable[[StageExecutor, m.Instruction, int | None], tuple[str, Callable[[], bool]]]
_FS_STEPS: dict[type[m.Instruction], _Prepare] = {
    m.CopyInstruction: StageExecutor.prepare_copy,
    m.AddInstruction: StageExecutor.prepare_copy,
    m.RunInstruction: StageExecutor.prepare_run,
    m.WorkdirInstruction: StageExecutor.prepare_workdir,
}


def _run_argv(ins: m.RunInstruction, shell: list[str]) -> list[str]:
    """RUN's argv. A RUN that is only a heredoc runs its body as the script; otherwise
    the shell gets the command line followed by each heredoc and its delimiter, so
    ``RUN cat <<EOF > f`` and ``RUN <<EOF sh -e`` behave as in a shell script."""
    if not (ins.heredocs and ins.command.prepend_shell):
        return cfg.command_argv(ins.command, shell)
    command = ins.command.args[0].strip()
    first = ins.heredocs[0]
    if len(ins.heredocs) == 1 and command in (
        f"<<{first.name}", f"<<-{first.name}", f"<<'{first.name}'", f'<<"{first.name}"',
        f"<<-'{first.name}'", f'<<-"{first.name}"',
    ):
        return [*shell, _heredoc_body(first)]
    script = [command, "\n"]
    for heredoc in ins.heredocs:
        body = heredoc.body
        if body and not body.endswith("\n"):
            body += "\n"
        script += [body, heredoc.name, "\n"]
    return [*shell, "".join(script)]


def _heredoc_body(heredoc: m.Heredoc) -> str:
    if not heredoc.chomp:
        return heredoc.body
    return "".join(line.lstrip("\t") for line in heredoc.body.splitlines(keepends=True))


def _parse_trigger(text: str, base: m.FromInstruction) -> tuple[m.Instruction, ...]:
    """An ONBUILD trigger from a base image's config, parsed as an instruction."""
    parsed = parse_containerfile(f"FROM scratch\n{text}\n", base.location.file)
    return parsed.stages[0].instructions
