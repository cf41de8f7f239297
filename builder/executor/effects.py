"""What carrying out a stage does to the world, behind one seam.

``StageExecutor`` (``executor/stage.py``) interprets instructions: it expands
words, edits the config, computes cache keys and decides whether a step runs.
When a step has to change a root file system it calls an ``Effects``: ``copy``
(COPY/ADD), ``run`` (RUN in the sandbox), ``ensure_dir`` (WORKDIR, VOLUME and
RUN's working directory) and ``commit`` (the changes as the stage's next
layer). ``RootfsEffects`` is the real implementation, over a ``Workspace`` per
stage; tests drive the interpreter with a recording fake instead, without
namespaces or a store.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from builder.cache.keys import layers_identity
from builder.errors import StepError
from builder.executor.copier import (
    CopyRequest,
    SourceTree,
    copy_into,
    download,
    planned_entries,
)
from builder.executor.gitsource import add_git_sources, split_git_sources
from builder.executor.mounts import resolve_mounts
from builder.executor.runspec import RunSpec
from builder.executor.sandbox import run_in_sandbox
from builder.executor.sshagent import step_sockets
from builder.executor.users import copy_owner
from builder.image.layer import Layer, LayerEntry, write_layer
from builder.image.layout import Layout
from builder.image.spec import ImageConfig
from builder.instructions.mounts import RunMount
from builder.plan.graph import StagePlan, StageRef
from builder.rootfs.layercache import StoreLike
from builder.rootfs.paths import resolve_in_root
from builder.rootfs.workspace import Workspace
from builder.runsettings import RunSettings

__all__ = ["Effects", "LayerOptions", "RootfsEffects", "RunStep", "StageResult"]


@dataclass
class StageResult:
    """A built stage: its config and layers, and its root (assembled on first use,
    kept open for COPY --from)."""
    plan: StagePlan
    store: StoreLike
    driver: str | None
    config: ImageConfig
    layers: list[Layer] = field(default_factory=list)  # bottom first
    key: str = ""  # cache key of the last step
    workspace: Workspace | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def root(self) -> Path:
        return self.open().root

    def open(self) -> Workspace:
        """The workspace of the layers so far, assembled if need be."""
        with self._lock:
            if self.workspace is None:
                self.workspace = Workspace.create(self.store, self.layers, driver=self.driver)
            return self.workspace

    def drop_workspace(self) -> None:
        """Forget the assembled root (the layers changed underneath it)."""
        with self._lock:
            if self.workspace is not None:
                self.workspace.close()
                self.workspace = None

    def identity(self) -> str:
        """What the stage's file system is: its layers."""
        return layers_identity(self.config.diff_ids)


@dataclass(frozen=True)
class RunStep:
    """A RUN with every word expanded and every mount's ``from`` resolved."""

    argv: list[str]
    env: list[str]
    cwd: str
    user: str
    hostname: str
    settings: RunSettings  # the step's network (its mode decided), DNS, hosts, proxies
    isolation: str
    mounts: tuple[tuple[RunMount, StageRef | None], ...] = ()
    preserve: tuple[str, ...] = ()  # VOLUME paths whose changes the step must not keep
    stdin: bool = False


class Effects(Protocol):
    """The side effects of a stage's steps, each on the stage's root file system."""
    def copy(self, stage: StageResult, request: CopyRequest, source: StageRef | None,
             chown: str | None, add: bool) -> None:
        """COPY/ADD ``request`` from the context (``source`` None) or a stage or image;
        ``chown`` is looked up in the stage's root."""

    def run(self, stage: StageResult, step: RunStep) -> int:
        """RUN ``step``; its exit status."""

    def ensure_dir(self, stage: StageResult, path: str, user: str) -> bool:
        """Create the directory ``path`` and its missing parents, owned by ``user`` (a
        USER value; "" is root); True when something was made."""

    def commit(self, stage: StageResult) -> Layer | None:
        """The changes since the last commit as a new layer (None: nothing changed)."""


@dataclass(frozen=True)
class LayerOptions:
    """How layers are written."""

    compression: str
    timestamp: int | None
    format: str  # "oci" or "docker" media types


