"""Running one step's command inside a root filesystem.

``isolation="chroot"`` (the default) needs no external runtime. The caller's
process starts ``python -m builder.executor.sandbox``, which unshares mount,
PID, IPC and UTS namespaces (plus network, or joins one, unless the network is
``host``; and a user namespace when not root) and forks the namespace's PID 1. PID 1
pivots into the root, mounts a fresh ``/proc``, a minimal ``/dev`` on
tmpfs, read-only ``/sys``, the generated ``/etc/hosts``, ``/etc/resolv.conf``
and ``/etc/hostname`` and the step's mounts, then forks the command with the
resolved user, its capabilities, rlimits and seccomp filter. When the
command exits PID 1 kills whatever it left behind, unmounts, removes every
mount point it had to create (restoring the parents' mtimes) and exits with
the command's status (128+N for signal N). Mount points therefore never
reach a layer, and an image without ``/etc`` does not gain one.

Resources and security (``builder.executor.confinement`` decides, from the step's
``RunSettings``): ``--volume`` binds (``O``: writable, the writes thrown away;
``U``: the host directory given to the step's user first),
capabilities (Buildah's default set, ``--cap-add``/``--cap-drop``), no_new_privs
only with ``--security-opt no-new-privileges``, the default or given seccomp
profile as a BPF filter, ``--ulimit``, ``--device`` nodes bound into ``/dev``, the
size of ``/dev/shm``, PID/IPC/UTS namespaces private, the host's or joined
(``--pid``, ``--ipc``, ``--uts``), a cgroup namespace with ``--cgroupns private``,
a user namespace of the step's own (``--userns``, id maps: the root is then an
idmapped mount, so files keep their ids in the layer), and a cgroup with the
limits of ``--memory`` and the CPU flags (``builder.executor.cgroups``), joined
before the helper starts anything and shown read-only at ``/sys/fs/cgroup``.

Network (``builder.executor.network``): ``host`` shares the host's network,
``ns:PATH`` joins a namespace, ``none`` gets a new one with only loopback, and
``private`` (the default) a new one that slirp4netns or pasta connects to the
outside. For those the helper reports once its namespaces exist; the caller
starts the stack on the helper's PID and lets it go on when the interface is up,
and stops the stack when the step ends. Proxy variables from the caller's
environment (HTTP_PROXY and the rest) reach the step unless ``--http-proxy=false``;
they are added here, so they never reach an image's config, history or cache key.

``isolation="oci"`` writes an OCI runtime bundle with the same settings and runs
``runc`` (or ``--runtime``, with ``--runtime-flag`` and ``--hooks-dir`` hooks).
"""

from __future__ import annotations

import base64
import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.errors import SandboxError, UsageError
from builder.rootfs.paths import resolve_in_root  # at the top: PID 1 imports nothing after pivot
from builder.runsettings import IdMapping, RunSettings

if TYPE_CHECKING:
    from builder.executor.cgroups import StepCgroup
    from builder.executor.confinement import Confinement
    from builder.executor.network import Network, RunningStack
    from builder.executor.users import ResolvedUser

__all__ = ["MountSpec", "RunSpec", "run_in_sandbox"]

_CLONE_NEWNS = 0x00020000
_CLONE_NEWCGROUP = 0x02000000
_CLONE_NEWUTS = 0x04000000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
_NAMESPACE_FLAGS = {"pid": _CLONE_NEWPID, "ipc": _CLONE_NEWIPC, "uts": _CLONE_NEWUTS,
                    "cgroup": _CLONE_NEWCGROUP, "net": _CLONE_NEWNET}
_PR_SET_PDEATHSIG = 1
_PR_CAPBSET_DROP = 24
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_OLD_ROOT = "/.pybuild-oldroot"
_STAGE = "/.pybuild-stage"
_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
_READONLY_PROC = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs")
_MASKED_PROC = ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug")


@dataclass(frozen=True)
class MountSpec:
    """One mount for a step.

    ``type`` is bind, cache (a bind of a persistent directory), tmpfs or
    secret. A secret's bytes are in ``data``; it is written to a private
    tmpfs and bound at ``target`` (or only exported as ``env`` when ``target``
    is empty). ``discard_writes`` gives a writable bind whose writes are
    thrown away (a private copy). ``sharing`` applies to caches: shared,
    private or locked. ``hidden`` lists paths below a bind's source (relative to it)
    that the step must not see: the ignore file's exclusions in a bind of the context
    (``builder.executor.contextview``). ``options`` are a volume's nosuid, nodev, noexec
    and bind.
    """

    type: str
    source: Path | None
    target: str
    readonly: bool = True
    sharing: str = "shared"
    uid: int | None = None
    gid: int | None = None
    mode: int | None = None
    size: int | None = None
    discard_writes: bool = False
    data: bytes | None = None
    env: str | None = None
    hidden: tuple[str, ...] = ()
    options: tuple[str, ...] = ()  # a volume's nosuid, nodev, noexec; bind (not recursive)


