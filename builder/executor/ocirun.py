"""Running one step with ``isolation="oci"``: an OCI runtime bundle, run by runc.

The bundle's ``config.json`` carries what the chroot sandbox applies itself: the
command, its environment and user, capabilities, rlimits, no_new_privs, AppArmor
profile and seccomp filter, the namespaces (new, the host's or joined; the step's user
namespace with its id maps), ``/proc``, ``/dev``, ``/sys`` and the step's cgroup, the
generated ``/etc`` files, the step's mounts and devices, and the cgroup limits.
The runtime is ``--runtime`` (or ``$BUILDAH_RUNTIME``, or runc), with
``--runtime-flag`` flags and the hooks of ``--hooks-dir``. The default network is a
namespace held open by a process of ours while slirp4netns or pasta connects it.
Mount points the runtime creates in the root are removed again afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from builder import userns
from builder.errors import SandboxError
from builder.executor.cgroups import StepCgroup, missing_parents, oci_resources
from builder.executor.confinement import Confinement
from builder.executor.network import Network, RunningStack, start_stack
from builder.executor.ocihooks import hooks_for
from builder.executor.pid1 import MASKED_PROC, READONLY_PROC
from builder.executor.runspec import MountSpec, RunSpec, etc_files, step_env
from builder.executor.users import ResolvedUser
from builder.rootfs.paths import resolve_in_root
from builder.runsettings import RunSettings

__all__ = ["run_oci"]


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
        "env": step_env(spec, user.home, mounts),
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


def run_oci(root: Path, spec: RunSpec, user: ResolvedUser, mounts: list[MountSpec],
             network: Network, confinement: Confinement) -> int:
    """Run the step with runc (or ``--runtime``) from a generated OCI runtime bundle;
    returns its exit status (128+N for signal N)."""
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
    missing: list[tuple[Path, int]] = []
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
        generated = etc_files(root, spec, network)
        files = dict(generated)
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
            secret = target not in generated
            staged.chmod(0o400 if secret else 0o644)
            oci_mounts.append({"destination": target, "type": "bind", "source": str(staged),
                               "options": ["bind", "ro" if secret else "rw"]})
        points = [str(m["destination"]) for m in oci_mounts]
        points += [d.target for d in confinement.devices]
        missing = _missing_points(root, points)
        namespaces = _oci_namespaces(confinement)
        if network.mode.kind == "ns":
            namespaces.append({"type": "network", "path": network.mode.path})
        elif network.tool:  # a namespace held open while the stack connects it
            holder = _netns_holder()
            stack = start_stack(network, holder.pid)
            namespaces.append({"type": "network", "path": f"/proc/{holder.pid}/ns/net"})
        elif network.mode.own_namespace:
            namespaces.append({"type": "network"})
        linux: dict[str, Any] = {
            "namespaces": namespaces, "maskedPaths": list(MASKED_PROC),
            "readonlyPaths": list(READONLY_PROC),
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
        return 128 - status if status < 0 else status
    finally:
        _remove_points(missing)
        StepCgroup(created=made).remove()
        if stack is not None:
            stack.stop()
        if holder is not None:
            holder.kill()
            holder.wait()
        shutil.rmtree(bundle, ignore_errors=True)


def _netns_holder() -> subprocess.Popen[bytes]:
    """A process alone in a new network namespace, for runc to join (dies with us)."""
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


def _missing_points(root: Path, targets: list[str]) -> list[tuple[Path, int]]:
    """Host paths (with their parents' mtimes) that runc will create as mount points."""
    out: list[tuple[Path, int]] = []
    for target in targets:
        parts = [p for p in target.split("/") if p]
        for depth in range(1, len(parts) + 1):
            path = resolve_in_root(root, "/".join(parts[:depth]))
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

