"""Working containers: an image's root file system and config being edited, kept in the store.

A working container is what ``pybuild from`` makes and ``run``, ``copy``,
``config`` and ``commit`` act on, each in its own process. Its state is JSON
in ``ROOT/containers/<id>/state.json``; its files live next to it:

* ``overlay``: ``upper/`` (every write the container made) and ``work/``,
  mounted with the shared layer cache as lowers on ``merged/``. A process
  that needs the root mounts it and unmounts it again, unless ``mount``
  left it mounted, in which case it stays until ``umount``.
* ``vfs``: a plain ``root/`` with the base image applied, plus a metadata
  snapshot of it (``snapshot.pickle``) that ``commit`` compares against.

``commit`` turns everything the container changed since ``from`` into one
new layer on top of the base image's layers (or one squashed layer), as
Buildah does. State changes run under the store lock; operations that touch
the root take the container's own lock so two processes cannot race on it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import posixpath
import re
import secrets
import shlex
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from builder.context import resolve_in_root
from builder.errors import ContainerNotFound, ImageNotFound, StepError, StoreError, UsageError
from builder.executor import config as cfg
from builder.executor.config import DEFAULT_PATH, created_by, healthcheck_config
from builder.executor.copier import (
    CopyRequest,
    SourceTree,
    check_chmod,
    copy_into,
    download,
)
from builder.executor.runspec import RunSpec
from builder.executor.sandbox import run_in_sandbox
from builder.executor.users import copy_owner
from builder.image.layer import Layer, LayerEntry, image_layers, tree_entries, write_layer
from builder.image.layout import write_atomic
from builder.image.spec import ContainerConfig, Descriptor, History, ImageConfig
from builder.platform import host_platform
from builder.registry.client import RegistryOptions
from builder.rootfs.workspace import Workspace, detect_driver
from builder.runsettings import RunSettings
from builder.store.store import ImageRecord, Store, register_gc_roots
from builder.store.transports import import_image, parse_transport, pull_image

__all__ = [
    "ConfigChanges",
    "Container",
    "commit_container",
    "container_root",
    "copy_into_container",
    "create_container",
    "find_container",
    "inspect_container",
    "is_container",
    "list_containers",
    "mount_container",
    "remove_container",
    "rename_container",
    "run_container",
    "unmount_container",
    "update_config",
]

SCRATCH = "scratch"
_STATE = "state.json"
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


@dataclass
class Container:
    """The saved state of one working container."""

    id: str
    name: str
    image_id: str  # the base image's ID (config digest); "" for scratch
    image_name: str  # the base image's first name, or "scratch"
    layers: list[Layer]  # the base image's, bottom first
    config: ImageConfig
    driver: str
    created: str
    annotations: dict[str, str] = field(default_factory=dict)
    created_by: str = ""  # history text for the next commit
    mounted: bool = False  # left mounted by ``mount`` until ``umount``
    run_settings: RunSettings = RunSettings()  # ``from``'s --network, --dns, ... for ``run``

    def to_json(self) -> bytes:
        return json.dumps({
            "id": self.id, "name": self.name, "image_id": self.image_id,
            "image_name": self.image_name, "layers": [x.to_json() for x in self.layers],
            "config": json.loads(self.config.to_json("docker")), "driver": self.driver,
            "created": self.created, "annotations": self.annotations,
            "created_by": self.created_by, "mounted": self.mounted,
            "run_settings": self.run_settings.to_json(),
        }, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Container:
        d = json.loads(data)
        return cls(
            id=d["id"], name=d["name"], image_id=d["image_id"], image_name=d["image_name"],
            layers=_layers_from_json(d), config=ImageConfig.from_json(d["config"]),
            driver=d["driver"], created=d["created"], annotations=d.get("annotations") or {},
            created_by=d.get("created_by") or "", mounted=bool(d.get("mounted")),
            run_settings=RunSettings.from_json(d.get("run_settings")),
        )


def _layers_from_json(state: dict[str, Any]) -> list[Layer]:
    """The layers of a saved container (before this format: (digest, diff_id, media type)
    triples beside the descriptors)."""
    saved = state["layers"]
    if saved and isinstance(saved[0], list):
        return image_layers([Descriptor.from_json(d) for d in state["base_descriptors"]],
                            [diff_id for _, diff_id, _ in saved])
    return [Layer.from_json(x) for x in saved]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _containers_dir(store: Store) -> Path:
    return store.root / "containers"


def _directory(store: Store, container: Container) -> Path:
    return _containers_dir(store) / container.id


def _save(store: Store, container: Container) -> None:

    write_atomic(_directory(store, container) / _STATE, container.to_json(),
                 tmp_dir=store.tmp_dir())


# -- finding containers


def list_containers(store: Store) -> list[Container]:
    """Every working container in the store, oldest first."""
    base = _containers_dir(store)
    if not base.is_dir():
        return []
    out = []
    for entry in os.scandir(base):
        if entry.name.startswith("."):
            continue  # being removed
        try:
            out.append(Container.from_json(Path(entry.path, _STATE).read_bytes()))
        except (OSError, ValueError, KeyError):
            continue  # being created or removed by another process
    return sorted(out, key=lambda c: (c.created, c.name))


class _ContainerRoots:
    """Garbage collection and prune keep the layers working containers are built on,
    even when their image is gone."""
    directory = "containers"

    def blobs(self, store: Store) -> set[str]:
        return {layer.digest for c in list_containers(store) for layer in c.layers}

    def layers(self, store: Store) -> set[str]:
        return {layer.diff_id for c in list_containers(store) for layer in c.layers}


GC_ROOTS = _ContainerRoots()
register_gc_roots(GC_ROOTS)


def find_container(store: Store, ref: str) -> Container:
    """A container by name, full ID or unique ID prefix."""
    containers = list_containers(store)
    for c in containers:
        if ref in (c.name, c.id):
            return c
    matches = [c for c in containers if len(ref) >= 3 and c.id.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise StoreError(f"looking up container {ref!r}: ambiguous, it matches "
                         f"{len(matches)} containers")
    raise ContainerNotFound(f"looking up container {ref!r}: no such working container")


def is_container(store: Store, ref: str) -> bool:
    """Whether ``ref`` names a working container (``run`` uses it to choose)."""
    try:
        find_container(store, ref)
    except StoreError:
        return False
    return True


def inspect_container(store: Store, ref: str) -> dict[str, Any]:
    """A Buildah-like description of a working container."""
    container = find_container(store, ref)
    config = json.loads(container.config.to_json("docker"))
    workspace = _workspace(store, container)
    return {
        "Type": "buildah 0.0.1",
        "FromImage": container.image_name,
        "FromImageID": container.image_id.removeprefix("sha256:"),
        "Container": container.name,
        "ContainerID": container.id,
        "Created": container.created,
        "StorageDriver": container.driver,
        "MountPoint": str(workspace.root) if workspace.mounted else "",
        "Mounted": container.mounted,
        "Architecture": container.config.architecture,
        "OS": container.config.os,
        "Config": config["config"],
        "OCIv1": config,
        "ImageAnnotations": container.annotations,
        "CreatedBy": container.created_by,
        "Layers": [layer.diff_id for layer in container.layers],
    }


# -- creating


def _default_name(store: Store, image_name: str) -> str:
    if image_name == SCRATCH:
        stem = "working-container"
    else:
        last = image_name.rpartition("/")[2].partition("@")[0].partition(":")[0]
        stem = f"{last}-working-container"
    taken = {c.name for c in list_containers(store)}
    if stem not in taken:
        return stem
    number = 1
    while f"{stem}-{number}" in taken:
        number += 1
    return f"{stem}-{number}"


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise UsageError(f"naming container {name!r}: names are letters, digits, '_', '.', '-'")


def _resolve_image(store: Store, image: str, pull: str,
                   options: RegistryOptions | None) -> ImageRecord:

    if pull not in ("missing", "always", "never"):
        raise UsageError(f"checking --pull: unknown policy {pull!r} (missing, always or never)")
    transport, rest = parse_transport(image)
    if transport in ("oci", "oci-archive", "docker-archive"):
        return import_image(store, image)
    if pull != "always":
        try:
            return store.lookup(rest)
        except ImageNotFound:
            if pull == "never":
                raise

    return pull_image(store, rest, options or RegistryOptions(), quiet=True)


def create_container(
    store: Store, image: str, *, name: str | None = None, pull: str = "missing",
    driver: str | None = None, registry_options: RegistryOptions | None = None,
    run_settings: RunSettings | None = None,
) -> Container:
    """A new working container from ``image`` (a stored or pullable image, or "scratch");
    ``run_settings`` apply to its later runs."""
    if name is not None:
        _check_name(name)
    if image.lower() == SCRATCH:
        platform = host_platform()
        config = ImageConfig(architecture=platform.architecture, os=platform.os,
                             variant=platform.variant or None,
                             config=ContainerConfig(env=[DEFAULT_PATH]))
        image_id, image_name, layers = "", SCRATCH, []
    else:
        record = _resolve_image(store, image, pull, registry_options)
        config = ImageConfig.from_json(record.config.to_json("docker"))
        image_id = record.id
        image_name = record.names[0] if record.names else record.id
        layers = record.layers
    driver = driver or detect_driver(store.root)
    container = Container(
        id=secrets.token_hex(32), name=name or "", image_id=image_id, image_name=image_name,
        layers=layers, config=config, driver=driver,
        created=_now(), run_settings=run_settings or RunSettings(),
    )
    # Extract and copy outside the lock, in this process's temp dir (removed if we
    # die); only naming and the final rename happen under the lock.
    staging = store.tmp_dir() / f"container-{container.id}"
    staging.mkdir()
    try:
        _prepare_root(store, container, staging)
        with store.lock():
            container.name = name or _default_name(store, image_name)
            if any(c.name == container.name for c in list_containers(store)):
                raise StoreError(
                    f"creating container {container.name!r}: the name is already in use",
                    hint="choose another --name, or rename or rm the other container")
            directory = _directory(store, container)
            directory.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staging, directory)
            _save(store, container)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return container


def _prepare_root(store: Store, container: Container, directory: Path) -> None:
    """Lay out the container's files (see ``Workspace.prepare``)."""
    Workspace.prepare(store, container.layers, directory, driver=container.driver)