@dataclass(frozen=True)
class RunSpec:
    """What to run and how; ``user`` is a USER value resolved inside the root;
    ``settings`` holds the network mode (``settings.network``) and the rest of what
    the RUN flags set (volumes, capabilities, limits, namespaces ...)."""

    argv: list[str]
    env: list[str]
    cwd: str = "/"
    user: str = ""
    hostname: str = "pybuild"
    mounts: tuple[MountSpec, ...] = ()
    stdin: bool = False
    isolation: str = "chroot"
    settings: RunSettings = field(default=RunSettings())


def run_in_sandbox(root: Path, spec: RunSpec) -> int:
    """Run ``spec`` in ``root``; returns the exit status (128+N for signal N)."""
    from builder.executor.confinement import check_run_settings, plan
    from builder.executor.network import debug, debugging, parse_mode, plan_network

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
        import socket

        spec = replace(spec, hostname=socket.gethostname())
    spec = replace(spec, settings=settings)
    root = Path(os.path.realpath(root))
    from builder.executor.users import resolve_user_in_root

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
            return _run_oci(root, spec, user, mounts, network, confinement)
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


def _env_with_defaults(spec: RunSpec, home: str, mounts: list[MountSpec]) -> list[str]:
    env = list(spec.env)
    names = {item.partition("=")[0] for item in env}
    if spec.settings.passes_proxies:  # the caller's proxies, under everything the step sets
        from builder.runsettings import PROXY_VARIABLES

        env = [f"{k}={os.environ[k]}" for k in PROXY_VARIABLES
               if k in os.environ and k not in names] + env
    if "HOME" not in names:
        env.append(f"HOME={home}")
    if "PATH" not in names:
        env.append("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    for m in mounts:
        if m.type == "secret" and m.env and m.data is not None:
            env.append(f"{m.env}={m.data.decode('utf-8', 'replace')}")
    return env


def _etc_files(root: Path, spec: RunSpec, network: Network) -> dict[str, bytes]:
    """Contents bound at /etc/hosts, /etc/resolv.conf and /etc/hostname (the first two
    are left out when ``--no-hosts`` or ``--dns=none`` leave them to the image)."""
    from builder.executor.network import hosts_file, resolv_conf

    try:
        own = resolve_in_root(root, "/etc/hosts").read_text(errors="replace")
    except OSError:
        own = ""
    try:
        host_resolv = Path("/etc/resolv.conf").read_text(errors="replace")
    except OSError:
        host_resolv = ""
    files = {"/etc/hosts": hosts_file(network, spec.settings, own, spec.hostname),
             "/etc/resolv.conf": resolv_conf(network, spec.settings, host_resolv),
             "/etc/hostname": f"{spec.hostname}\n".encode()}
    return {target: data for target, data in files.items() if data is not None}


@contextmanager
def _prepared(mount: MountSpec) -> Iterator[MountSpec]:
    """Host-side work for a mount: cache dirs and locks, private copies."""
    import fcntl
    import tempfile

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
        from builder.executor.contextview import view  # an overlay where it mounts

        with view(Path(mount.source), mount.hidden, writable=mount.discard_writes) as shown:
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
    from builder import userns

    rootless = os.geteuid() != 0  # no user namespace yet: the step makes its own
    mode = network.mode
    namespaces = {**confinement.namespaces,
                  "net": "new" if mode.own_namespace else mode.path or "host"}
    config = {
        "root": os.fspath(root), "argv": spec.argv,
        "env": _env_with_defaults(spec, user.home, mounts), "cwd": spec.cwd or "/",
        "uid": user.uid, "gid": user.gid, "groups": list(user.groups),
        "hostname": spec.hostname, "rootless": rootless,
        "userns": rootless or userns.inside() or confinement.user_namespace is not None,
        "stack": bool(network.tool),
        "mounts": [_mount_json(m) for m in mounts],
        "files": {k: base64.b64encode(v).decode()
                  for k, v in _etc_files(root, spec, network).items()},
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
            [sys.executable, "-m", "builder.executor.sandbox", *map(str, fds)],
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


def _step_cgroup(settings: RunSettings) -> StepCgroup | None:
    if not settings.needs_cgroup:
        return None
    import secrets

    from builder.executor.cgroups import create

    return create(settings, secrets.token_hex(6))


def _connect(network: Network, pid: int, sync_r: int, sync_w: int) -> RunningStack | None:
    """Start the user-mode stack once the helper reports its network namespace."""
    from builder.executor.network import start_stack

    if os.read(sync_r, 1) != b"n":
        return None  # the helper failed before; its error says why
    try:
        stack = start_stack(network, pid)
    except BaseException:
        os.write(sync_w, b"!")
        raise
    os.write(sync_w, b"g")
    return stack


def _runtime(settings: RunSettings) -> str:
    """The OCI runtime: ``--runtime`` (a path or a name on PATH), ``$BUILDAH_RUNTIME``,
    or runc."""
    wanted = settings.runtime or os.environ.get("BUILDAH_RUNTIME") or "runc"
    found = wanted if "/" in wanted else shutil.which(wanted)
    if found is None or not os.access(found, os.X_OK):
        raise SandboxError(f"running step with oci isolation: runtime {wanted} not found",
                           hint="install runc, name another with --runtime, or use "
                                "--isolation chroot")
    return found


def _oci_namespaces(confinement: Confinement) -> list[dict[str, str]]:
    out: list[dict[str, str]] = [{"type": "mount"}]
    for kind in ("pid", "ipc", "uts", "cgroup"):
        value = confinement.namespaces[kind]
        if value == "new":
            out.append({"type": kind})
        elif value != "host":
            out.append({"type": kind, "path": value})
    step_ns = confinement.user_namespace
    if step_ns is not None:
        out.append({"type": "user", "path": step_ns.path} if step_ns.path else {"type": "user"})
    return out


def _oci_process(spec: RunSpec, user: ResolvedUser, mounts: list[MountSpec],
                 confinement: Confinement) -> dict[str, Any]:
    caps = list(confinement.capabilities)
    process: dict[str, Any] = {
        "terminal": False, "args": spec.argv, "cwd": spec.cwd or "/",
        "env": _env_with_defaults(spec, user.home, mounts),
        "user": {"uid": user.uid, "gid": user.gid, "additionalGids": list(user.groups)},
        "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
        "noNewPrivileges": confinement.no_new_privileges,
        "rlimits": [{"type": limit.resource, "soft": _oci_limit(limit.soft),
                     "hard": _oci_limit(limit.hard)} for limit in confinement.rlimits],
    }
    if confinement.apparmor:
        process["apparmorProfile"] = confinement.apparmor
    return process


def _oci_limit(value: int) -> int:
    return 2 ** 64 - 1 if value == -1 else value


def _run_oci(root: Path, spec: RunSpec, user: ResolvedUser, mounts: list[MountSpec],
             network: Network, confinement: Confinement) -> int:
    """Run the step with runc (or ``--runtime``) from a generated OCI runtime bundle."""
    import tempfile
    import uuid

    from builder import userns
    from builder.executor.cgroups import StepCgroup, missing_parents, oci_resources
    from builder.executor.ocihooks import hooks_for

    settings = spec.settings
    runtime = _runtime(settings)
    if os.geteuid() != 0 or userns.inside():
        raise SandboxError("running step with oci isolation: needs root",
                           hint="rootless builds use --isolation chroot")
    bundle = Path(tempfile.mkdtemp(prefix="pybuild-oci-"))
    holder: subprocess.Popen[bytes] | None = None
    stack: RunningStack | None = None
    name = f"pybuild-{uuid.uuid4().hex[:12]}"
    made: list[Path] = []
    try:
        shm: dict[str, object] = {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                                  "options": ["nosuid", "noexec", "nodev", "mode=1777",
                                              f"size={confinement.shm_size}"]}
        if confinement.namespaces["ipc"] == "host":
            shm = {"destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
                   "options": ["rbind", "rw"]}
        oci_mounts: list[dict[str, object]] = [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            shm,
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
        ]
        if settings.needs_cgroup:
            oci_mounts.append({"destination": "/sys/fs/cgroup", "type": "cgroup",
                               "source": "cgroup",
                               "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]})
        files = dict(_etc_files(root, spec, network))
        for m in mounts:
            if m.type == "secret" and m.target and m.data is not None:
                files[m.target] = m.data
            elif m.type == "tmpfs":
                oci_mounts.append({"destination": m.target, "type": "tmpfs", "source": "tmpfs",
                                   "options": ["nosuid", "nodev"]})
            elif m.source is not None:
                extra = [o for o in m.options if o in ("nosuid", "nodev", "noexec")]
                oci_mounts.append({"destination": m.target, "type": "bind",
                                   "source": os.fspath(m.source),
                                   "options": ["bind" if "bind" in m.options else "rbind",
                                               "ro" if m.readonly else "rw", *extra]})
        for index, (target, data) in enumerate(files.items()):
            staged = bundle / f"file-{index}"
            staged.write_bytes(data)
            secret = target not in ("/etc/hosts", "/etc/resolv.conf", "/etc/hostname")
            staged.chmod(0o400 if secret else 0o644)
            oci_mounts.append({"destination": target, "type": "bind", "source": str(staged),
                               "options": ["bind", "ro" if secret else "rw"]})
        points = [str(m["destination"]) for m in oci_mounts]
        points += [d.target for d in confinement.devices]
        missing = _missing_points(root, points, resolve_in_root)
        namespaces = _oci_namespaces(confinement)
        if network.mode.kind == "ns":
            namespaces.append({"type": "network", "path": network.mode.path})
        elif network.tool:  # a namespace held open while the stack connects it
            from builder.executor.network import start_stack

            holder = _netns_holder()
            stack = start_stack(network, holder.pid)
            namespaces.append({"type": "network", "path": f"/proc/{holder.pid}/ns/net"})
        elif network.mode.own_namespace:
            namespaces.append({"type": "network"})
        linux: dict[str, Any] = {
            "namespaces": namespaces, "maskedPaths": list(_MASKED_PROC),
            "readonlyPaths": list(_READONLY_PROC),
            "devices": [{"path": d.target, "type": d.kind, "major": d.major, "minor": d.minor,
                         "fileMode": d.mode, "uid": d.uid, "gid": d.gid}
                        for d in confinement.devices],
        }
        resources: dict[str, Any] = dict(oci_resources(settings))
        if confinement.devices:
            resources["devices"] = [{"allow": True, "type": d.kind, "major": d.major,
                                     "minor": d.minor, "access": d.permissions}
                                    for d in confinement.devices]
        if resources:
            linux["resources"] = resources
        if settings.cgroup_parent:
            linux["cgroupsPath"] = f"/{settings.cgroup_parent.strip('/')}/{name}"
            made = missing_parents(settings.cgroup_parent)
        if confinement.seccomp is not None:
            linux["seccomp"] = confinement.seccomp
        step_ns = confinement.user_namespace
        if step_ns is not None and not step_ns.path:
            linux["uidMappings"] = [{"containerID": m.container, "hostID": m.host,
                                     "size": m.size} for m in step_ns.uid_map]
            linux["gidMappings"] = [{"containerID": m.container, "hostID": m.host,
                                     "size": m.size} for m in step_ns.gid_map]
        config: dict[str, Any] = {
            "ociVersion": "1.0.2",
            "process": _oci_process(spec, user, mounts, confinement),
            "root": {"path": os.fspath(root), "readonly": False},
            "mounts": oci_mounts,
            "linux": linux,
        }
        if settings.hooks_dirs:
            hooks = hooks_for(settings.hooks_dirs, spec.argv[0], {},
                              any(m.type == "bind" for m in mounts))
            if hooks:
                config["hooks"] = hooks
        if confinement.namespaces["uts"] == "new":
            config["hostname"] = spec.hostname
        (bundle / "config.json").write_text(json.dumps(config))
        flags = [f"--{flag.lstrip('-')}" for flag in settings.runtime_flags]
        status = subprocess.run(
            [runtime, *flags, "--root", str(bundle / "state"), "run", "--bundle", str(bundle),
             name], stdin=None if spec.stdin else subprocess.DEVNULL,
        ).returncode
        _remove_points(missing)
        return 128 - status if status < 0 else status
    finally:
        StepCgroup(created=made).remove()
        if stack is not None:
            stack.stop()
        if holder is not None:
            holder.kill()
            holder.wait()
        shutil.rmtree(bundle, ignore_errors=True)


def _netns_holder() -> subprocess.Popen[bytes]:
    """A process alone in a new network namespace, for runc to join (dies with us)."""
    import time

    wrapper = shutil.which("setpriv")
    prefix = [wrapper, "--pdeathsig", "KILL", "--"] if wrapper else []
    try:
        holder = subprocess.Popen([*prefix, "unshare", "--net", "--", "sleep", "infinity"],
                                  stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise SandboxError(f"creating a network namespace: {exc.strerror}") from exc
    ours = os.stat("/proc/self/ns/net").st_ino
    deadline = time.monotonic() + 10
    while True:
        try:
            if os.stat(f"/proc/{holder.pid}/ns/net").st_ino != ours:
                return holder
        except OSError:
            pass
        if holder.poll() is not None or time.monotonic() > deadline:
            holder.kill()
            holder.wait()
            raise SandboxError("creating a network namespace: unshare --net failed")
        time.sleep(0.001)


def _missing_points(root: Path, targets: list[str], resolve: object) -> list[tuple[Path, int]]:
    """Host paths (with their parents' mtimes) that runc will create as mount points."""
    assert callable(resolve)
    out: list[tuple[Path, int]] = []
    for target in targets:
        parts = [p for p in target.split("/") if p]
        for depth in range(1, len(parts) + 1):
            path = resolve(root, "/".join(parts[:depth]))
            if not os.path.lexists(path) and all(path != p for p, _ in out):
                out.append((path, os.stat(path.parent).st_mtime_ns
                            if path.parent.exists() else 0))
    return out


def _remove_points(missing: list[tuple[Path, int]]) -> None:
    for path, parent_mtime in reversed(missing):
        try:
            os.rmdir(path) if path.is_dir() and not path.is_symlink() else os.unlink(path)
            if parent_mtime:
                os.utime(path.parent, ns=(parent_mtime, parent_mtime))
        except OSError:
            pass


def _subid_range(path: str, user: str, uid: int) -> tuple[int, int] | None:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] in (user, str(uid)) and parts[1].isdigit():
            return int(parts[1]), int(parts[2])
    return None


def _map_ids(pid: int, sync_r: int, sync_w: int) -> None:
    """Map root in the child's new user namespace to us (plus subordinate ids)."""
    if os.read(sync_r, 1) != b"u":
        return  # the child failed before unsharing; its error says why
    import pwd

    uid, gid = os.getuid(), os.getgid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    subuid = _subid_range("/etc/subuid", name, uid)
    subgid = _subid_range("/etc/subgid", name, uid)
    try:
        if subuid and subgid and shutil.which("newuidmap") and shutil.which("newgidmap"):
            for tool, own, (start, count) in (("newuidmap", uid, subuid),
                                              ("newgidmap", gid, subgid)):
                subprocess.run([tool, str(pid), "0", str(own), "1", "1", str(start), str(count)],
                               check=True, capture_output=True, text=True)
        else:
            Path(f"/proc/{pid}/setgroups").write_text("deny")
            Path(f"/proc/{pid}/uid_map").write_text(f"0 {uid} 1")
            Path(f"/proc/{pid}/gid_map").write_text(f"0 {gid} 1")
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", None) or exc
        os.write(sync_w, b"!")
        raise SandboxError(f"mapping user namespace ids: {str(detail).strip()}") from exc
    os.write(sync_w, b"k")


# --- the helper process: python -m builder.executor.sandbox CONFIG ERR SYNC_W SYNC_R


def _helper(config_fd: int, err_fd: int, sync_w: int, sync_r: int) -> int:
    # everything PID 1 needs is imported now: the host's library path is gone after pivot_root
    import fcntl  # noqa: F401
    import resource  # noqa: F401
    import socket  # noqa: F401
    import struct  # noqa: F401

    from builder.rootfs import syscalls

    with os.fdopen(config_fd) as pipe:
        config = json.load(pipe)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    namespaces: dict[str, str] = config["namespaces"]
    joins: dict[str, int] = {}
    action = "creating namespaces"
    try:
        syscalls.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        for kind, value in namespaces.items():
            if value.startswith("/"):
                action = f"opening {kind} namespace {value}"
                joins[kind] = os.open(value, os.O_RDONLY | os.O_CLOEXEC)
        action = "creating namespaces"
        if config["rootless"]:
            syscalls.unshare(_CLONE_NEWUSER)
            os.write(sync_w, b"u")
            if os.read(sync_r, 1) != b"k":
                return 125
        user = config["user"]
        user_fd = -1
        if user is not None:
            action = "creating the step's user namespace"
            user_fd = (os.open(user["path"], os.O_RDONLY | os.O_CLOEXEC) if user["path"]
                       else _new_userns(user))
            if not user["identity"]:
                action = "mapping the root's ids for the step's user namespace"
                syscalls.unshare(_CLONE_NEWNS)
                syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
                try:
                    syscalls.idmapped_clone(config["root"], user_fd)
                except OSError as exc:
                    os.write(err_fd, _idmap_error(exc).encode())
                    return 125
                # entered now: the step's root may not pass the directories above it
                os.chdir(config["root"])
                config["root_ready"] = True
        for kind, fd in joins.items():
            action = f"joining {kind} namespace {namespaces[kind]}"
            syscalls.setns(fd, _NAMESPACE_FLAGS[kind])
            os.close(fd)
        if user_fd >= 0:
            action = "entering the step's user namespace"
            syscalls.setns(user_fd, _CLONE_NEWUSER)
            os.close(user_fd)
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        action = "creating namespaces"
        flags = _CLONE_NEWNS
        for kind, value in namespaces.items():
            if value == "new":
                flags |= _NAMESPACE_FLAGS[kind]
        syscalls.unshare(flags)
        if config["stack"]:  # the caller connects our network namespace, then says go
            os.write(sync_w, b"n")
            if os.read(sync_r, 1) != b"g":
                return 125
    except OSError as exc:
        os.write(err_fd, f"{action}: {exc.strerror or exc}".encode())
        return 125
    finally:
        os.close(sync_w)
        os.close(sync_r)
    pid = os.fork()
    if pid == 0:
        try:
            code = _Init(config, err_fd).run()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            os.write(err_fd, str(exc).encode() or type(exc).__name__.encode())
            code = 125
        os._exit(code)
    os.close(err_fd)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _idmap_error(exc: OSError) -> str:
    why = {errno.EINVAL: "the root's file system cannot be idmapped (an overlay cannot be: "
                         "use --storage-driver vfs for a step with id maps)",
           errno.EPERM: "an ordinary user cannot idmap files of the host's file system",
           errno.ENOSYS: "this kernel has no idmapped mounts (Linux 5.12 or later)"}
    return (f"giving the step its own id maps (--userns-uid-map, --userns-gid-map): "
            f"{why.get(exc.errno or 0, exc.strerror or str(exc))}")


def _new_userns(user: dict[str, Any]) -> int:
    """A user namespace with the step's id maps (written by us, its parent); its fd."""
    from builder.rootfs import syscalls

    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    child = os.fork()
    if child == 0:
        code = 1
        try:
            os.close(ready_r)
            os.close(done_w)
            syscalls.unshare(_CLONE_NEWUSER)
            os.write(ready_w, b"x")
            os.read(done_r, 1)
            code = 0
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"x":
            raise OSError(errno.EPERM, "unshare failed")
        for kind in ("uid", "gid"):
            lines = "".join(f"{c} {h} {n}\n" for c, h, n in user[f"{kind}_map"])
            with open(f"/proc/{child}/{kind}_map", "wb") as f:
                f.write(lines.encode())
        return os.open(f"/proc/{child}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(child, 0)


class _Init:
    """PID 1 of the step's PID namespace (with ``--pid host`` or a joined namespace, a
    subreaper that ends its descendants instead)."""

    def __init__(self, config: dict, err_fd: int) -> None:  # type: ignore[type-arg]
        from builder.rootfs import syscalls

        self.sys = syscalls
        self.config = config
        self.err_fd = err_fd
        self.created: list[tuple[str, bool]] = []  # (path, is_dir), in creation order
        self.parent_times: dict[str, tuple[int, int]] = {}
        self.mounted: list[str] = []
        self.setup_mtimes: dict[str, int] = {}

    def run(self) -> int:
        self.sys.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        own_pids = self.config["namespaces"]["pid"] == "new"
        if not own_pids:
            self.sys.prctl(_PR_SET_CHILD_SUBREAPER, 1)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            self.setup()
        except BaseException:
            self.cleanup()
            raise
        os.set_inheritable(self.err_fd, False)
        pid = os.fork()
        if pid == 0:
            self.exec_command()
        os.close(self.err_fd)
        code = 125
        while True:
            child, status = os.waitpid(-1, 0)
            if child == pid:
                code = os.waitstatus_to_exitcode(status)
                code = 128 - code if code < 0 else code
                break
        if own_pids:
            try:
                os.kill(-1, signal.SIGKILL)  # everything the step left running
            except ProcessLookupError:
                pass
        else:
            _kill_descendants()
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break
        self.cleanup()
        return code

    # setup

    @staticmethod
    def inside(path: str) -> str:
        """``path`` as the container sees it, symlinks resolved inside the new root, never
        into the host's root (mounted at ``_OLD_ROOT`` while mounts are set up) or the
        staging directory: an image's link to either is refused."""
        resolved = resolve_in_root(Path("/"), path)
        first = resolved.parts[1] if len(resolved.parts) > 1 else ""
        if "/" + first in (_OLD_ROOT, _STAGE):
            raise OSError(errno.EPERM, f"mount point {path} leads into /{first}, which the "
                                       "sandbox uses while it sets up")
        return os.fspath(resolved)

    @staticmethod
    def own_dir(path: str) -> bool:
        """Make the sandbox's own directory ``path`` (False), or find it a real directory
        (True); anything else the image put there (a symlink) is refused."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            os.mkdir(path, 0o700)
            return False
        if not stat.S_ISDIR(st.st_mode):
            raise OSError(errno.EPERM, f"the image has {path}, which the sandbox needs")
        return True

    def point(self, path: str, is_dir: bool) -> bool:
        """Make sure a mount point exists (``path`` resolved by ``inside``), remembering what
        we created."""
        parts = [p for p in path.split("/") if p]
        current = ""
        for index, part in enumerate(parts):
            current += "/" + part
            last = index == len(parts) - 1
            if os.path.lexists(current):
                if os.path.islink(current):
                    return False  # resolved already: a link here is nothing safe to mount on
                continue
            parent = os.path.dirname(current)
            st = os.stat(parent)
            self.parent_times.setdefault(parent, (st.st_atime_ns, st.st_mtime_ns))
            if last and not is_dir:
                os.close(os.open(current, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            else:
                os.mkdir(current, 0o755)
            self.created.append((current, not last or is_dir))
        return True

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int = 0,
              data: str | None = None) -> None:
        self.sys.mount(source, target, fstype, flags, data)
        self.mounted.append(target)

    def bind(self, source: str, target: str, readonly: bool, recursive: bool = False,
             options: tuple[str, ...] = ()) -> None:
        """Bind ``source`` on ``target``; ``options`` may add nosuid, nodev, noexec."""
        s = self.sys
        self.mount(source, target, None, s.MS_BIND | (s.MS_REC if recursive else 0))
        extra = sum(flag for name, flag in (("nosuid", s.MS_NOSUID), ("nodev", s.MS_NODEV),
                                            ("noexec", s.MS_NOEXEC)) if name in options)
        if readonly or extra:
            vfs = os.statvfs(target)
            keep = sum(flag for bit, flag in ((os.ST_NOSUID, s.MS_NOSUID),
                                               (os.ST_NODEV, s.MS_NODEV),
                                               (os.ST_NOEXEC, s.MS_NOEXEC),
                                               (os.ST_RDONLY, s.MS_RDONLY))
                       if vfs.f_flag & bit)
            s.mount(None, target, None, s.MS_REMOUNT | s.MS_BIND | keep | extra
                    | (s.MS_RDONLY if readonly else 0))

    def setup(self) -> None:
        s, config = self.sys, self.config
        root = config["root"]
        s.mount(None, "/", None, s.MS_REC | s.MS_PRIVATE)
        if config.get("root_ready"):  # an idmapped root we are in, whose parents the
            tree = s.clone_tree(".")    # step's root may not pass: a fresh (unlocked) copy
            s.attach_tree(tree, ".")    # of it on itself, entered through its fd
            os.fchdir(tree)
            os.close(tree)
        else:
            s.mount(root, root, None, s.MS_BIND | s.MS_REC)
            os.chdir(root)
        st = os.stat(".")
        self.parent_times["/"] = (st.st_atime_ns, st.st_mtime_ns)
        # relative: an idmapped root is entered by its fd, its absolute path not walkable
        if not self.own_dir("." + _OLD_ROOT):
            self.created.append((_OLD_ROOT, True))
        s.pivot_root(".", _OLD_ROOT.lstrip("/"))
        os.chdir("/")
        old = _OLD_ROOT
        proc = self.inside("/proc")
        self.point(proc, True)
        try:
            self.mount("proc", proc, "proc", s.MS_NOSUID | s.MS_NODEV | s.MS_NOEXEC)
        except OSError:  # a PID namespace this user namespace does not own (--pid host)
            self.bind(old + "/proc", proc, readonly=False, recursive=True)
        self.setup_dev(old)
        sys_dir = self.inside("/sys")
        self.point(sys_dir, True)
        try:
            self.mount("sysfs", sys_dir, "sysfs",
                       s.MS_RDONLY | s.MS_NOSUID | s.MS_NODEV | s.MS_NOEXEC)
        except OSError:
            self.bind(old + "/sys", sys_dir, readonly=True, recursive=True)
        self.setup_cgroups(old)
        if not self.own_dir(_STAGE):
            self.created.append((_STAGE, True))
        self.mount("tmpfs", _STAGE, "tmpfs", s.MS_NOSUID | s.MS_NODEV, "mode=700")
        for name, data in config["files"].items():
            target = self.inside(name)
            if os.path.isdir(os.path.dirname(target)) or self.point(os.path.dirname(target), True):
                self.stage_file(target, base64.b64decode(data), readonly=False)
        for mount in config["mounts"]:
            self.setup_mount(mount, old)
        for path in _MASKED_PROC:
            if os.path.exists(path):
                self.mount("/dev/null", path, None, s.MS_BIND)
        for path in _READONLY_PROC:
            if os.path.exists(path):
                self.bind(path, path, readonly=True, recursive=True)
        s.umount(_STAGE, s.MNT_DETACH)
        s.umount(old, s.MNT_DETACH)
        self.mounted = [m for m in self.mounted if m != _STAGE]
        if config["namespaces"]["uts"] == "new":
            s.sethostname(config["hostname"])
        if config["namespaces"]["net"] == "new":
            _loopback_up()
        os.makedirs(config["cwd"], 0o755, exist_ok=True)
        self.setup_mtimes = {p: os.stat(p).st_mtime_ns for p in self.parent_times}

    def stage_file(self, target: str, data: bytes, readonly: bool, uid: int = 0, gid: int = 0,
                   mode: int = 0o644) -> None:
        if not self.point(target, False):
            return
        staged = f"{_STAGE}/{len(self.mounted)}"
        with open(staged, "wb") as f:
            f.write(data)
        os.chown(staged, uid, gid)
        os.chmod(staged, mode)
        self.bind(staged, target, readonly=readonly)

    def setup_dev(self, old: str) -> None:
        s = self.sys
        if self.inside("/dev") != "/dev":
            raise OSError(errno.EPERM, "the image's /dev is a symlink")
        self.point("/dev", True)
        self.mount("tmpfs", "/dev", "tmpfs", s.MS_NOSUID, "mode=755,size=65536k")
        for name in _DEVICES:
            os.close(os.open(f"/dev/{name}", os.O_CREAT | os.O_WRONLY, 0o666))
            s.mount(f"{old}/dev/{name}", f"/dev/{name}", None, s.MS_BIND)
        os.mkdir("/dev/pts", 0o755)
        options = "newinstance,ptmxmode=0666,mode=0620"
        try:
            s.mount("devpts", "/dev/pts", "devpts", s.MS_NOSUID | s.MS_NOEXEC, options + ",gid=5")
        except OSError:
            s.mount("devpts", "/dev/pts", "devpts", s.MS_NOSUID | s.MS_NOEXEC, options)
        os.symlink("pts/ptmx", "/dev/ptmx")
        os.mkdir("/dev/shm", 0o1777)
        if self.config["namespaces"]["ipc"] == "host":  # the host's shared memory
            s.mount(f"{old}/dev/shm", "/dev/shm", None, s.MS_BIND | s.MS_REC)
        else:
            s.mount("shm", "/dev/shm", "tmpfs", s.MS_NOSUID | s.MS_NODEV,
                    f"mode=1777,size={self.config['shm']}")
        for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
                             ("core", "/proc/kcore")):
            os.symlink(target, f"/dev/{name}")
        for device in self.config["devices"]:  # --device: the host's node, bound
            target = self.inside(device["target"])
            if not self.point(target, False):
                raise OSError(errno.ENOENT, f"device target {device['target']} is a dangling "
                              "symlink")
            self.mount(old + device["source"], target, None, s.MS_BIND)

    def setup_cgroups(self, old: str) -> None:
        """The step's cgroup, read-only at /sys/fs/cgroup (v2) or /sys/fs/cgroup/NAME (v1)."""
        s = self.sys
        mounts = self.config.get("cgroup_mounts") or []
        if not mounts or not os.path.isdir("/sys/fs/cgroup"):
            return
        if len(mounts) == 1 and mounts[0][0] == "":
            self.bind(old + mounts[0][1], "/sys/fs/cgroup", readonly=True)
            return
        self.mount("cgroup", "/sys/fs/cgroup", "tmpfs", s.MS_NOSUID | s.MS_NODEV | s.MS_NOEXEC,
                   "mode=755")
        for name, host in mounts:
            os.mkdir(f"/sys/fs/cgroup/{name}", 0o755)
            self.bind(old + host, f"/sys/fs/cgroup/{name}", readonly=True)
        s.mount(None, "/sys/fs/cgroup", None,
                s.MS_REMOUNT | s.MS_RDONLY | s.MS_NOSUID | s.MS_NODEV | s.MS_NOEXEC)

    def setup_mount(self, mount: dict, old: str) -> None:  # type: ignore[type-arg]
        s, kind, target = self.sys, mount["type"], mount["target"]
        if target:
            target = self.inside(target)
        if kind == "secret":
            if target:
                mode = 0o400 if mount["mode"] is None else mount["mode"]
                self.stage_file(target, base64.b64decode(mount["data"]), True,
                                mount["uid"] or 0, mount["gid"] or 0, mode)
            return
        if kind == "tmpfs":
            self.point(target, True)
            options = [f"mode={mount['mode']:o}" if mount["mode"] is not None else "mode=1777"]
            if mount["size"]:
                options.append(f"size={mount['size']}")
            self.mount("tmpfs", target, "tmpfs", s.MS_NOSUID | s.MS_NODEV, ",".join(options))
            return
        source = old + mount["source"]
        if not self.point(target, os.path.isdir(source)):
            raise OSError(errno.ENOENT, f"mount target {target} is a dangling symlink")
        self.bind(source, target, readonly=mount["readonly"],
                  recursive="bind" not in mount["options"], options=tuple(mount["options"]))

    # the command

    def exec_command(self) -> None:
        import resource

        config = self.config
        action = "preparing to run"
        try:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGXFSZ):
                signal.signal(sig, signal.SIG_DFL)
            for number, soft, hard, text in config["rlimits"]:  # while we may raise them
                action = f"setting --ulimit {text}"
                try:
                    resource.setrlimit(number, (soft, hard))
                except ValueError as exc:
                    raise OSError(errno.EPERM, f"{exc} (the current hard limit is "
                                  f"{resource.getrlimit(number)[1]}; raising it needs "
                                  "root with CAP_SYS_RESOURCE)") from None
            action = "preparing to run"
            keep = config["caps"]
            last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
            for cap in range(last + 1):
                if not keep & (1 << cap):
                    self.sys.prctl(_PR_CAPBSET_DROP, cap)
            self.sys.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)
            try:
                os.setgroups(config["groups"])
            except PermissionError:  # a single-id map denies setgroups
                if not config["userns"]:
                    raise
            os.setresgid(config["gid"], config["gid"], config["gid"])
            if config["apparmor"]:
                action = f"applying AppArmor profile {config['apparmor']}"
                _apparmor_exec(config["apparmor"])
            if config["seccomp"]:  # after this only what the profile allows
                action = "installing the seccomp filter"
                self.sys.seccomp_filter(base64.b64decode(config["seccomp"]))
            action = "preparing to run"
            os.setresuid(config["uid"], config["uid"], config["uid"])
            if config["uid"] == 0:
                self.sys.capset(keep, keep, 0)
            if config["nnp"]:
                self.sys.prctl(_PR_SET_NO_NEW_PRIVS, 1)
            os.chdir(config["cwd"])
        except OSError as exc:
            os.write(2, f"pybuild: {action}: {exc.strerror or exc}\n".encode())
            os._exit(125)
        env = dict(item.partition("=")[::2] for item in config["env"])
        argv = config["argv"]
        try:
            os.execvpe(argv[0], argv, env)
        except OSError as exc:
            os.write(2, f"pybuild: running {argv[0]}: {exc.strerror}\n".encode())
            os._exit(127 if exc.errno == errno.ENOENT else 126)

    # teardown

    def cleanup(self) -> None:
        """Unmount, remove created mount points, restore mtimes the step left alone."""
        s = self.sys
        touched = set()
        for parent, mtime in self.setup_mtimes.items():
            try:
                if os.stat(parent).st_mtime_ns != mtime:
                    touched.add(parent)
            except OSError:
                touched.add(parent)
        for target in reversed(self.mounted):
            try:
                s.umount(target, s.MNT_DETACH)
            except OSError:
                pass
        for path, is_dir in reversed(self.created):
            if path == _OLD_ROOT:
                continue
            try:
                os.rmdir(path) if is_dir else os.unlink(path)
            except OSError:
                pass
        try:
            os.rmdir(_OLD_ROOT)
        except OSError:
            pass
        for parent, times in self.parent_times.items():
            if parent in touched:
                continue
            try:
                os.utime(parent, ns=times, follow_symlinks=False)
            except OSError:
                pass


def _kill_descendants() -> None:
    """SIGKILL every process below this one, until none is left (we are a subreaper, so
    orphans come back to us)."""
    while True:
        found = []
        pending = [os.getpid()]
        while pending:
            pid = pending.pop()
            try:
                tasks = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for task in tasks:
                try:  # binary: no codec can be loaded after pivot_root
                    with open(f"/proc/{pid}/task/{task}/children", "rb") as f:
                        children = [int(c) for c in f.read().split()]
                except (OSError, ValueError):
                    continue
                found += children
                pending += children
        if not found:
            return
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.waitpid(-1, 0)  # at least one gone; the rest are found again or reaped later
        except ChildProcessError:
            pass


def _apparmor_exec(profile: str) -> None:
    """Have the next execve enter AppArmor ``profile``."""
    for path in ("/proc/self/attr/apparmor/exec", "/proc/self/attr/exec"):
        try:
            with open(path, "wb") as f:
                f.write(f"exec {profile}".encode())
            return
        except FileNotFoundError:
            continue


def _loopback_up() -> None:
    import fcntl
    import socket
    import struct

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock, siocgifflags, request))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH22x", b"lo", flags | iff_up))


if __name__ == "__main__":
    sys.exit(_helper(*(int(arg) for arg in sys.argv[1:5])))
