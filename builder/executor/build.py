"""A whole build: plan the stages, run them in order, commit the target as an image.

Nothing is named until the very end: a failed or interrupted build writes no
tag, and blobs and cached layers it wrote are removed again, so the store is
left as it was.

Stages that do not depend on each other run concurrently (``jobs`` threads).
The layer cache (``builder.cache``) is on unless ``layers`` is false; with
``no_cache`` every step runs and its result replaces what was cached. A build
whose every step was cached reuses the creation time recorded with the cached
steps, so it gives the image the first build gave. The parsed Containerfile is
kept in the store too (``cache/parsed/``), so such a build never loads the parser.

Base images (FROM, ``COPY --from=IMAGE``, ``RUN --mount from=IMAGE``) come from
the store or a registry as the pull policy says: ``missing`` (the default),
``always``, ``never`` or ``newer`` (pull when the registry's digest differs).
A stored image made for another platform counts as missing. ``build_platforms``
builds once per platform and collects the images in a manifest list.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder import replay
from builder.cache.index import CacheEntry, CacheIndex
from builder.cache.parsed import parse_cached
from builder.cache.remote import RemoteCache
from builder.cache.statcache import StatCache
from builder.context import ContainerfileSource
from builder.errors import (
    ContextError,
    ImageNotFound,
    PlanError,
    PybuildError,
    StoreError,
    UsageError,
)
from builder.executor.config import DEFAULT_PATH
from builder.executor.copier import SourceTree, context_tree
from builder.executor.effects import LayerOptions, RootfsEffects
from builder.executor.gitsource import git_identity
from builder.executor.imageflags import apply_image_flags
from builder.executor.network import proxy_build_args
from builder.executor.output import LineWriter, Progress
from builder.executor.sshagent import SshAgents, SshSource
from builder.executor.stage import StageExecutor, StageOptions, StageResult, StepContext
from builder.ignore import IgnoreMatcher, load_ignore, read_ignore_patterns
from builder.image.encrypted import refuse_encrypted
from builder.image.layer import Layer, write_layer
from builder.image.spec import ContainerConfig, ImageConfig
from builder.image.squash import squashed_config
from builder.instructions.model import FromInstruction
from builder.plan.args import platform_args, unconsumed
from builder.plan.contexts import replace_first_from
from builder.plan.graph import SCRATCH, BuildPlan, StageRef, check_emulation, make_plan
from builder.platform import Platform, host_platform
from builder.reference import normalize_name
from builder.registry.client import RegistryOptions, remote_digest
from builder.rootfs.export import export_root
from builder.rootfs.layercache import forget, layer_cache_dir
from builder.rootfs.workspace import Workspace
from builder.runsettings import RunSettings
from builder.source import Location
from builder.store import ImageRecord, Store
from builder.store.manifests import add_to_manifest
from builder.store.transports import import_image, parse_transport, pull_image


@dataclass(frozen=True)
class BuildOptions:
    """Everything ``pybuild bud`` was asked for, already parsed."""

    context: Path
    containerfile: ContainerfileSource
    platform: Platform
    tags: tuple[str, ...] = ()
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    format: str = "oci"
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    timestamp: int | None = None
    compression: str = "gzip"
    isolation: str | None = None
    run_settings: RunSettings = RunSettings()  # --network, --dns, --add-host, ...
    secrets: dict[str, Any] = field(default_factory=dict)
    driver: str | None = None
    ignore_file: Path | None = None
    layers: bool = True  # the layer cache
    no_cache: bool = False  # run every step (results are still recorded)
    jobs: int = 0  # stages at once; 0: one per CPU
    cache_from: tuple[str, ...] = ()  # registry repositories to look steps up in
    cache_to: str | None = None  # registry repository to send step results to
    cache_ttl: float | None = None  # seconds; older cache entries are ignored
    cache_mounts: bool = False  # ship RUN --mount=type=cache contents with the cache
    squash: str | None = None  # "new": the target stage's layers as one; "all": one layer
    pull: str = "missing"  # base image policy: missing, always, never or newer
    ssh: dict[str, SshSource] = field(default_factory=dict)  # --ssh: agents RUN may mount
    registry: Any = None  # RegistryOptions for pulls, or a function that makes them
    # (the platform is filled in per build)
    # issue 18, bud's other flags (builder.executor.imageflags, builder.plan.contexts):
    env: tuple[str, ...] = ()  # --env K=V|K, set in the committed config
    unset_env: tuple[str, ...] = ()  # --unsetenv
    unset_labels: tuple[str, ...] = ()  # --unsetlabel
    omit_history: bool = False  # --omit-history
    os_version: str | None = None  # --os-version
    os_features: tuple[str, ...] = ()  # --os-feature F (F- removes)
    from_image: str | None = None  # --from: replaces the first FROM's image
    skip_unused_stages: bool = True  # --skip-unused-stages
    build_contexts: dict[str, Any] = field(default_factory=dict)  # name -> NamedContext
    stdin: bool = False  # --stdin: RUN steps read pybuild's stdin
    output: Any = None  # --output: an OutputSpec for the target's root file system


@dataclass
class BuildResult:
    image_id: str
    manifest_digest: str
    names: tuple[str, ...]


def _rfc3339(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


class BuildState:
    """What the stages of one build share: the store, the plan, the stages built so far,
    the context and the step cache. It is the stages' ``StepCache`` and
    ``StageInputs``; ``effects`` carries their steps out."""

    def __init__(self, store: Store, options: BuildOptions, plan: BuildPlan,
                 progress: Progress) -> None:
        self.store = store
        self.options = options
        self.plan = plan
        self.progress = progress
        self.results: dict[int, StageResult] = {}
        self.ssh_agents = SshAgents(options.ssh)
        layer_format = "docker" if options.format == "docker" and \
            options.compression == "gzip" else "oci"
        self.stage_options = StageOptions(
            format=options.format, layer_format=layer_format,
            compression=options.compression, timestamp=options.timestamp,
            created=_rfc3339(options.timestamp if options.timestamp is not None
                             else time.time()),
            run_settings=options.run_settings,
            proxy_args=tuple(proxy_build_args(options.build_args).items()),
            isolation=options.isolation, driver=options.driver,
            stdin=options.stdin)
        self.effects = RootfsEffects(
            store.layout, LayerOptions(options.compression, options.timestamp, layer_format),
            context=options.context, context_tree=self.context_tree, root_of=self.root_of,
            cache_root=store.root / "cache", secrets=options.secrets,
            cache_mount_used=self.cache_mount_used, work=store.tmp_dir(),
            ssh=self.ssh_agents.socket)
        self._image_roots: dict[str, Workspace] = {}
        self._image_digests: dict[str, str] = {}
        self._found: dict[str, ImageRecord] = {}  # base images resolved under the pull policy
        self._pull_lock = threading.Lock()
        self._context_tree: SourceTree | None = None
        self._stat_cache: StatCache | None = None
        self._lock = threading.RLock()
        self.misses = 0  # steps that ran
        self.recorded: list[str] = []  # cache entries this build wrote
        self.step_keys: list[str] = []  # keys of file-system steps, for --cache-to
        self.cache_mounts: set[Path] = set()
        self.cache: CacheIndex | None = None
        self.remote: RemoteCache | None = None
        if options.layers:
            self.cache = CacheIndex(store, ttl=options.cache_ttl)
            if options.cache_from or options.cache_to:
                self.remote = RemoteCache(store, options.cache_from, options.cache_to,
                                          ttl=options.cache_ttl, mounts=options.cache_mounts)

    def step_context(self) -> StepContext:
        return StepContext(self.plan, self.stage_options, self.progress, self, self,
                           self.effects, self.store)

    # StageInputs

    @property
    def context(self) -> Path:
        return self.options.context

    def context_tree(self) -> SourceTree:
        """The context as a copy source, after the ignore file (computed once)."""
        if self._context_tree is None:
            ignore_file = self.options.ignore_file
            if ignore_file is None:
                matcher = load_ignore(self.options.context, self.options.containerfile.path)
            else:
                replay.watch(ignore_file)
                try:
                    text = ignore_file.read_bytes().decode("utf-8", "surrogateescape")
                except OSError as exc:
                    raise ContextError(
                        f"reading ignore file {ignore_file}: {exc.strerror}") from exc
                matcher = IgnoreMatcher(read_ignore_patterns(text), source=ignore_file)
            self._context_tree = context_tree(self.options.context, matcher)
        return self._context_tree

    def stat_cache(self) -> StatCache:
        """Context file digests, remembered between builds."""
        with self._lock:
            if self._stat_cache is None:
                self._stat_cache = StatCache(self.store.root, self.options.context)
            return self._stat_cache

    def stage(self, index: int) -> StageResult:
        return self.results[index]

    def register(self, result: StageResult) -> None:
        self.results[result.plan.index] = result

    def image_digest(self, name: str) -> str:
        """What identifies image ``name`` in cache keys: its manifest digest (scratch:
        "scratch"), followed by the platform when building for another one, so that
        steps on the same base for different platforms are cached apart."""
        suffix = "" if self.options.platform == host_platform() else f"@{self.options.platform}"
        if name.lower() == SCRATCH:
            return SCRATCH + suffix
        with self._lock:
            if name not in self._image_digests:
                self._image_digests[name] = self.find_image(name, None).manifest_digest
            return self._image_digests[name] + suffix

    def base_image(self, name: str, base: FromInstruction | None
                   ) -> tuple[ImageConfig, list[Layer]]:
        """Config and layers of a base image ("scratch": none)."""
        platform = self.options.platform
        if name.lower() == SCRATCH:
            config = ImageConfig(architecture=platform.architecture, os=platform.os,
                                 variant=platform.variant or None,
                                 config=ContainerConfig(env=[DEFAULT_PATH]))
            return config, []
        record = self.find_image(name, base)
        refuse_encrypted(record.manifest, name)
        with self._lock:
            self._image_digests[name] = record.manifest_digest
        return copy.deepcopy(record.config), record.layers

    def git_commits(self, urls: tuple[str, ...], keep_git_dir: bool,
                    checksum: str | None) -> list[str]:
        """What an ``ADD <git URL>`` step's key holds: each URL and its commit."""
        return git_identity(urls, keep_git_dir, checksum, self.store.tmp_dir())

    # StepCache

    @property
    def enabled(self) -> bool:
        return self.cache is not None

    def lookup(self, key: str) -> CacheEntry | None:
        """The cached result of step ``key``, or None (counts a miss)."""
        entry: CacheEntry | None = None
        if self.cache is not None and not self.options.no_cache:
            entry = self.cache.get(key)
            if entry is None and self.remote is not None:
                entry = self.remote.fetch(key)
                if entry is not None:
                    self.record(key, entry)
        if entry is None:
            with self._lock:
                self.misses += 1
        return entry

    def record(self, key: str, entry: CacheEntry) -> None:
        """Keep a step's result in the cache (a failure to write it is not an error)."""
        if self.cache is None:
            return
        with contextlib.suppress(OSError):
            self.cache.put(key, entry)
            with self._lock:
                self.recorded.append(key)

    def share(self, key: str) -> None:
        """Send the file-system step ``key`` to the --cache-to registry after the build."""
        if self.remote is not None:
            with self._lock:
                self.step_keys.append(key)

    # for the effects

    def cache_mount_used(self, path: Path) -> None:
        """A RUN is about to use the cache mount at ``path``: restore it from the shared
        cache first when it is not here yet."""
        with self._lock:
            first = path not in self.cache_mounts
            self.cache_mounts.add(path)
        if first and self.remote is not None and self.options.cache_mounts:
            self.remote.restore_mount(path)

    def root_of(self, ref: StageRef) -> Path:
        """The root of a stage built earlier, or of an image (opened once)."""
        if ref.stage is not None:
            return self.results[ref.stage].root
        if ref.directory is not None:  # a --build-context directory
            return ref.directory
        assert ref.image is not None
        with self._lock:
            if ref.image not in self._image_roots:
                _, layers = self.base_image(ref.image, None)
                self._image_roots[ref.image] = Workspace.create(
                    self.store, layers, driver=self.options.driver)
            return Path(self._image_roots[ref.image].root)

    # base images

    def find_image(self, name: str, base: FromInstruction | None) -> ImageRecord:
        """The stored image ``name`` names, pulled first as the pull policy says (once
        per build)."""
        location = base.location if base is not None else None
        transport, rest = parse_transport(name)
        with self._pull_lock:
            if transport in ("oci", "oci-archive", "docker-archive"):
                if name not in self._found:
                    self._found[name] = import_image(self.store, name,
                                                     platform=self.options.platform)
                return self._found[name]
            if rest not in self._found:
                self._found[rest] = self._resolve_image(rest, location)
                replay.used_image(rest, self._found[rest].manifest_digest)
            return self._found[rest]

    def _resolve_image(self, ref: str, location: Location | None) -> ImageRecord:
        policy = self.options.pull
        platform = self.options.platform
        try:
            local: ImageRecord | None = self.store.lookup(ref)
        except ImageNotFound:
            local = None
        if local is not None and not _fits(local.config, platform):
            found = f"{local.config.os}/{local.config.architecture}"
            if policy == "never" or _local_only(ref):
                self.progress.warn(f"image {ref!r} is for {found}, not {platform}: using it")
            else:
                local = None  # pull the image for this platform
        if policy == "never":
            if local is None:
                raise PlanError(f'pulling image "{ref}": image not known locally and '
                                "--pull=never", location)
            return local
        if local is not None and policy == "missing":
            return local
        registry = self.registry_options()
        if local is not None and policy == "newer":
            try:
                if remote_digest(ref, registry) == local.manifest_digest:
                    return local
            except PybuildError as exc:
                self.progress.warn(f"checking {ref!r} for a newer image: {exc}; "
                                   "using the local one")
                return local
        self.progress.info(f"Resolving {ref!r} ...")
        try:
            return pull_image(self.store, ref, registry, quiet=self.progress.quiet)
        except PybuildError as exc:
            raise PlanError(f'pulling image "{ref}": {exc}', location) from exc

    def registry_options(self) -> RegistryOptions:
        """The ``RegistryOptions`` for pulls, for this build's platform."""
        base = self.options.registry
        if callable(base):  # made on first use: most builds never talk to a registry
            base = base()
        return dataclasses.replace(base or RegistryOptions(), platform=str(self.options.platform))

    def close(self) -> None:
        self.ssh_agents.close()
        for result in list(self.results.values()):
            result.drop_workspace()
        for workspace in self._image_roots.values():
            workspace.close()
        if self._stat_cache is not None:
            self._stat_cache.save()

    def forget_new_data(self, layers_before: set[str]) -> None:
        """After a failure: drop the cache entries this build recorded, the blobs nothing
        references then (through gc, which leaves other processes' in-flight blobs alone)
        and the layer directories this build made."""
        if self.cache is not None:  # a failed build leaves the store as it found it
            for key in self.recorded:
                self.cache.remove(key)
        self.store.gc()
        for diff_id in self.effects.new_layers:
            if diff_id.split(":", 1)[-1] not in layers_before:
                forget(layer_cache_dir(self.store.root, diff_id))