# -- the root file system


@contextlib.contextmanager
def _container_lock(store: Store, container: Container) -> Iterator[None]:
    fd = os.open(_directory(store, container) / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _workspace(store: Store, container: Container) -> Workspace:
    return Workspace.attach(store, _directory(store, container), container.driver,
                            container.layers)


@contextlib.contextmanager
def container_root(store: Store, container: Container) -> Iterator[Path]:
    """The container's root directory, mounted for the duration when it is not already."""
    workspace = _workspace(store, container)
    was_mounted = workspace.mounted
    try:
        root = workspace.mount()
    except StoreError as exc:
        raise StoreError(f"mounting container {container.name}: {exc}") from exc
    try:
        yield root
    finally:
        if not was_mounted and not container.mounted:
            workspace.unmount()


def mount_container(store: Store, ref: str) -> Path:
    """Mount the root and leave it mounted (across processes) until ``unmount_container``."""
    with store.lock():
        container = find_container(store, ref)
        root = _workspace(store, container).mount()
        container.mounted = True
        _save(store, container)
    return root


def unmount_container(store: Store, ref: str) -> None:
    with store.lock():
        container = find_container(store, ref)
        _workspace(store, container).unmount()
        container.mounted = False
        _save(store, container)


def _changes(store: Store, container: Container) -> list[LayerEntry]:
    """What the container changed since it was made, as layer entries."""
    return _workspace(store, container).changes()


# -- run, copy, config


def run_container(
    store: Store, ref: str, argv: Sequence[str], *, user: str | None = None,
    workdir: str | None = None, env: Sequence[str] = (), settings: RunSettings | None = None,
    isolation: str = "chroot", hostname: str | None = None,
    stdin: bool = False,
) -> int:
    """Run ``argv`` in the working container (the sandbox RUN uses); writes persist.

    Without argv the config's entrypoint and cmd run; ``settings`` given override
    those the container was made with. Returns the exit status.
    """
    container = find_container(store, ref)
    config = container.config.config
    command = list(argv) or [*(config.entrypoint or []), *(config.cmd or [])]
    if not command:
        raise UsageError(f"running in container {container.name}: no command given")
    spec = RunSpec(
        argv=command, env=[*(config.env or []), *(e if "=" in e else f"{e}=" for e in env)],
        cwd=workdir or config.working_dir or "/",
        user=config.user if user is None else user, hostname=hostname or container.id[:12],
        settings=(settings or RunSettings()).merged_over(container.run_settings),
        stdin=stdin, isolation=isolation,
    )
    with _container_lock(store, container), container_root(store, container) as root:
        _ensure_dir(root, spec.cwd)
        status = run_in_sandbox(root, spec)
    with store.lock():
        current = find_container(store, container.id)
        current.created_by = created_by(" ".join(command), run=True)
        _save(store, current)
    return status


def _ensure_dir(root: Path, path: str) -> None:

    target = resolve_in_root(root, path)
    if not target.exists():
        target.mkdir(parents=True, mode=0o755)


@contextlib.contextmanager
def _source_root(store: Store, ref: str, driver: str | None) -> Iterator[Path]:
    """The root of a container, or of an image opened for the copy."""
    try:
        other = find_container(store, ref)
    except ContainerNotFound:
        other = None
    if other is not None:
        with container_root(store, other) as root:
            yield root
        return

    try:
        record = store.lookup(ref)
    except ImageNotFound:
        raise ContainerNotFound(f"copying --from {ref!r}: no such container or image") from None
    with Workspace.create(store, record.layers, driver=driver) as workspace:
        yield workspace.root


def copy_into_container(
    store: Store, ref: str, sources: Sequence[str], dest: str, *, add: bool = False,
    chown: str | None = None, chmod: str | None = None, from_: str | None = None,
    contextdir: Path | None = None,
) -> None:
    """COPY (or ADD) ``sources`` to ``dest`` in the container.

    Sources are host paths (relative ones from ``contextdir``, default the
    current directory), paths in ``from_`` (a container or image), or for ADD
    URLs. ``dest`` is relative to the config's working directory.
    """
    if not sources:
        raise UsageError("copying into a container: no source given")
    container = find_container(store, ref)
    keyword = "ADD" if add else "COPY"
    if chmod:
        check_chmod(chmod)
    workdir = container.config.config.working_dir or "/"
    full_dest = dest if dest.startswith("/") else posixpath.join(workdir, dest)
    dest_is_dir = dest.endswith(("/", "/.")) or dest in (".", "./")
    with contextlib.ExitStack() as stack:
        stack.enter_context(_container_lock(store, container))
        root = stack.enter_context(container_root(store, container))
        if from_ is not None:
            tree = SourceTree(stack.enter_context(_source_root(store, from_, container.driver)))
            paths = list(sources)
        else:
            base = Path(contextdir or os.getcwd()).absolute()
            tree = SourceTree(Path("/"))
            paths = [s if re.match(r"^https?://", s, re.I) and add
                     else os.path.normpath(base / s) for s in sources]
        request = CopyRequest(
            keyword=keyword, sources=tuple(paths), dest=full_dest, dest_is_dir=dest_is_dir,
            owner=copy_owner(root, chown) if chown else None, chmod=chmod,
        )
        copy_into(root, request, tree, download if add else None)
    with store.lock():
        current = find_container(store, container.id)
        current.created_by = created_by(f"{keyword} {' '.join(sources)} {dest}")
        _save(store, current)


@dataclass(frozen=True)
class ConfigChanges:
    """Edits ``config`` makes; None (or empty) leaves a field alone.

    ``env``, ``labels``, ``ports``, ``volumes``, ``annotations``: "K=V" sets,
    "K-" removes (ports and volumes: "P" adds, "P-" removes). ``cmd`` and
    ``entrypoint`` are a JSON array or shell form (cmd is split into words,
    entrypoint runs through ``/bin/sh -c``), as in Buildah; "" clears them.
    """
    env: tuple[str, ...] = ()
    cmd: str | None = None
    entrypoint: str | None = None
    labels: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    user: str | None = None
    workingdir: str | None = None
    author: str | None = None
    created_by: str | None = None
    stop_signal: str | None = None
    annotations: tuple[str, ...] = ()
    healthcheck: str | None = None  # "CMD ..." / "CMD-SHELL ..." / shell text, or "NONE"
    healthcheck_interval: str | None = None
    healthcheck_timeout: str | None = None
    healthcheck_retries: int | None = None
    healthcheck_start_period: str | None = None
    shell: str | None = None
    architecture: str | None = None
    os: str | None = None


def _command(text: str, shell: list[str], via_shell: bool) -> list[str] | None:

    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return value
    if via_shell:
        return [*shell, text]
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"parsing command {text!r}: {exc}") from exc


