"""One stage of a build: for each instruction, expand, carry it out, record a layer or not.

Steps that change the file system (RUN, COPY, ADD, WORKDIR creating its
directory) become one layer each when they changed something; every other
step is an empty-layer history entry.
"""

from __future__ import annotations

import copy
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from builder.errors import ContainerfileError, PybuildError, StepError
from builder.executor import config as cfg
from builder.executor.copier import (
    CopyRequest,
    SourceTree,
    check_chmod,
    copy_into,
    download,
    lookup_owner,
)
from builder.image.spec import Descriptor, History, ImageConfig
from builder.instructions import model as m
from builder.plan.args import ArgScope
from builder.plan.graph import StagePlan, StageRef
from builder.source import Location

if TYPE_CHECKING:
    from builder.executor.build import BuildState
    from builder.image.layer import LayerEntry, LayerResult
    from builder.rootfs.workspace import Workspace

@dataclass
class StageResult:
    """A built stage: its root (kept open for COPY --from), config and layers."""

    plan: StagePlan
    workspace: Workspace
    config: ImageConfig
    layers: list[LayerResult | Descriptor] = field(default_factory=list)  # bottom first

    @property
    def root(self) -> Path:
        return self.workspace.root

    def layer_triples(self) -> list[tuple[str, str, str]]:
        return [(x.digest, diff_id, x.media_type)
                for x, diff_id in zip(self.layers, self.config.diff_ids)]