def plan_build(store: Store, options: BuildOptions) -> BuildPlan:
    """Parse and plan the Containerfile for ``options.platform``; a RUN the platform
    cannot run here is an error."""
    containerfile = replace_first_from(parse_cached(store, options.containerfile),
                                       options.from_image)
    known: dict[str, bool] = {name: True for name in options.build_contexts}

    def image_exists(name: str) -> bool:
        if name not in known:
            try:
                store.lookup(name)
                known[name] = True
            except PybuildError:
                known[name] = False
        return known[name]

    contexts = {name: context.ref() for name, context in options.build_contexts.items()}
    plan = make_plan(containerfile, options.build_args, platform_args(options.platform),
                     target=options.target, image_exists=image_exists, contexts=contexts,
                     skip_unused=options.skip_unused_stages)
    check_emulation(plan, options.platform)
    return plan


def build(store: Store, options: BuildOptions, progress: Progress) -> BuildResult:
    """Build ``options.containerfile`` in ``options.context``; name the result with the tags."""
    plan = plan_build(store, options)
    progress.stage_count = len(plan.stages)
    state = BuildState(store, options, plan, progress)
    before_layers = set(os.listdir(store.root / "layers")) if (store.root / "layers").exists() \
        else set()
    committed = False
    try:
        with store.pin():
            _run_stages(state, options.jobs or os.cpu_count() or 1)
            final = state.results[plan.target.index]
            if options.squash:
                _squash(state, final, everything=options.squash == "all")
            record = _commit(state, final)
            committed = True
            if options.output is not None:  # as Buildah 1.28: the image is stored too
                export_root(final.root, options.output.for_platform(options.platform))
            if state.remote is not None:
                state.remote.send(state.step_keys, state.cache_mounts, progress)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise StoreError(f"building image: {where}{exc.strerror}") from exc
    finally:
        state.close()
        if not committed:
            with contextlib.suppress(OSError, PybuildError):  # the build's own error wins
                state.forget_new_data(before_layers)
    if state.remote is not None:
        state.remote.close()
    leftovers = unconsumed(options.build_args, plan.scope.consumed)
    if leftovers:
        progress.warning(f"one or more build args were not consumed: [{' '.join(leftovers)}]")
    return BuildResult(record.id, record.manifest_digest, record.names)


