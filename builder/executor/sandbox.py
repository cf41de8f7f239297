"""Running one step's command inside a root filesystem: the caller's side.

``run_in_sandbox`` checks the step's ``RunSettings`` and decides its confinement
(``builder.executor.confinement``: ``--volume`` binds, capabilities, no_new_privs,
seccomp, ``--ulimit``, ``--device``, ``/dev/shm``, namespaces, id maps) and network
(``builder.executor.network``: ``host`` shares the host's network, ``ns:PATH`` joins
a namespace, ``none`` gets a new one with only loopback, and ``private``, the default,
a new one that slirp4netns or pasta connects to the outside). It resolves the user
inside the root and prepares the mounts on the host: cache directories and their
locks, private copies of binds whose writes are thrown away, overlays that hide the
ignore file's exclusions, ``U`` volumes given to the step's user first.

``isolation="chroot"`` (the default) needs no external runtime: the step's config
goes as JSON to ``python -m builder.executor.pid1``, which makes the namespaces and
runs the command in them. The caller puts that helper in the step's own cgroup
(``builder.executor.cgroups``; with ``--memory``, the CPU flags or ``--cgroup-parent``)
before it starts anything, maps the ids of its user namespace when not root, and, for a network that
slirp4netns or pasta connects, starts the stack on the helper's PID once its
namespaces exist, lets it go on when the interface is up, and stops the stack when
the step ends. ``isolation="oci"`` runs the step with runc or ``--runtime`` instead
(``builder.executor.ocirun``).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, replace
from pathlib import Path

from builder import userns
from builder.errors import SandboxError, UsageError
from builder.executor import cgroups, contextview
from builder.executor.confinement import Confinement, check_run_settings, plan
from builder.executor.network import (
    Network,
    RunningStack,
    debug,
    debugging,
    parse_mode,
    plan_network,
    start_stack,
)
from builder.executor.ocirun import run_oci
from builder.executor.runspec import MountSpec, RunSpec, etc_files, step_env
from builder.executor.users import ResolvedUser, resolve_user_in_root
from builder.runsettings import IdMapping, RunSettings

__all__ = ["run_in_sandbox"]


def run_in_sandbox(root: Path, spec: RunSpec) -> int:
    """Run ``spec`` in ``root``; returns the exit status (128+N for signal N)."""
    if not spec.argv:
        raise SandboxError("running step: no command given")
    if spec.isolation not in ("chroot", "oci"):
        raise SandboxError(f"running step: unknown isolation {spec.isolation!r}")
    settings = check_run_settings(spec.settings)
    network = plan_network(parse_mode(settings.network))
    if debugging():
        debug(f"network: {network.describe()}")
    confinement = plan(settings)
    if confinement.namespaces["uts"] != "new":  # the host's (or a joined) host name
        spec = replace(spec, hostname=socket.gethostname())
    spec = replace(spec, settings=settings)
    root = Path(os.path.realpath(root))
    user = resolve_user_in_root(root, spec.user)
    wanted = [*_volume_mounts(settings, user, confinement), *spec.mounts]
    targets = [m.target for m in wanted if m.target]
    for target in targets:
        if targets.count(target) > 1:
            raise UsageError(f"mounting {target}: more than one volume or RUN --mount uses "
                             "this target")
    with ExitStack() as stack:
        mounts = [stack.enter_context(_prepared(m)) for m in wanted]
        if spec.isolation == "oci":
            return run_oci(root, spec, user, mounts, network, confinement)
        return _run_chroot(root, spec, user, mounts, network, confinement)


def _volume_mounts(settings: RunSettings, user: ResolvedUser,
                   confinement: Confinement) -> list[MountSpec]:
    """The ``--volume`` binds; ``U`` gives the host directory to the step's user (its
    ids as the host sees them) first, as Buildah does."""
    out = []
    for volume in settings.volumes:
        source = Path(os.path.realpath(volume.source))
        if volume.chown:
            uid, gid = user.uid, user.gid
            step_ns = confinement.user_namespace
            if step_ns is not None and not step_ns.path:
                uid = _outside(step_ns.uid_map, uid)
                gid = _outside(step_ns.gid_map, gid)
            _chown_tree(source, uid, gid)
        out.append(MountSpec("bind", source, volume.target, readonly=volume.readonly,
                             discard_writes=volume.overlay, options=volume.options))
    return out


def _outside(maps: tuple[IdMapping, ...], value: int) -> int:
    for m in maps:
        if m.container <= value < m.container + m.size:
            return m.host + value - m.container
    return value


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    try:
        os.lchown(path, uid, gid)
        if path.is_dir() and not path.is_symlink():
            for directory, dirs, files in os.walk(path):
                for name in dirs + files:
                    os.lchown(os.path.join(directory, name), uid, gid)
    except OSError as exc:
        raise SandboxError(f"changing the owner of volume {path} (U): {exc.strerror}") from exc



@contextmanager
def _prepared(mount: MountSpec) -> Iterator[MountSpec]:
    """Host-side work for a mount: cache dirs and locks, private copies."""
    if mount.type == "cache" and mount.source is not None:
        source = Path(mount.source)
        fresh = not source.exists()
        source.mkdir(parents=True, exist_ok=True)
        if fresh:
            os.chown(source, mount.uid or 0, mount.gid or 0)
            os.chmod(source, 0o755 if mount.mode is None else mount.mode)
        lock_path = source.with_name(source.name + ".lock")
        with open(lock_path, "a+") as lock:
            if mount.sharing == "locked":
                fcntl.flock(lock, fcntl.LOCK_EX)
            elif mount.sharing == "private":
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    private = Path(tempfile.mkdtemp(prefix="pybuild-cache-"))
                    try:
                        yield _replace(mount, source=private)
                    finally:
                        shutil.rmtree(private, ignore_errors=True)
                    return
            else:
                fcntl.flock(lock, fcntl.LOCK_SH)
            yield _replace(mount, source=Path(os.path.realpath(source)))
        return
    if mount.source is not None and (mount.hidden or mount.discard_writes) and \
            os.path.isdir(mount.source) and not os.path.islink(mount.source):
        with contextview.view(Path(mount.source), mount.hidden,  # an overlay where it mounts
                              writable=mount.discard_writes) as shown:
            yield _replace(mount, source=shown, hidden=(), discard_writes=False,
                           readonly=mount.readonly and not mount.discard_writes)
        return
    if mount.discard_writes and mount.source is not None:
        scratch = Path(tempfile.mkdtemp(prefix="pybuild-bind-"))
        try:
            copy = scratch / "data"
            if Path(mount.source).is_dir():
                shutil.copytree(mount.source, copy, symlinks=True)
            else:
                shutil.copy2(mount.source, copy)
            yield _replace(mount, source=copy, readonly=False)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    if mount.source is not None:
        if not os.path.exists(mount.source):
            raise SandboxError(f"mounting {mount.target}: source {mount.source} does not exist")
        mount = _replace(mount, source=Path(os.path.realpath(mount.source)))
    yield mount


def _replace(mount: MountSpec, **changes: object) -> MountSpec:
    return replace(mount, **changes)  # type: ignore[arg-type]


def _mount_json(mount: MountSpec) -> dict[str, object]:
    out = asdict(mount)
    out["source"] = None if mount.source is None else os.fspath(mount.source)
    out["data"] = None if mount.data is None else base64.b64encode(mount.data).decode()
    return out


def _run_chroot(root: Path, spec: RunSpec, user: ResolvedUser, mounts: list[MountSpec],
                network: Network, confinement: Confinement) -> int:
    rootless = os.geteuid() != 0  # no user namespace yet: the step makes its own
    mode = network.mode
    namespaces = {**confinement.namespaces,
                  "net": "new" if mode.own_namespace else mode.path or "host"}
    config = {
        "root": os.fspath(root), "argv": spec.argv,
        "env": step_env(spec, user.home, mounts), "cwd": spec.cwd or "/",
        "uid": user.uid, "gid": user.gid, "groups": list(user.groups),
        "hostname": spec.hostname, "rootless": rootless,
        "userns": rootless or userns.inside() or confinement.user_namespace is not None,
        "stack": bool(network.tool),
        "mounts": [_mount_json(m) for m in mounts],
        "files": {k: base64.b64encode(v).decode()
                  for k, v in etc_files(root, spec, network).items()},
        **confinement.helper_config(), "namespaces": namespaces,
    }
    step_cgroup = _step_cgroup(spec.settings)
    if step_cgroup is not None:
        config["cgroup_mounts"] = step_cgroup.mounts()
    config_r, config_w = os.pipe()
    err_r, err_w = os.pipe()
    sync_parent_r, sync_child_w = os.pipe()
    sync_child_r, sync_parent_w = os.pipe()
    fds = (config_r, err_w, sync_child_w, sync_child_r)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "builder.executor.pid1", *map(str, fds)],
            stdin=None if spec.stdin else subprocess.DEVNULL, pass_fds=fds,
        )
    except OSError as exc:
        for fd in (*fds, config_w, err_r, sync_parent_r, sync_parent_w):
            os.close(fd)
        if step_cgroup is not None:
            step_cgroup.remove()
        raise SandboxError(f"starting sandbox: {exc.strerror}") from exc
    for fd in fds:
        os.close(fd)
    stack = None
    try:
        if step_cgroup is not None:  # before the helper reads its config and forks
            step_cgroup.join(proc.pid)
        with os.fdopen(config_w, "w") as pipe:
            json.dump(config, pipe)
        if rootless:
            _map_ids(proc.pid, sync_parent_r, sync_parent_w)
        if network.tool:
            stack = _connect(network, proc.pid, sync_parent_r, sync_parent_w)
        status = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        if stack is not None:
            stack.stop()
        os.close(sync_parent_r)
        os.close(sync_parent_w)
        if step_cgroup is not None:
            step_cgroup.remove()
    with os.fdopen(err_r, "rb") as pipe:
        error = pipe.read().decode(errors="replace").strip()
    if error:
        raise SandboxError(f"setting up sandbox: {error}")
    return 128 - status if status < 0 else status


def _step_cgroup(settings: RunSettings) -> cgroups.StepCgroup | None:
    if not settings.needs_cgroup:
        return None
    return cgroups.create(settings, secrets.token_hex(6))


def _connect(network: Network, pid: int, sync_r: int, sync_w: int) -> RunningStack | None:
    """Start the user-mode stack once the helper reports its network namespace."""
    if os.read(sync_r, 1) != b"n":
        return None  # the helper failed before; its error says why
    try:
        stack = start_stack(network, pid)
    except BaseException:
        os.write(sync_w, b"!")
        raise
    os.write(sync_w, b"g")
    return stack



def _map_ids(pid: int, sync_r: int, sync_w: int) -> None:
    """Map root in the child's new user namespace to us, plus our subordinate ids."""
    if os.read(sync_r, 1) != b"u":
        return  # the child failed before unsharing; its error says why
    uid, gid = os.getuid(), os.getgid()
    commands = userns.newidmap_commands(pid, uid, gid)
    try:
        for command in commands:
            subprocess.run(command, check=True, capture_output=True, text=True)
        if not commands:
            Path(f"/proc/{pid}/setgroups").write_text("deny")
            Path(f"/proc/{pid}/uid_map").write_text(f"0 {uid} 1")
            Path(f"/proc/{pid}/gid_map").write_text(f"0 {gid} 1")
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", None) or exc
        os.write(sync_w, b"!")
        raise SandboxError(f"mapping user namespace ids: {str(detail).strip()}") from exc
    os.write(sync_w, b"k")