class RootfsEffects:
    """Steps carried out on real root file systems: a ``Workspace`` per stage."""
    def __init__(self, layout: Layout, layers: LayerOptions, *, context: Path,
                 context_tree: Callable[[], SourceTree], root_of: Callable[[StageRef], Path],
                 cache_root: Path, secrets: Mapping[str, bytes],
                 cache_mount_used: Callable[[Path], None], work: Path,
                 ssh: Callable[[str], Path | None] = lambda ident: None) -> None:
        self.layout = layout
        self.layers = layers
        self.context = context
        self.context_tree = context_tree
        self.root_of = root_of
        self.cache_root = cache_root
        self.secrets = secrets
        self.cache_mount_used = cache_mount_used
        self.work = work  # this process's temporary files (git clones)
        self.ssh = ssh
        self.new_layers: set[str] = set()  # diff_ids of layers this build wrote
        self._planned: dict[int, list[LayerEntry]] = {}  # stage index -> a planned COPY
        self._lock = threading.Lock()

    def _tree(self, source: StageRef | None) -> SourceTree:
        return self.context_tree() if source is None else SourceTree(self.root_of(source))

    def copy(self, stage: StageResult, request: CopyRequest, source: StageRef | None,
             chown: str | None, add: bool) -> None:
        """Into a stage with nothing in it yet (``FROM scratch``) a plain COPY is planned
        as layer entries read from the sources, instead of writing the files."""
        if add:  # ADD <git URL>: each repository's tree into the destination
            request, urls = split_git_sources(request)
            if urls:
                owner = copy_owner(stage.root, chown) if chown else None
                add_git_sources(stage.root, dataclasses.replace(request, owner=owner), urls,
                                request.keep_git_dir, self.work)
                if not request.sources:
                    return
        tree = self._tree(source)
        empty = stage.workspace is None and not stage.layers
        if empty and all(part.isdigit() for part in (chown or "0").split(":", 1)):
            planned_request = request
            if chown:
                planned_request = dataclasses.replace(request,
                                                      owner=copy_owner(Path("/"), chown))
            planned = planned_entries(planned_request, tree)
            if planned is not None:
                with self._lock:
                    self._planned[stage.plan.index] = planned
                return
        root = stage.root
        if chown:
            request = dataclasses.replace(request, owner=copy_owner(root, chown))
        copy_into(root, request, tree, download if add else None)

    def run(self, stage: StageResult, step: RunStep) -> int:
        mounts = resolve_mounts(
            [mount for mount, _ in step.mounts], [ref for _, ref in step.mounts],
            context=self.context, root_of=self.root_of, cache_root=self.cache_root,
            secrets=self.secrets, ssh=self.ssh, context_tree=self.context_tree())
        for mount in mounts:
            if mount.type == "cache" and mount.source is not None:
                self.cache_mount_used(mount.source)
        agents = [m for m in mounts if m.type == "ssh"]
        env = list(step.env)
        if agents and not any(item.startswith("SSH_AUTH_SOCK=") for item in env):
            env.append(f"SSH_AUTH_SOCK={agents[0].target}")  # the first, as BuildKit
        workspace = stage.open()
        requests = [(Path(m.source or ""), m.uid or 0, m.gid or 0, m.mode or 0o600)
                    for m in agents]
        with step_sockets(requests) as sockets, workspace.preserved(step.preserve):
            served = iter(sockets)
            mounts = [dataclasses.replace(m, type="bind", source=next(served))
                      if m.type == "ssh" else m for m in mounts]
            spec = RunSpec(argv=step.argv, env=env, cwd=step.cwd, user=step.user,
                           hostname=step.hostname, settings=step.settings,
                           mounts=tuple(mounts), isolation=step.isolation, stdin=step.stdin)
            return run_in_sandbox(workspace.root, spec)

    def ensure_dir(self, stage: StageResult, path: str, user: str) -> bool:
        """As Buildah does for WORKDIR (owned by the USER as COPY --chown would own it; a
        user the root does not know owns nothing: 0:0, never an error) and VOLUME (root)."""
        root = stage.root
        target = resolve_in_root(root, path)
        missing: list[Path] = []
        while not os.path.lexists(target):
            missing.append(target)
            target = target.parent
        if not missing:
            return False
        try:
            uid, gid = copy_owner(root, user) if user else (0, 0)
        except StepError:
            uid, gid = 0, 0
        for directory in reversed(missing):
            directory.mkdir()
            os.chmod(directory, 0o755)
            os.chown(directory, uid, gid)
        return True

    def commit(self, stage: StageResult) -> Layer | None:
        """A planned COPY's entries become the layer without a workspace (it is assembled
        when a later step needs one); otherwise the workspace's changes do."""
        with self._lock:
            planned = self._planned.pop(stage.plan.index, None)
        entries = planned if planned is not None else stage.open().changes()
        if not entries:
            return None
        layer = write_layer(entries, self.layout, compression=self.layers.compression,
                            timestamp=self.layers.timestamp, format=self.layers.format)
        if planned is None:
            stage.open().commit(layer.diff_id)
        with self._lock:
            self.new_layers.add(layer.diff_id)
        return layer