def build_platforms(store: Store, options: BuildOptions, platforms: list[Platform],
                    progress: Progress, manifest: str | None = None,
                    log_for: Any = None) -> list[BuildResult]:
    """Build once per platform, in order; with ``manifest``, add each image to that
    manifest list (made when missing). Several platforms need ``manifest``: their
    images are not tagged, the list names them. ``log_for(platform)``, when given, is
    a context manager each platform's build runs in (``--logsplit``)."""
    if len(platforms) > 1 and manifest is None:
        raise UsageError("building for several platforms: name a manifest list with --manifest")
    if len(platforms) > 1 and options.tags:
        raise UsageError("building for several platforms: the images cannot share a tag; "
                         "the --manifest list names them")
    if len(set(platforms)) != len(platforms):
        raise UsageError("building for several platforms: a platform is listed twice")
    for platform in platforms[1:]:
        plan_build(store, dataclasses.replace(options, platform=platform))  # fail early
    results = []
    for platform in platforms:
        with log_for(platform) if log_for is not None else contextlib.nullcontext():
            if len(platforms) > 1:
                progress.info(f"Building for {platform}")
            result = build(store, dataclasses.replace(options, platform=platform), progress)
        if manifest is not None:
            add_to_manifest(store, manifest, result.image_id)
        results.append(result)
    return results


