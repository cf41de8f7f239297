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
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder import replay
from builder.context import ContainerfileSource
from builder.errors import (
    ContextError,
    ImageNotFound,
    PlanError,
    PybuildError,
    StoreError,
)
from builder.executor.config import DEFAULT_PATH
from builder.executor.copier import SourceTree, context_tree
from builder.executor.output import Progress
from builder.executor.stage import StageExecutor, StageResult
from builder.image.spec import ContainerConfig, Descriptor, ImageConfig
from builder.instructions.model import Containerfile, FromInstruction, RunInstruction
from builder.plan.args import Platform, host_platform, platform_args, unconsumed
from builder.plan.graph import SCRATCH, BuildPlan, StageRef, make_plan
from builder.runsettings import RunSettings

if TYPE_CHECKING:
    from builder.cache.index import CacheEntry


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
    registry: Any = None  # RegistryOptions for pulls, or a function that makes them
    # (the platform is filled in per build)


@dataclass
class BuildResult:
    image_id: str
    manifest_digest: str
    names: tuple[str, ...]


def _rfc3339(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


class BuildState:
    """What the stages of one build share: store, plan, results, context, progress."""

    def __init__(self, store: Any, options: BuildOptions, containerfile: Containerfile,
                 plan: BuildPlan, progress: Progress) -> None:
        self.store = store
        self.options = options
        self.containerfile = containerfile
        self.plan = plan
        self.progress = progress
        self.results: dict[int, StageResult] = {}
        self.created = _rfc3339(options.timestamp if options.timestamp is not None
                                else time.time())
        self.layer_format = "docker" if options.format == "docker" and \
            options.compression == "gzip" else "oci"
        self.new_layer_dirs: set[str] = set()
        self._image_roots: dict[str, Any] = {}
        self._image_digests: dict[str, str] = {}
        self._found: dict[str, Any] = {}  # base images resolved under the pull policy
        self._pull_lock = threading.Lock()
        self._context_tree: SourceTree | None = None
        self._stat_cache: Any = None
        self._lock = threading.RLock()
        self.misses = 0  # steps that ran
        self.recorded: list[str] = []  # cache entries this build wrote
        self.step_keys: list[str] = []  # keys of file-system steps, for --cache-to
        self.cache_mounts: set[Path] = set()
        self.cache: Any = None
        self.remote: Any = None
        if options.layers:
            from builder.cache.index import CacheIndex

            self.cache = CacheIndex(store, ttl=options.cache_ttl)
            if options.cache_from or options.cache_to:
                from builder.cache.remote import RemoteCache

                self.remote = RemoteCache(store, options.cache_from, options.cache_to,
                                          ttl=options.cache_ttl, mounts=options.cache_mounts)

    @property
    def context(self) -> Path:
        return self.options.context

    def context_tree(self) -> SourceTree:
        """The context as a copy source, after the ignore file (computed once)."""
        if self._context_tree is None:
            from builder.ignore import IgnoreMatcher, load_ignore, read_ignore_patterns

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

    def stat_cache(self) -> Any:
        """Context file digests, remembered between builds."""
        with self._lock:
            if self._stat_cache is None:
                from builder.cache.statcache import StatCache

                self._stat_cache = StatCache(self.store.root, self.options.context)
            return self._stat_cache

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

    def record(self, key: str, entry: Any) -> None:
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

    def cache_mount_used(self, path: Path) -> None:
        """A RUN is about to use the cache mount at ``path``: restore it from the shared
        cache first when it is not here yet."""
        with self._lock:
            first = path not in self.cache_mounts
            self.cache_mounts.add(path)
        if first and self.remote is not None and self.options.cache_mounts:
            self.remote.restore_mount(path)

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

    def root_of(self, ref: StageRef) -> Path:
        """The root of a stage built earlier, or of an image (opened once)."""
        if ref.stage is not None:
            return self.results[ref.stage].root
        assert ref.image is not None
        with self._lock:
            if ref.image not in self._image_roots:
                from builder.rootfs.workspace import Workspace

                _, layers, triples = self.base_image(ref.image, None)
                self._image_roots[ref.image] = Workspace.create(
                    self.store, triples, driver=self.options.driver)
            return Path(self._image_roots[ref.image].root)

    def root_by_name(self, name: str) -> Path:
        """The root a ``RUN --mount from=NAME`` names: a stage by name or index, or an image."""
        for index, result in list(self.results.items()):
            stage_name = result.plan.name
            if (stage_name and stage_name.lower() == name.lower()) or name == str(index):
                return result.root
        return self.root_of(StageRef(image=name))

    def base_image(self, name: str, base: FromInstruction | None
                   ) -> tuple[ImageConfig, list[Any], list[tuple[str, str, str]]]:
        """Config, layer descriptors and layer triples of a base image ("scratch": none)."""
        platform = self.options.platform
        if name.lower() == SCRATCH:
            config = ImageConfig(architecture=platform.architecture, os=platform.os,
                                 variant=platform.variant or None,
                                 config=ContainerConfig(env=[DEFAULT_PATH]))
            return config, [], []
        record = self.find_image(name, base)
        with self._lock:
            self._image_digests[name] = record.manifest_digest
        config = copy.deepcopy(record.config)
        layers: list[Descriptor] = list(record.manifest.layers)
        triples = [(d.digest, diff_id, d.media_type) for d, diff_id in
                   zip(layers, config.diff_ids, strict=False)]
        return config, list(layers), triples

    def find_image(self, name: str, base: FromInstruction | None) -> Any:
        """The stored image ``name`` names, pulled first as the pull policy says (once
        per build)."""
        from builder.transports import import_image, parse_transport

        location = base.location if base is not None else None
        transport, rest = parse_transport(name)
        with self._pull_lock:
            if transport in ("oci", "oci-archive", "docker-archive"):
                if name not in self._found:
                    self._found[name] = import_image(self.store, name)
                return self._found[name]
            if rest not in self._found:
                self._found[rest] = self._resolve_image(rest, location)
                replay.used_image(rest, self._found[rest].manifest_digest)
            return self._found[rest]

    def _resolve_image(self, ref: str, location: Any) -> Any:
        policy = self.options.pull
        platform = self.options.platform
        try:
            local = self.store.lookup(ref)
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
        from builder.registry.client import pull_image

        self.progress.info(f"Resolving {ref!r} ...")
        try:
            return pull_image(self.store, ref, registry, quiet=self.progress.quiet)
        except PybuildError as exc:
            raise PlanError(f'pulling image "{ref}": {exc}', location) from exc

    def registry_options(self) -> Any:
        """The ``RegistryOptions`` for pulls, for this build's platform."""
        import dataclasses

        from builder.registry.client import RegistryOptions

        base = self.options.registry
        if callable(base):  # made on first use: most builds never talk to a registry
            base = base()
        return dataclasses.replace(base or RegistryOptions(), platform=str(self.options.platform))

    def close(self) -> None:
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
        from builder.rootfs.layercache import forget, layer_cache_dir

        if self.cache is not None:  # a failed build leaves the store as it found it
            for key in self.recorded:
                self.cache.remove(key)
        self.store.gc()
        for diff_id in self.new_layer_dirs:
            if diff_id.split(":", 1)[-1] not in layers_before:
                forget(layer_cache_dir(self.store.root, diff_id))


def plan_build(store: Any, options: BuildOptions) -> tuple[Containerfile, BuildPlan]:
    """Parse and plan the Containerfile for ``options.platform``; a RUN the platform
    cannot run here is an error."""
    containerfile = parse_cached(store, options.containerfile)
    known: dict[str, bool] = {}

    def image_exists(name: str) -> bool:
        if name not in known:
            try:
                store.lookup(name)
                known[name] = True
            except PybuildError:
                known[name] = False
        return known[name]

    plan = make_plan(containerfile, options.build_args, platform_args(options.platform),
                     target=options.target, image_exists=image_exists)
    check_emulation(plan, options.platform)
    return containerfile, plan


def parse_cached(store: Any, source: ContainerfileSource) -> Containerfile:
    """The parsed Containerfile, kept in ``<store>/cache/parsed/`` under a key of the
    text, its name and the parser's source files, so a rebuild skips the parser."""
    import hashlib
    import pickle

    key = hashlib.sha256(b"%s\0%s\0%s" % (replay.code_fingerprint(), source.display.encode(),
                                            source.text)).hexdigest()
    path = Path(store.root) / "cache" / "parsed" / f"{key}.pickle"
    try:
        with open(path, "rb") as f:
            cached = pickle.load(f)
        if isinstance(cached, Containerfile):
            return cached
    except Exception:  # noqa: BLE001 - a missing or unreadable entry is a miss
        pass
    from builder.instructions.parse import parse_containerfile

    containerfile = parse_containerfile(source.text, source.display)
    with contextlib.suppress(OSError, pickle.PicklingError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(store.tmp_dir()) / f"parsed-{key}"
        tmp.write_bytes(pickle.dumps(containerfile, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(tmp, path)
    return containerfile


def build(store: Any, options: BuildOptions, progress: Progress) -> BuildResult:
    """Build ``options.containerfile`` in ``options.context``; name the result with the tags."""
    containerfile, plan = plan_build(store, options)
    progress.stage_count = len(plan.stages)
    state = BuildState(store, options, containerfile, plan, progress)
    before_layers = set(os.listdir(store.root / "layers")) if (store.root / "layers").exists() \
        else set()
    committed = False
    try:
        with store.pin():
            _run_stages(state, options.jobs or os.cpu_count() or 1)
            final = state.results[plan.target.index]
            if options.squash:
                from builder.cache.squash import squash

                squash(state, final, everything=options.squash == "all")
            record = _commit(state, final)
            committed = True
            if state.remote is not None:
                state.remote.send(state.step_keys, state.cache_mounts, progress)
    except OSError as exc:
        raise StoreError(f"building image: {exc.filename or ''} {exc.strerror}".replace(
            ":  ", ": ")) from exc
    finally:
        state.close()
        if not committed:
            with contextlib.suppress(Exception):
                state.forget_new_data(before_layers)
    if state.remote is not None:
        state.remote.close()
    leftovers = unconsumed(options.build_args, plan.scope.consumed)
    if leftovers:
        progress.warning(f"one or more build args were not consumed: [{' '.join(leftovers)}]")
    return BuildResult(record.id, record.manifest_digest, record.names)


def build_platforms(store: Any, options: BuildOptions, platforms: list[Platform],
                    progress: Progress, manifest: str | None = None) -> list[BuildResult]:
    """Build once per platform, in order; with ``manifest``, add each image to that
    manifest list (made when missing). Several platforms need ``manifest``: their
    images are not tagged, the list names them."""
    import dataclasses

    from builder.errors import UsageError

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
        if len(platforms) > 1:
            progress.info(f"Building for {platform}")
        result = build(store, dataclasses.replace(options, platform=platform), progress)
        if manifest is not None:
            from builder.manifests import add_to_manifest

            add_to_manifest(store, manifest, result.image_id)
        results.append(result)
    return results


# Go architecture names -> the Linux machine names binfmt_misc handlers are named after
_MACHINES = {"amd64": "x86_64", "arm64": "aarch64", "386": "i386", "arm": "arm",
             "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
             "mips64le": "mips64el", "loong64": "loongarch64"}
_NATIVE = {("amd64", "386"), ("arm64", "arm")}  # hosts that run these without emulation
BINFMT_MISC = Path("/proc/sys/fs/binfmt_misc")


def needs_emulation(platform: Platform, host: Platform | None = None) -> bool:
    host = host or host_platform()
    return platform.os != host.os or (platform.architecture != host.architecture and
                                      (host.architecture, platform.architecture) not in _NATIVE)


def emulation_registered(machine: str, directory: Path = BINFMT_MISC) -> bool:
    """Whether an enabled binfmt_misc handler runs ``machine`` binaries (a handler named
    ``qemu-MACHINE``, or one whose interpreter is a ``qemu-MACHINE`` binary)."""
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return False
    for entry in entries:
        if entry.name in ("register", "status"):
            continue
        try:
            lines = entry.read_text().splitlines()
        except OSError:
            continue
        if not lines or lines[0].strip() != "enabled":
            continue
        interpreter = next((line.split(None, 1)[-1] for line in lines
                            if line.startswith("interpreter ")), "")
        program = interpreter.rsplit("/", 1)[-1].removesuffix("-static")
        if entry.name == f"qemu-{machine}" or program == f"qemu-{machine}":
            return True
    return False


def check_emulation(plan: BuildPlan, platform: Platform) -> None:
    """A RUN for a platform this host cannot run needs a binfmt_misc handler: fail
    before anything runs when there is none."""
    if not needs_emulation(platform):
        return
    machine = _MACHINES.get(platform.architecture, platform.architecture)
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


def remote_digest(ref: str, options: Any) -> str:
    """The digest of the manifest a pull of ``ref`` would fetch for ``options.platform``
    (one HEAD request, plus a GET when the name points at an index)."""
    import json

    from builder.image.spec import INDEX_TYPES
    from builder.registry.client import (
        ACCEPT_MANIFEST,
        RegistryClient,
        _resolve,
        choose_manifest,
        in_context,
        parse_platform,
        retrying,
    )

    _, source, insecure = _resolve(ref, options)[0]
    client = RegistryClient(source.registry, options, repository=source.repository,
                            insecure=insecure)
    path = f"/v2/{source.repository}/manifests/{source.target}"
    scope = f"repository:{source.repository}:pull"
    try:
        response = retrying(options, lambda: client.request(
            "HEAD", path, scope=scope, headers={"Accept": ACCEPT_MANIFEST}))
        response.close()
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        digest = response.headers.get("Docker-Content-Digest", "")
        if media_type in INDEX_TYPES or not digest:
            data, media_type, digest = retrying(
                options, lambda: client.get_manifest(source.repository, source.target))
            if media_type in INDEX_TYPES:
                entry = choose_manifest(json.loads(data), parse_platform(options.platform))
                digest = str(entry["digest"])
    except PybuildError as exc:
        raise in_context(f"checking {source}", exc) from exc
    finally:
        client.close()
    return digest


def _fits(config: ImageConfig, platform: Platform) -> bool:
    """Whether an image's config is for ``platform`` (variants count when both have one)."""
    if (config.os or "linux") != platform.os or config.architecture != platform.architecture:
        return False
    return not (config.variant and platform.variant) or config.variant == platform.variant


def _local_only(ref: str) -> bool:
    """Names under ``localhost/`` are local images no registry serves."""
    from builder.store import normalize_name

    try:
        return normalize_name(ref).startswith("localhost/")
    except PybuildError:
        return False


def _run_stages(state: BuildState, jobs: int) -> None:
    """Run the planned stages, each once its dependencies are done, ``jobs`` at a time."""
    stages = state.plan.stages
    if jobs <= 1 or len(stages) == 1:
        for position, stage_plan in enumerate(stages, 1):
            state.results[stage_plan.index] = StageExecutor(state, stage_plan, position).run()
        return
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

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
                        running[pool.submit(StageExecutor(state, plan, position).run)] = index
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


class LineWriter:
    """Writes whole lines only, so lines of stages running at once do not mix."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.local = threading.local()

    def write(self, text: str) -> int:
        buffer = getattr(self.local, "buffer", "") + text
        head, sep, tail = buffer.rpartition("\n")
        self.local.buffer = tail
        if sep:
            with self.lock:
                self.out.write(head + sep)
                self.out.flush()
        return len(text)

    def flush(self) -> None:
        pass


def _commit(state: BuildState, final: StageResult) -> Any:
    """Write the target stage's config and manifest and apply the tags."""
    from builder.image.commit import commit_image
    from builder.store import normalize_name

    options = state.options
    config = final.config
    config.created = state.created
    if state.cache is not None and state.misses == 0 and config.history and \
            options.timestamp is None:
        config.created = config.history[-1].created or state.created  # the cached image
    platform = options.platform
    config.architecture = platform.architecture
    config.os = platform.os
    config.variant = platform.variant or None
    if options.labels:
        config.config.labels = {**(config.config.labels or {}), **options.labels}
    names = [normalize_name(tag) for tag in options.tags]
    state.progress.commit(names[0] if names else "")
    record = commit_image(
        state.store, config, final.layers, format=options.format,
        annotations=dict(options.annotations) or None, names=names,
    )
    state.progress.image(record.id)
    for name in names:
        state.progress.tagged(name)
    return record