class StageExecutor:
    """Runs the instructions of one stage against a Workspace."""

    def __init__(self, build: BuildState, plan: StagePlan, position: int) -> None:
        self.build = build
        self.plan = plan
        self.position = position
        self.escape = build.containerfile.escape
        self.scope: ArgScope = build.plan.scope.child()
        self.state: cfg.ConfigState
        self.pending_volumes: list[str] = []  # VOLUMEs after the last file system change
        self.result: StageResult

    # expansion

    def values(self) -> dict[str, str]:
        """The step's environment for expansion: ARGs in scope, then ENV over them."""
        return {**self.scope.values, **self.state.env_map()}

    def expand(self, word: str, location: Location) -> str:
        from builder.plan.graph import expand

        return expand(word, self.values(), self.escape, location)

    def expand_words(self, word: str, location: Location) -> list[str]:
        from builder.errors import ExpansionError
        from builder.syntax.shell import expand_words

        try:
            return expand_words(word, self.values(), self.escape)
        except ExpansionError as exc:
            exc.location = exc.location or location
            raise

    # the stage

    def run(self) -> StageResult:
        stage = self.plan.stage
        steps = 1 + len(stage.instructions)
        progress = self.build.progress
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

    def make_volumes(self) -> None:
        """Create the directories of VOLUMEs declared after the last step that changed
        the file system, in one last layer; Buildah keeps only those."""
        made = False
        for path in self.pending_volumes:
            made = self.ensure_dir(posixpath.join("/", path), as_user=False) or made
        if not made:
            return
        self.add_layer(self.result.workspace.changes())
        volume_steps = [h for h in self.result.config.history if "VOLUME" in (h.created_by or "")]
        volume_steps[-1].empty_layer = False

    def _open_base(self, ref: StageRef, base: m.FromInstruction) -> StageResult:
        from builder.rootfs.workspace import Workspace

        if ref.stage is not None:
            parent = self.build.results[ref.stage]
            config = copy.deepcopy(parent.config)
            layers = list(parent.layers)
            triples = parent.layer_triples()
        else:
            assert ref.image is not None
            config, layers, triples = self.build.base_image(ref.image, base)
        workspace = Workspace.create(self.build.store, triples, driver=self.build.options.driver)
        result = StageResult(self.plan, workspace, config, layers)
        self.build.results[self.plan.index] = result  # closed by the build, even on failure
        return result

    def step(self, instruction: m.Instruction, position: int | None) -> None:
        """Carry out one instruction; errors get the instruction's location."""
        try:
            changes_fs = self.dispatch(instruction, position)
        except ContainerfileError as exc:
            if exc.location is None:
                exc.location = instruction.location
            raise
        except PybuildError as exc:
            raise StepError(
                f'building at STEP "{instruction.original}": {exc}', instruction.location
            ) from exc
        except OSError as exc:
            raise StepError(
                f'building at STEP "{instruction.original}": '
                f"{exc.filename or ''}: {exc.strerror}".replace(": : ", ": "),
                instruction.location,
            ) from exc
        for warning in self.state.warnings:
            self.build.progress.warn(warning)
        self.state.warnings.clear()
        self.record(instruction, changes_fs)

    def record(self, instruction: m.Instruction, changes_fs: bool) -> None:
        """Write a layer for the step's changes, or an empty-layer history entry."""
        entries = self.result.workspace.changes() if changes_fs else []
        history = History(created=self.build.created, created_by=cfg.history_text(instruction),
                          empty_layer=not entries)
        if entries:
            self.add_layer(entries)
        self.result.config.history.append(history)

    def add_layer(self, entries: list[LayerEntry]) -> None:
        """Write the changes as the stage's next layer and make it the workspace's base."""
        from builder.image.layer import write_layer

        build = self.build
        layer = write_layer(entries, build.store.layout, compression=build.options.compression,
                            timestamp=build.options.timestamp, format=build.layer_format)
        self.result.workspace.commit(layer.diff_id)
        build.new_layer_dirs.add(layer.diff_id)
        self.result.layers.append(layer)
        self.result.config.diff_ids.append(layer.diff_id)

    def dispatch(self, ins: m.Instruction, position: int | None) -> bool:
        """Carry out one instruction; True when it may have changed the file system."""
        state = self.state
        options = self.build.options

        def expand(word: str) -> str:
            return self.expand(word, ins.location)

        if isinstance(ins, m.ArgInstruction):
            for arg in ins.args:
                default = None if arg.default is None else expand(arg.default)
                self.scope.declare(arg.name, default, self.build.plan.global_args)
        elif isinstance(ins, m.EnvInstruction):
            values = [(name, expand(word)) for name, word in ins.pairs]
            for name, value in values:
                cfg.set_env(state.config, name, value)
        elif isinstance(ins, m.LabelInstruction):
            cfg.run_label(ins, state, expand)
        elif isinstance(ins, m.ExposeInstruction):
            cfg.run_expose(ins, state, lambda w: self.expand_words(w, ins.location))
        elif isinstance(ins, m.VolumeInstruction):
            self.pending_volumes.extend(cfg.run_volume(ins, state, expand))
        elif isinstance(ins, m.UserInstruction):
            cfg.run_user(ins, state, expand)
        elif isinstance(ins, m.WorkdirInstruction):
            path = cfg.run_workdir(ins, state, expand)
            made = self.ensure_dir(path)
            if made:
                self.pending_volumes.clear()
            return made
        elif isinstance(ins, m.CmdInstruction):
            cfg.run_cmd(ins, state)
        elif isinstance(ins, m.EntrypointInstruction):
            cfg.run_entrypoint(ins, state)
        elif isinstance(ins, m.ShellInstruction):
            cfg.run_shell(ins, state, options.format)
        elif isinstance(ins, m.StopsignalInstruction):
            cfg.run_stopsignal(ins, state, expand)
        elif isinstance(ins, m.HealthcheckInstruction):
            cfg.run_healthcheck(ins, state, options.format)
        elif isinstance(ins, m.OnbuildInstruction):
            cfg.run_onbuild(ins, state, options.format)
        elif isinstance(ins, m.MaintainerInstruction):
            cfg.run_maintainer(ins, state)
        elif isinstance(ins, m.CopyInstruction):
            self.run_copy(ins, position)
            self.pending_volumes.clear()
            return True
        elif isinstance(ins, m.RunInstruction):
            self.run_run(ins, position)
            self.pending_volumes.clear()
            return True
        else:
            raise StepError(f"{ins.keyword}: not supported here", ins.location)
        return False

    def ensure_dir(self, path: str, *, as_user: bool = True) -> bool:
        """Create a directory inside the root as Buildah does for WORKDIR (owned by the
        USER) and VOLUME (owned by root); True if something was made."""
        from builder.context import resolve_in_root
        from builder.executor.users import resolve_user_in_root

        root = self.result.root
        target = resolve_in_root(root, path)
        missing: list[Path] = []
        while not os.path.lexists(target):
            missing.append(target)
            target = target.parent
        if not missing:
            return False
        user = resolve_user_in_root(root, self.state.config.user if as_user else "")
        for directory in reversed(missing):
            directory.mkdir()
            os.chmod(directory, 0o755)
            os.chown(directory, user.uid, user.gid)
        return True

    # COPY / ADD

    def run_copy(self, ins: m.CopyInstruction, position: int | None) -> None:
        build = self.build
        expand_one = lambda word: self.expand(word, ins.location)  # noqa: E731
        is_add = isinstance(ins, m.AddInstruction)
        heredoc_names = {f"<<{h.name}": h for h in ins.heredocs}
        heredoc_names.update({f"<<-{h.name}": h for h in ins.heredocs})
        sources: list[str] = []
        heredocs: dict[str, bytes] = {}
        for raw in ins.sources:
            doc = heredoc_names.get(raw)
            if doc is not None:
                body = expand_one(doc.body) if doc.expand else doc.body
                heredocs[doc.name] = body.encode()
                sources.append(doc.name)
            else:
                sources.append(expand_one(raw))
        raw_dest = expand_one(ins.dest)
        workdir = self.state.config.working_dir or "/"
        dest = raw_dest if raw_dest.startswith("/") else posixpath.join(workdir, raw_dest)
        dest_is_dir = raw_dest.endswith("/") or raw_dest in (".", "./") or raw_dest.endswith("/.")
        owner = None
        if ins.chown:
            owner = lookup_owner(self.result.root, expand_one(ins.chown))
        chmod = expand_one(ins.chmod) if ins.chmod else None
        if chmod:
            check_chmod(chmod)
        checksum = None
        if isinstance(ins, m.AddInstruction) and ins.checksum:
            checksum = expand_one(ins.checksum)
        request = CopyRequest(
            keyword=ins.keyword, sources=tuple(sources), dest=dest, dest_is_dir=dest_is_dir,
            owner=owner, chmod=chmod, parents=ins.parents,
            excludes=tuple(expand_one(x) for x in ins.excludes), heredocs=heredocs,
            checksum=checksum, timestamp=build.options.timestamp,
        )
        tree = self.source_tree(position)
        copy_into(self.result.root, request, tree, download if is_add else None)

    def source_tree(self, position: int | None) -> SourceTree:
        ref = self.plan.sources.get(position) if position is not None else None
        if ref is None:
            return self.build.context_tree()
        return SourceTree(self.build.root_of(ref))

    # RUN

    def run_run(self, ins: m.RunInstruction, position: int | None) -> None:
        from builder.executor.mounts import parse_run_mount, resolve_mounts
        from builder.executor.sandbox import RunSpec, run_in_sandbox

        build = self.build
        state = self.state
        argv = _run_argv(ins, state.shell)
        env = {**self.scope.values, **state.env_map()}
        workdir = state.config.working_dir or "/"
        self.ensure_dir(workdir)
        mounts = []
        if ins.mounts:
            parsed = [parse_run_mount(self.expand(raw, ins.location)) for raw in ins.mounts]
            mounts = resolve_mounts(
                parsed, context=build.context,
                stage_root=build.root_by_name,
                cache_root=build.store.root / "cache", secrets=build.options.secrets,
            )
        spec = RunSpec(
            argv=argv, env=[f"{k}={v}" for k, v in env.items()], cwd=workdir,
            user=state.config.user or "", hostname="pybuild",
            network=ins.network or build.options.network or "private", mounts=tuple(mounts),
            isolation=build.options.isolation or "chroot",
        )
        status = run_in_sandbox(self.result.root, spec)
        if status != 0:
            raise StepError(
                f'error building at STEP "{ins.original}": exit status {status}',
                ins.location, status=status,
            )


def _run_argv(ins: m.RunInstruction, shell: list[str]) -> list[str]:
    """RUN's argv; a RUN whose command is a heredoc runs the heredoc body as the script."""
    if ins.heredocs and ins.command.prepend_shell:
        first = ins.heredocs[0]
        command = ins.command.args[0].strip()
        if command in (f"<<{first.name}", f"<<-{first.name}", f"<<'{first.name}'",
                       f'<<"{first.name}"'):
            return [*shell, first.body]
    return cfg.command_argv(ins.command, shell)


def _parse_trigger(text: str, base: m.FromInstruction) -> tuple[m.Instruction, ...]:
    """An ONBUILD trigger from a base image's config, parsed as an instruction."""
    from builder.instructions.parse import parse_containerfile

    parsed = parse_containerfile(f"FROM scratch\n{text}\n", base.location.file)
    return parsed.stages[0].instructions