def _fits(config: ImageConfig, platform: Platform) -> bool:
    """Whether an image's config is for ``platform``."""
    return platform.matches(Platform(config.os or "linux", config.architecture,
                                     config.variant or ""))


def _local_only(ref: str) -> bool:
    """Names under ``localhost/`` are local images no registry serves."""
    try:
        return normalize_name(ref).startswith("localhost/")
    except PybuildError:
        return False


def _run_stages(state: BuildState, jobs: int) -> None:
    """Run the planned stages, each once its dependencies are done, ``jobs`` at a time."""
    stages = state.plan.stages
    context = state.step_context()
    if jobs <= 1 or len(stages) == 1:
        for position, stage_plan in enumerate(stages, 1):
            state.results[stage_plan.index] = StageExecutor(context, stage_plan, position).run()
        return
    state.progress.out = LineWriter(state.progress.out)  # type: ignore[assignment]
    waiting = {plan.index: (position, plan) for position, plan in enumerate(stages, 1)}
    done: set[int] = set()
    running: dict[Future[StageResult], int] = {}
    failure: BaseException | None = None
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="stage") as pool:
        while (waiting and failure is None) or running:
            if failure is None:
                for index, (position, plan) in sorted(waiting.items(), key=lambda x: x[1][0]):
                    if plan.deps <= done and len(running) < jobs:
                        running[pool.submit(StageExecutor(context, plan, position).run)] = index
                        del waiting[index]
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                index = running.pop(future)
                try:
                    state.results[index] = future.result()
                    done.add(index)
                except BaseException as exc:  # noqa: BLE001 - re-raised once the others stop
                    failure = failure or exc
    if failure is not None:
        raise failure


