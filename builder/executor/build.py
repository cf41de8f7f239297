"""A whole build: plan the stages, run them in order, commit the target as an image.

Nothing is named until the very end: a failed or interrupted build writes no
tag, and blobs and cached layers it wrote are removed again, so the store is
left as it was.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from builder.instructions.model import Containerfile, FromInstruction
from builder.plan.args import Platform, platform_args, unconsumed
from builder.plan.graph import SCRATCH, BuildPlan, StageRef, make_plan


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
    network: str | None = None
    secrets: dict[str, Any] = field(default_factory=dict)
    driver: str | None = None
    ignore_file: Path | None = None


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
        self._context_tree: SourceTree | None = None

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
                try:
                    text = ignore_file.read_bytes().decode("utf-8", "surrogateescape")
                except OSError as exc:
                    raise ContextError(
                        f"reading ignore file {ignore_file}: {exc.strerror}") from exc
                matcher = IgnoreMatcher(read_ignore_patterns(text), source=ignore_file)
            self._context_tree = context_tree(self.options.context, matcher)
        return self._context_tree

    def root_of(self, ref: StageRef) -> Path:
        """The root of a stage built earlier, or of an image (opened once)."""
        if ref.stage is not None:
            return self.results[ref.stage].root
        assert ref.image is not None
        if ref.image not in self._image_roots:
            from builder.rootfs.workspace import Workspace

            _, layers, triples = self.base_image(ref.image, None)
            self._image_roots[ref.image] = Workspace.create(
                self.store, triples, driver=self.options.driver)
        return Path(self._image_roots[ref.image].root)

    def root_by_name(self, name: str) -> Path:
        """The root a ``RUN --mount from=NAME`` names: a stage by name or index, or an image."""
        for index, result in self.results.items():
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
        config = copy.deepcopy(record.config)
        layers: list[Descriptor] = list(record.manifest.layers)
        triples = [(d.digest, diff_id, d.media_type) for d, diff_id in zip(layers, config.diff_ids)]
        return config, list(layers), triples

    def find_image(self, name: str, base: FromInstruction | None) -> Any:
        from builder.transports import import_image, parse_transport

        location = base.location if base is not None else None
        transport, rest = parse_transport(name)
        if transport in ("oci", "oci-archive", "docker-archive"):
            return import_image(self.store, name)
        ref = rest
        try:
            return self.store.lookup(ref)
        except ImageNotFound:
            pass
        try:
            from builder.registry.client import RegistryOptions, pull_image
        except ImportError:
            raise PlanError(f'pulling image "{ref}": image not known locally', location) from None
        self.progress.info(f"Resolving {ref!r} ...")
        try:
            return pull_image(self.store, ref, RegistryOptions(platform=str(self.options.platform)),
                              quiet=self.progress.quiet)
        except PybuildError as exc:
            raise PlanError(f'pulling image "{ref}": {exc}', location) from exc

    def close(self) -> None:
        for result in self.results.values():
            result.workspace.close()
        for workspace in self._image_roots.values():
            workspace.close()

    def forget_new_data(self, blobs_before: set[str], layers_before: set[str]) -> None:
        """After a failure: remove blobs and cached layers this build wrote."""
        from builder.rootfs.workspace import layer_cache_dir

        referenced: set[str] = set()
        for record in self.store.images():
            referenced.add(record.manifest.config.digest)
            referenced.update(d.digest for d in record.manifest.layers)
        if (self.store.root / "blobs").exists():
            for digest in set(self.store.layout.blob_digests()) - blobs_before - referenced:
                with contextlib.suppress(OSError, PybuildError):
                    self.store.layout.remove_blob(digest)
        for diff_id in self.new_layer_dirs:
            if diff_id.split(":", 1)[-1] not in layers_before:
                shutil.rmtree(layer_cache_dir(self.store.root, diff_id), ignore_errors=True)


def build(store: Any, options: BuildOptions, progress: Progress) -> BuildResult:
    """Build ``options.containerfile`` in ``options.context``; name the result with the tags."""
    from builder.instructions.parse import parse_containerfile

    containerfile = parse_containerfile(options.containerfile.text, options.containerfile.display)
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
    progress.stage_count = len(plan.stages)
    state = BuildState(store, options, containerfile, plan, progress)
    before = set(store.layout.blob_digests()) if (store.root / "blobs").exists() else set()
    before_layers = set(os.listdir(store.root / "layers")) if (store.root / "layers").exists() \
        else set()
    committed = False
    try:
        with store.pin():
            for position, stage_plan in enumerate(plan.stages, 1):
                result = StageExecutor(state, stage_plan, position).run()
                state.results[stage_plan.index] = result
            final = state.results[plan.target.index]
            record = _commit(state, final)
            committed = True
    except OSError as exc:
        raise StoreError(f"building image: {exc.filename or ''} {exc.strerror}".replace(
            ":  ", ": ")) from exc
    finally:
        state.close()
        if not committed:
            with contextlib.suppress(Exception):
                state.forget_new_data(before, before_layers)
    leftovers = unconsumed(options.build_args, plan.scope.consumed)
    if leftovers:
        progress.warning(f"one or more build args were not consumed: [{' '.join(leftovers)}]")
    return BuildResult(record.id, record.manifest_digest, record.names)


def _commit(state: BuildState, final: StageResult) -> Any:
    """Write the target stage's config and manifest and apply the tags."""
    from builder.image.commit import commit_image
    from builder.store import normalize_name

    options = state.options
    config = final.config
    config.created = state.created
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