def _edit_pairs(current: dict[str, str] | None, items: Sequence[str], what: str
                ) -> dict[str, str] | None:
    out = dict(current or {})
    for item in items:
        key, sep, value = item.partition("=")
        if not sep and key.endswith("-"):
            out.pop(key[:-1], None)
        elif not key:
            raise UsageError(f"parsing {what} {item!r}: expected KEY=VALUE or KEY-")
        else:
            out[key] = value
    return out or None


def _edit_set(current: dict[str, Any] | None, items: Sequence[str], normalize: Any
              ) -> dict[str, Any] | None:
    out = dict(current or {})
    for item in items:
        if item.endswith("-"):
            out.pop(normalize(item[:-1]), None)
        else:
            out[normalize(item)] = {}
    return out or None


def apply_config(container: Container, changes: ConfigChanges) -> None:
    """Apply ``changes`` to the container's config (in memory)."""

    image = container.config
    config = image.config
    shell = list(config.shell or cfg.DEFAULT_SHELL)
    try:
        if changes.env:
            env = dict(pair.partition("=")[::2] for pair in config.env or [])
            for item in changes.env:
                key, sep, value = item.partition("=")
                if not sep and key.endswith("-"):
                    config.env = [p for p in config.env or [] if p.partition("=")[0] != key[:-1]]
                    continue
                if not sep:
                    value = os.environ.get(key, env.get(key, ""))
                cfg.set_env(config, key, value)
        if changes.shell is not None:
            config.shell = _command(changes.shell, shell, False)
            shell = list(config.shell or cfg.DEFAULT_SHELL)
        if changes.entrypoint is not None:
            config.entrypoint = _command(changes.entrypoint, shell, True)
        if changes.cmd is not None:
            config.cmd = _command(changes.cmd, shell, False)
        config.labels = _edit_pairs(config.labels, changes.labels, "--label") \
            if changes.labels else config.labels
        if changes.ports:
            config.exposed_ports = _edit_set(config.exposed_ports, changes.ports, cfg.parse_port)
        if changes.volumes:
            config.volumes = _edit_set(config.volumes, changes.volumes, lambda v: v)
        if changes.user is not None:
            config.user = changes.user
        if changes.workingdir is not None:
            config.working_dir = cfg.workdir_path(config.working_dir, changes.workingdir) \
                if changes.workingdir else ""
        if changes.stop_signal is not None:
            config.stop_signal = changes.stop_signal or None
        _apply_healthcheck(config, changes)
    except StepError as exc:
        raise UsageError(f"configuring container {container.name}: {exc.message}") from exc
    if changes.author is not None:
        image.author = changes.author or None
    if changes.architecture is not None:
        image.architecture = changes.architecture
    if changes.os is not None:
        image.os = changes.os
    if changes.created_by is not None:
        container.created_by = changes.created_by
    if changes.annotations:
        container.annotations = _edit_pairs(container.annotations, changes.annotations,
                                            "--annotation") or {}