def _commit(state: BuildState, final: StageResult) -> ImageRecord:
    """Write the target stage's config and manifest and apply the tags."""
    options = state.options
    config = final.config
    created = state.stage_options.created
    config.created = created
    if state.cache is not None and state.misses == 0 and config.history and \
            options.timestamp is None:
        config.created = config.history[-1].created or created  # the cached image
    platform = options.platform
    config.architecture = platform.architecture
    config.os = platform.os
    config.variant = platform.variant or None
    apply_image_flags(config, labels=options.labels, env=options.env,
                      unset_env=options.unset_env, unset_labels=options.unset_labels,
                      os_version=options.os_version, os_features=options.os_features,
                      omit_history=options.omit_history, warn=state.progress.warn)
    names = [normalize_name(tag) for tag in options.tags]
    state.progress.commit(names[0] if names else "")
    record = state.store.commit(config, final.layers, format=options.format,
                               annotations=dict(options.annotations) or None, names=names)
    state.progress.image(record.id)
    for name in names:
        state.progress.tagged(name)
    return record


def _squash(state: BuildState, final: StageResult, *, everything: bool) -> None:
    """Replace the layers the target stage added (``everything``: all layers) with one
    layer of their combined changes."""
    base_count = 0 if everything else _base_layer_count(state, final)
    if len(final.layers) - base_count <= 1 and not everything:
        return
    final.drop_workspace()
    kept, merged = final.layers[:base_count], final.layers[base_count:]
    with Workspace.create(state.store, kept, driver=state.options.driver) as workspace:
        for layer in merged:
            workspace.apply(layer)
        entries = workspace.changes()
        squashed = write_layer(entries, state.store.layout,
                               compression=state.options.compression,
                               timestamp=state.options.timestamp,
                               format=state.stage_options.layer_format) if entries else None
    final.config = squashed_config(final.config, kept, squashed)
    final.layers = [*kept, *([squashed] if squashed else [])]


def _base_layer_count(state: BuildState, final: StageResult) -> int:
    """How many layers the target stage's base had."""
    ref = final.plan.base
    if ref.stage is not None:
        return len(state.results[ref.stage].layers)
    assert ref.image is not None
    _, layers = state.base_image(ref.image, None)
    return len(layers)
