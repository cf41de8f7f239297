"""The Python API: working containers, builds, pushes and pulls, without the CLI.

A ``Session`` is one image store. ``session.from_image("alpine")`` gives a
``WorkingContainer`` to ``run``, ``copy``, ``add``, ``config`` and ``commit``,
exactly as the ``from``/``run``/``copy``/``config``/``commit`` commands do
(the state is the same, so the CLI sees API-made containers and back).
Options are frozen dataclasses; errors are ``builder.errors.PybuildError``.

For an ordinary user, creating a ``Session`` moves the whole process into
pybuild's user namespace, as the CLI does for its commands (``builder.userns``;
Buildah asks the same of Go programs that use it as a library): do it before the
program starts threads, or run the program under ``pybuild unshare``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import builder.cache.index  # noqa: F401 - registers the build cache's gc roots
from builder import replay, userns
from builder.context import open_context, read_containerfile
from builder.errors import StepError
from builder.executor.build import BuildOptions, build
from builder.executor.confinement import check_run_settings
from builder.executor.output import Progress
from builder.platform import parse_platform
from builder.registry.client import RegistryOptions
from builder.runsettings import RunSettings, Volume
from builder.store import Store
from builder.store.containers import (
    ConfigChanges,
    commit_container,
    copy_into_container,
    create_container,
    find_container,
    list_containers,
    mount_container,
    remove_container,
    run_container,
    unmount_container,
    update_config,
)
from builder.store.manifests import push_manifest_list
from builder.store.transports import (
    TRANSPORTS,
    import_image,
    parse_transport,
    pull_image,
    push_image,
)

# the public names; ``builder`` re-exports exactly these (a test holds the two equal)
__all__ = [
    "BuildRequest",
    "CommitOptions",
    "ConfigChanges",
    "CopyOptions",
    "FromOptions",
    "RunOptions",
    "RunSettings",
    "Session",
    "WorkingContainer",
]


@dataclass(frozen=True)
class FromOptions:
    name: str | None = None  # default: IMAGE-working-container
    pull: str = "missing"  # missing, always or never
    registry: RegistryOptions | None = None
    settings: RunSettings = RunSettings()  # RUN flags (network, volumes, limits ...) for runs


@dataclass(frozen=True)
class RunOptions:
    user: str | None = None  # default: the config's USER
    workdir: str | None = None  # default: the config's WORKDIR
    env: tuple[str, ...] = ()  # "K=V" added to the config's environment
    volumes: tuple[str, ...] = ()  # "HOST-DIR:CONTAINER-DIR[:OPTIONS]", as settings.volumes
    isolation: str = "chroot"  # chroot or oci
    # RunSettings(network="none", volumes=..., cap_add=..., memory=...); what is given
    # overrides the container's FromOptions.settings (volumes and the like add up)
    settings: RunSettings = RunSettings()


@dataclass(frozen=True)
class CopyOptions:
    chown: str | None = None  # "user[:group]" looked up in the container
    chmod: str | None = None  # octal or symbolic
    from_: str | None = None  # copy from this container or image instead of the host
    contextdir: Path | None = None  # relative host sources start here (default: cwd)


@dataclass(frozen=True)
class CommitOptions:
    format: str = "oci"  # oci or docker
    squash: bool = False
    rm: bool = False  # remove the container after committing
    compression: str = "gzip"  # gzip, zstd or none
    timestamp: int | None = None  # created time and layer mtimes (SOURCE_DATE_EPOCH)


@dataclass(frozen=True)
class BuildRequest:
    context: Path
    containerfile: str | None = None  # default: Containerfile or Dockerfile in the context
    tags: tuple[str, ...] = ()
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    platform: str | None = None  # os/arch[/variant]
    format: str = "oci"
    labels: dict[str, str] = field(default_factory=dict)
    timestamp: int | None = None
    quiet: bool = True  # no step output on stdout
    settings: RunSettings = RunSettings()  # RUN's network, volumes, capabilities, limits ...


class Session:
    """An image store (default: ``$PYBUILD_ROOT`` or the CLI's default root)."""

    def __init__(self, root: str | os.PathLike[str] | None = None, *,
                 driver: str | None = None) -> None:
        store_root = Path(root if root is not None else replay.default_root())
        userns.enter()
        self.store: Store = Store(store_root)
        self.driver = driver

    def from_image(self, image: str, options: FromOptions = FromOptions()) -> WorkingContainer:
        """A new working container from an image (pulled when needed) or "scratch"."""
        made = create_container(self.store, image, name=options.name, pull=options.pull,
                                driver=self.driver, registry_options=options.registry,
                                run_settings=check_run_settings(options.settings))
        return WorkingContainer(self.store, made.id, made.name)

    def container(self, name_or_id: str) -> WorkingContainer:
        """An existing working container (made here, by the CLI, or in another process)."""
        found = find_container(self.store, name_or_id)
        return WorkingContainer(self.store, found.id, found.name)

    def containers(self) -> list[WorkingContainer]:

        return [WorkingContainer(self.store, c.id, c.name) for c in list_containers(self.store)]

    def build(self, request: BuildRequest) -> str:
        """Build a context as ``pybuild bud`` does; returns the image ID."""
        context = open_context(request.context)
        options = BuildOptions(
            context=context, containerfile=read_containerfile(context, request.containerfile),
            platform=parse_platform(request.platform), tags=request.tags,
            build_args=dict(request.build_args), target=request.target, format=request.format,
            labels=dict(request.labels), timestamp=request.timestamp, driver=self.driver,
            run_settings=check_run_settings(request.settings),
        )
        return build(self.store, options, Progress(quiet=request.quiet)).image_id

    def push(self, image: str, dest: str, options: RegistryOptions | None = None) -> str:
        """Push a stored image to ``[docker://]host/repo[:tag]``; the manifest digest."""
        return push_image(self.store, image, dest.removeprefix("docker://"),
                          options or RegistryOptions())

    def pull(self, ref: str, options: RegistryOptions | None = None) -> str:
        """Pull an image into the store from a registry (``[docker://]REF``) or import it
        from ``oci:``, ``oci-archive:`` or ``docker-archive:``, verified as ``pybuild
        pull`` does; its image ID."""
        if parse_transport(ref)[0] in TRANSPORTS:
            return import_image(self.store, ref).id
        return pull_image(self.store, ref.removeprefix("docker://"),
                          options or RegistryOptions(), quiet=True).id

    def push_manifest_list(self, name: str, dest: str,
                           options: RegistryOptions | None = None) -> str:
        """Push a manifest list and its images; the list's digest."""
        return push_manifest_list(self.store, name, dest, options)


@dataclass(frozen=True)
class WorkingContainer:
    """A handle on one working container; every call reads and saves the stored state."""
    store: Store
    id: str
    name: str

    def run(self, argv: Sequence[str], options: RunOptions = RunOptions(), *,
            check: bool = True) -> int:
        """Run a command inside; writes persist. A non-zero status raises StepError
        unless ``check`` is False."""

        settings = options.settings
        if options.volumes:
            settings = dataclasses.replace(settings, volumes=settings.volumes + tuple(
                Volume.parse(v) for v in options.volumes))
        status = run_container(
            self.store, self.id, argv, user=options.user, workdir=options.workdir,
            env=options.env, settings=check_run_settings(settings),
            isolation=options.isolation,
        )
        if check and status != 0:
            raise StepError(f"running {list(argv)} in {self.name}: exit status {status}",
                            status=status)
        return status

    def copy(self, sources: Sequence[str | os.PathLike[str]], dest: str,
             options: CopyOptions = CopyOptions()) -> None:
        self._copy(sources, dest, options, add=False)

    def add(self, sources: Sequence[str | os.PathLike[str]], dest: str,
            options: CopyOptions = CopyOptions()) -> None:
        """Like copy, but URLs are downloaded and local archives unpacked."""
        self._copy(sources, dest, options, add=True)

    def _copy(self, sources: Sequence[str | os.PathLike[str]], dest: str,
              options: CopyOptions, *, add: bool) -> None:

        copy_into_container(self.store, self.id, [os.fspath(s) for s in sources], dest,
                            add=add, chown=options.chown, chmod=options.chmod,
                            from_=options.from_, contextdir=options.contextdir)

    def config(self, changes: ConfigChanges) -> None:

        update_config(self.store, self.id, changes)

    def commit(self, image: str | None = None, options: CommitOptions = CommitOptions()) -> str:
        """Write an image (named ``image`` when given); returns the image ID."""
        return commit_container(self.store, self.id, image, format=options.format,
                                squash=options.squash, rm=options.rm,
                                compression=options.compression,
                                timestamp=options.timestamp).id

    def mount(self) -> Path:

        return mount_container(self.store, self.id)

    def unmount(self) -> None:

        unmount_container(self.store, self.id)

    def remove(self) -> None:

        remove_container(self.store, self.id)