def _apply_healthcheck(config: ContainerConfig, changes: ConfigChanges) -> None:

    if changes.healthcheck is None:
        return
    text = changes.healthcheck.strip()
    if text.upper() == "NONE":
        config.healthcheck = {"Test": ["NONE"]}
        return
    if not text:
        config.healthcheck = None
        return
    keyword, _, rest = text.partition(" ")
    if keyword == "CMD-SHELL":
        test = ["CMD-SHELL", rest.strip()]
    elif keyword == "CMD":
        argv = _command(rest.strip(), [], False) or []
        test = ["CMD", *argv]
    else:
        test = ["CMD-SHELL", text]
    config.healthcheck = healthcheck_config(
        test, interval=changes.healthcheck_interval, timeout=changes.healthcheck_timeout,
        start_period=changes.healthcheck_start_period, retries=changes.healthcheck_retries)


def update_config(store: Store, ref: str, changes: ConfigChanges) -> Container:
    """Apply ``changes`` to a stored container's config and save it."""
    with store.lock():
        container = find_container(store, ref)
        apply_config(container, changes)
        _save(store, container)
    return container


# -- commit, rm, rename


def commit_container(
    store: Store, ref: str, image: str | None = None, *, format: str = "oci",
    squash: bool = False, rm: bool = False, compression: str = "gzip",
    timestamp: int | None = None,
) -> ImageRecord:
    """Write an image: the base layers plus one layer of the container's changes (or one
    squashed layer of the whole root), its config and a history entry."""
    if format not in ("oci", "docker"):
        raise UsageError(f"checking --format: unknown format {format!r} (expected oci or docker)")
    container = find_container(store, ref)
    layer_format = "docker" if format == "docker" and compression == "gzip" else "oci"
    created = _now() if timestamp is None else time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
    config = ImageConfig.from_json(container.config.to_json("docker"))
    config.created = created
    layers = list(container.layers)
    history = History(created=created, created_by=container.created_by or None,
                      author=config.author)
    with store.pin(), _container_lock(store, container):
        with container_root(store, container) as root:
            if squash:
                entries = tree_entries(root)
            else:
                entries = _changes(store, container)
            new = None
            if entries or squash:
                new = write_layer(entries, store.layout, compression=compression,
                                  timestamp=timestamp, format=layer_format)
        if squash:
            layers = []
            config.history = [h for h in config.history if h.empty_layer]
        if new is None:
            history.empty_layer = True
        else:
            layers.append(new)
        config.history.append(history)
        names = [image] if image else []
        annotations = dict(container.annotations) or None
        record = store.commit(config, layers, format=format, annotations=annotations,
                              names=names)
    if rm:
        remove_container(store, container.id)
    return record


def remove_container(store: Store, ref: str) -> Container:
    """Unmount and delete a working container; returns what it was."""
    with store.lock():
        container = find_container(store, ref)
        _workspace(store, container).unmount()
        directory = _directory(store, container)
        trash = _containers_dir(store) / f".rm-{container.id}"
        os.rename(directory, trash)
    shutil.rmtree(trash, ignore_errors=True)
    return container


def rename_container(store: Store, ref: str, new_name: str) -> Container:
    _check_name(new_name)
    with store.lock():
        container = find_container(store, ref)
        if any(c.name == new_name and c.id != container.id for c in list_containers(store)):
            raise StoreError(f"renaming container {container.name!r}: the name {new_name!r} "
                             "is already in use")
        container = replace(container, name=new_name)
        _save(store, container)
    return container
