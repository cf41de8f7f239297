"""One stage of a build: for each instruction, expand, carry it out, record a layer or not.

Steps that change the file system (RUN, COPY, ADD, WORKDIR creating its
directory) become one layer each when they changed something; every other
step is an empty-layer history entry.

With the layer cache on, each step gets a key (``builder.cache.keys``) before
it runs; a step found in the cache is not run: its layer is stacked onto the
stage and its history entry reused. The stage's root is only assembled when a
step has to run, so a fully cached stage mounts nothing.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import posixpath
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.errors import ContainerfileError, PybuildError, StepError
from builder.executor import config as cfg
from builder.executor.copier import (
    CopyRequest,
    SourceTree,
    check_chmod,
    copy_into,
    download,
    lookup_owner,
    planned_entries,
)
from builder.image.spec import Descriptor, History, ImageConfig
from builder.instructions import model as m
from builder.plan.args import ArgScope
from builder.plan.graph import StagePlan, StageRef
from builder.source import Location

if TYPE_CHECKING:
    from builder.cache.index import CacheEntry
    from builder.executor.build import BuildState
    from builder.image.layer import LayerEntry, LayerResult
    from builder.rootfs.workspace import Workspace

_FS_STEPS = (m.CopyInstruction, m.RunInstruction, m.WorkdirInstruction)


@dataclass
class StageResult:
    """A built stage: its config and layers, and its root (assembled on first use,
    kept open for COPY --from)."""

    plan: StagePlan
    store: Any
    driver: str | None
    config: ImageConfig
    layers: list[LayerResult | Descriptor] = field(default_factory=list)  # bottom first
    key: str = ""  # cache key of the last step
    workspace: Workspace | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def root(self) -> Path:
        return self.open().root

    def open(self) -> Workspace:
        """The workspace of the layers so far, assembled if need be."""
        from builder.rootfs.workspace import Workspace

        with self._lock:
            if self.workspace is None:
                self.workspace = Workspace.create(self.store, self.layer_triples(),
                                                  driver=self.driver)
            return self.workspace

    def drop_workspace(self) -> None:
        """Forget the assembled root (the layers changed underneath it)."""
        with self._lock:
            if self.workspace is not None:
                self.workspace.close()
                self.workspace = None

    def identity(self) -> str:
        """What the stage's file system is: its layers."""
        from builder.cache.keys import layers_identity

        return layers_identity(self.config.diff_ids)

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
        self.planned: list[LayerEntry] | None = None  # a COPY's layer, planned by run_copy
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
        if not self.pending_volumes:
            return
        volume_steps = [h for h in self.result.config.history if "VOLUME" in (h.created_by or "")]
        key = self.fs_key("VOLUMES", sorted(self.pending_volumes))
        with self.claim(key):
            entry = self.lookup(key)
            if entry is None:
                made = False
                for path in self.pending_volumes:
                    made = self.ensure_dir(posixpath.join("/", path), as_user=False) or made
                layer = self.add_layer(self.result.open().changes()) if made else None
                entry = self.remember(key, volume_steps[-1], layer)
            elif entry.layer is not None:
                self.stack(entry)
        self.key = key
        if entry.layer is not None:
            volume_steps[-1].empty_layer = False

    def _open_base(self, ref: StageRef, base: m.FromInstruction) -> StageResult:
        from builder.cache.keys import step_key

        if ref.stage is not None:
            parent = self.build.results[ref.stage]
            config = copy.deepcopy(parent.config)
            layers = list(parent.layers)
            key = parent.key
        else:
            assert ref.image is not None
            config, layers, _ = self.build.base_image(ref.image, base)
            key = step_key("FROM", self.build.image_digest(ref.image), config.diff_ids)
        result = StageResult(self.plan, self.build.store, self.build.options.driver, config,
                             layers, key)
        self.build.results[self.plan.index] = result  # closed by the build, even on failure
        return result

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
        from builder.cache.keys import step_key

        options = self.build.options
        return step_key(self.key, self.result.config.diff_ids[-1:],
                        [options.timestamp, options.compression, self.build.layer_format],
                        *parts)

    def claim(self, key: str) -> Any:
        import contextlib

        from builder.cache.index import claim

        return claim(key) if self.build.cache is not None else contextlib.nullcontext()

    def lookup(self, key: str) -> CacheEntry | None:
        """The cached result of step ``key`` (locally or in a --cache-from registry)."""
        entry = self.build.lookup(key)
        if entry is not None:
            self.build.progress.using_cache(key, hit=True)
        return entry

    def stack(self, entry: CacheEntry) -> None:
        """Put a cached step's layer on top of the stage."""
        assert entry.layer is not None and entry.diff_id is not None
        self.result.drop_workspace()
        self.result.layers.append(entry.layer)
        self.result.config.diff_ids.append(entry.diff_id)

    def remember(self, key: str, history: History, layer: LayerResult | None) -> CacheEntry:
        """Record a step that ran under ``key``."""
        import time

        from builder.cache.index import CacheEntry

        descriptor = Descriptor(layer.media_type, layer.digest, layer.size) if layer else None
        entry = CacheEntry(history, descriptor, layer.diff_id if layer else None, time.time())
        self.build.record(key, entry)
        self.build.progress.using_cache(key, hit=False)
        return entry

    def step(self, instruction: m.Instruction, position: int | None) -> None:
        """Carry out one instruction; errors get the instruction's location."""
        try:
            self.cached_step(instruction, position)
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

    def cached_step(self, ins: m.Instruction, position: int | None) -> None:
        """Look the step up in the cache; run and record it when it is not there."""
        from builder.cache.keys import step_key

        if not isinstance(ins, _FS_STEPS):
            self.dispatch(ins, position)
            key = step_key(self.key, ins.original, sorted(self.scope.values.items()),
                           self.state.config.to_json(self.build.options.format))
            entry = self.lookup(key)
            if entry is None:
                history = History(created=self.build.created, created_by=cfg.history_text(ins),
                                  empty_layer=True)
                entry = self.remember(key, history, None)
            self.result.config.history.append(copy.copy(entry.history))
            self.key = key
            return
        if isinstance(ins, m.WorkdirInstruction):
            path = cfg.run_workdir(ins, self.state, lambda w: self.expand(w, ins.location))
            key = self.fs_key(ins.original, path, self.state.config.user)
        else:
            key = self.step_inputs(ins, position)
        with self.claim(key):
            entry = self.lookup(key)
            if entry is None:
                if isinstance(ins, m.WorkdirInstruction):
                    changed = self.ensure_dir(path)
                else:
                    changed = self.dispatch(ins, position)
                entry = self.record(ins, changed, key)
            else:
                if entry.layer is not None:
                    self.stack(entry)
                self.result.config.history.append(copy.copy(entry.history))
        if entry.layer is not None or not isinstance(ins, m.WorkdirInstruction):
            self.pending_volumes.clear()
        self.build.share(key)
        self.key = key

    def record(self, instruction: m.Instruction, changes_fs: bool, key: str) -> CacheEntry:
        """Write a layer for the step's changes, or an empty-layer history entry."""
        planned, self.planned = self.planned, None
        if planned is not None:
            entries = planned
        else:
            entries = self.result.open().changes() if changes_fs else []
        history = History(created=self.build.created, created_by=cfg.history_text(instruction),
                          empty_layer=not entries)
        layer = self.add_layer(entries, planned is None) if entries else None
        self.result.config.history.append(history)
        return self.remember(key, history, layer)

    def add_layer(self, entries: list[LayerEntry], from_workspace: bool = True) -> LayerResult:
        """Write the changes as the stage's next layer and make it the workspace's base
        (entries planned without a workspace leave it to be assembled when needed)."""
        from builder.image.layer import write_layer

        build = self.build
        layer = write_layer(entries, build.store.layout, compression=build.options.compression,
                            timestamp=build.options.timestamp, format=build.layer_format)
        if from_workspace:
            self.result.open().commit(layer.diff_id)
        build.new_layer_dirs.add(layer.diff_id)  # a planned layer's is made on first use
        self.result.layers.append(layer)
        self.result.config.diff_ids.append(layer.diff_id)
        return layer

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

    def copy_request(self, ins: m.CopyInstruction) -> tuple[CopyRequest, str | None]:
        """The step with every word expanded (no owner yet) and its --chown text."""
        def expand_one(word: str) -> str:
            return self.expand(word, ins.location)

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
        dest_is_dir = raw_dest.endswith(("/", "/.")) or raw_dest in (".", "./")
        chown = expand_one(ins.chown) if ins.chown else None
        chmod = expand_one(ins.chmod) if ins.chmod else None
        if chmod:
            check_chmod(chmod)
        checksum = None
        if isinstance(ins, m.AddInstruction) and ins.checksum:
            checksum = expand_one(ins.checksum)
        request = CopyRequest(
            keyword=ins.keyword, sources=tuple(sources), dest=dest, dest_is_dir=dest_is_dir,
            chmod=chmod, parents=ins.parents,
            excludes=tuple(expand_one(x) for x in ins.excludes), heredocs=heredocs,
            checksum=checksum, timestamp=self.build.options.timestamp,
        )
        return request, chown

    def run_copy(self, ins: m.CopyInstruction, position: int | None) -> None:
        """Copy into the root; into a stage with nothing in it yet (``FROM scratch``),
        plan the layer from the sources instead of writing the files."""
        request, chown = self.copy_request(ins)
        tree = self.source_tree(position)
        empty = self.result.workspace is None and not self.result.layers
        if empty and all(part.isdigit() for part in (chown or "0").split(":", 1)):
            if chown:
                request = dataclasses.replace(request, owner=lookup_owner(Path("/"), chown))
            self.planned = planned_entries(request, tree)
            if self.planned is not None:
                return
        if chown:
            request = dataclasses.replace(request, owner=lookup_owner(self.result.root, chown))
        is_add = isinstance(ins, m.AddInstruction)
        copy_into(self.result.root, request, tree, download if is_add else None)

    def source_tree(self, position: int | None) -> SourceTree:
        ref = self.plan.sources.get(position) if position is not None else None
        if ref is None:
            return self.build.context_tree()
        return SourceTree(self.build.root_of(ref))

    def step_inputs(self, ins: m.CopyInstruction | m.RunInstruction, position: int | None) -> str:
        """The cache key of a COPY, ADD or RUN: its expanded inputs and the content it uses."""
        if isinstance(ins, m.CopyInstruction):
            request, chown = self.copy_request(ins)
            ref = self.plan.sources.get(position) if position is not None else None
            if ref is not None:
                content = self.ref_identity(ref)
            else:
                content = self.context_digest(request)
            if isinstance(ins, m.AddInstruction) and not request.checksum and any(
                    s.lower().startswith(("http://", "https://")) for s in request.sources):
                import uuid

                from builder import replay

                content = uuid.uuid4().hex  # a download without a checksum always runs
                replay.cancel("download")
            return self.fs_key(ins.keyword, dataclasses.asdict(request), chown, content)
        from builder.cache.keys import paths_digest
        from builder.context import context_path
        from builder.executor.mounts import parse_run_mount

        state, options = self.state, self.build.options
        mounts = [self.expand(raw, ins.location) for raw in ins.mounts]
        used: list[str] = []
        for mount in map(parse_run_mount, mounts):
            if mount.type != "bind":
                continue  # caches and tmpfs start as they are; a secret counts by its id
            if mount.from_:
                used.append(self.name_identity(mount.from_))
            else:  # what the step will see: the source as mounted, without excluded paths
                tree = self.build.context_tree()
                rel = context_path(mount.source or ".")
                used.append(paths_digest(os.fspath(tree.root), [rel], visible=tree.hides,
                                         stats=self.build.stat_cache()))
        return self.fs_key(
            "RUN", ins.original, _run_argv(ins, state.shell),
            sorted({**self.scope.values, **state.env_map()}.items()),
            state.config.working_dir or "/", state.config.user or "",
            ins.network or options.network or "private", options.isolation,
            [h.body for h in ins.heredocs], mounts, used,
        )

    def context_digest(self, request: CopyRequest) -> str:
        """Digest of the context files a COPY/ADD reads (after the ignore file)."""
        from builder.cache.keys import paths_digest
        from builder.executor.copier import _expand_sources

        tree = self.build.context_tree()
        rels = [source.rel for source in _expand_sources(tree, request)]
        visible = tree.visible if tree.included is not None else None
        return paths_digest(os.fspath(tree.root), rels, visible=visible,
                            stats=self.build.stat_cache())

    def ref_identity(self, ref: StageRef) -> str:
        if ref.stage is not None:
            return self.build.results[ref.stage].identity()
        assert ref.image is not None
        return self.build.image_digest(ref.image)

    def name_identity(self, name: str) -> str:
        """What ``RUN --mount from=NAME`` names: a stage's layers or an image's digest."""
        for index, result in list(self.build.results.items()):
            stage_name = result.plan.name
            if (stage_name and stage_name.lower() == name.lower()) or name == str(index):
                return result.identity()
        return self.build.image_digest(name)

    # RUN

    def run_run(self, ins: m.RunInstruction, position: int | None) -> None:
        from builder.executor.mounts import parse_run_mount, resolve_mounts
        from builder.executor.sandbox import RunSpec, run_in_sandbox

        build = self.build
        state = self.state
        argv = _run_argv(ins, state.shell)
        env = {**self.scope.values, **state.env_map()}
        workdir = state.config.working_dir or "/"
        root = self.result.root
        self.ensure_dir(workdir)
        mounts = []
        if ins.mounts:
            parsed = [parse_run_mount(self.expand(raw, ins.location)) for raw in ins.mounts]
            mounts = resolve_mounts(
                parsed, context=build.context,
                stage_root=build.root_by_name,
                cache_root=build.store.root / "cache", secrets=build.options.secrets,
                context_tree=build.context_tree(),
            )
            for mount in mounts:
                if mount.type == "cache" and mount.source is not None:
                    build.cache_mount_used(mount.source)
        spec = RunSpec(
            argv=argv, env=[f"{k}={v}" for k, v in env.items()], cwd=workdir,
            user=state.config.user or "", hostname="pybuild",
            network=ins.network or build.options.network or "private", mounts=tuple(mounts),
            isolation=build.options.isolation or "chroot",
        )
        status = run_in_sandbox(root, spec)
        if status != 0:
            raise StepError(
                f'error building at STEP "{ins.original}": exit status {status}',
                ins.location, status=status,
            )


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
    from builder.instructions.parse import parse_containerfile

    parsed = parse_containerfile(f"FROM scratch\n{text}\n", base.location.file)
    return parsed.stages[0].instructions

