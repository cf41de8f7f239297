"""RUN's resource and security settings, from ``RunSettings`` to what the sandbox applies.

``check_run_settings`` rejects what cannot work before anything runs (unknown
capabilities, missing volume sources, devices or namespace paths, id maps outside
this user namespace, an unreadable seccomp profile). ``plan`` decides, for one
step, everything the sandbox needs that is not a mount or the network:

* capabilities: Buildah's default set with ``--cap-add``/``--cap-drop``;
* ``no_new_privs``: off unless ``--security-opt no-new-privileges`` (as Buildah and
  Docker; setuid programs such as ``su`` work);
* the seccomp filter (``builder.executor.seccomp``);
* rlimits (``--ulimit``), device nodes (``--device``), the size of ``/dev/shm``;
* namespaces: PID, IPC and UTS private by default (``host`` or a path with
  ``--pid``/``--ipc``/``--uts``), the cgroup namespace the host's unless
  ``--cgroupns private``, and a user namespace of the step's own with
  ``--userns``/``--userns-*-map*``;
* AppArmor, used only where the host has it enabled.

Cgroup limits are ``builder.executor.cgroups``'s, hooks ``builder.executor.ocihooks``'s.

``settings_key`` is the part of a RUN's cache key these settings contribute:
what decides what the step can see or do (capabilities, no-new-privileges, the
seccomp profile's content, devices, ulimits, namespaces and id maps, each
volume's target and options: writes under a volume never reach the layer), and
not host volume paths or their content (as cache mounts), resource limits (memory,
CPU, /dev/shm size, cgroup parent: they bound a step, they do not change what a
successful one writes), the runtime, its flags or hooks. With none of them given
the key is the network mode alone, as before these flags existed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import resource
import stat
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from builder import userns
from builder.errors import ConfinementError, UsageError
from builder.executor import capabilities, seccomp
from builder.runsettings import IdMapping, RunSettings, Ulimit

__all__ = [
    "Confinement", "DeviceNode", "StepUserns", "check_run_settings", "plan", "settings_key",
    "unused",
]

DEFAULT_SHM = 64 * 1024 * 1024


@dataclass(frozen=True)
class DeviceNode:
    """A host device node made available at ``target`` in the step."""

    source: str
    target: str
    kind: str  # "c" or "b"
    major: int
    minor: int
    mode: int
    uid: int
    gid: int
    permissions: str


@dataclass(frozen=True)
class StepUserns:
    """A user namespace for the step: joined (``path``) or made with these maps."""

    path: str = ""
    uid_map: tuple[IdMapping, ...] = ()
    gid_map: tuple[IdMapping, ...] = ()

    @property
    def identity(self) -> bool:
        """Whether ids keep their values (no idmapped root needed)."""
        return not self.path and all(m.container == m.host for m in
                                     self.uid_map + self.gid_map)


@dataclass(frozen=True)
class Confinement:
    """What the sandbox applies to one step besides mounts and the network."""

    capabilities: tuple[str, ...]
    no_new_privileges: bool
    seccomp: dict[str, Any] | None  # the OCI runtime spec's linux.seccomp
    rlimits: tuple[Ulimit, ...]
    devices: tuple[DeviceNode, ...]
    shm_size: int
    namespaces: dict[str, str] = field(default_factory=dict)  # pid, ipc, uts, cgroup
    user_namespace: StepUserns | None = None
    apparmor: str = ""

    def helper_config(self) -> dict[str, Any]:
        """The JSON the chroot sandbox's helper reads (the seccomp filter compiled)."""
        bpf = None
        if self.seccomp is not None:
            bpf = base64.b64encode(seccomp.compile_bpf(self.seccomp, "installing the "
                                                       "seccomp profile")).decode()
        rlimits = []
        for limit in self.rlimits:
            number = getattr(resource, limit.resource)
            rlimits.append([number, _rlim(limit.soft), _rlim(limit.hard), str(limit)])
        user = None
        if self.user_namespace is not None:
            u = self.user_namespace
            user = {"path": u.path, "identity": u.identity,
                    "uid_map": [[m.container, m.host, m.size] for m in u.uid_map],
                    "gid_map": [[m.container, m.host, m.size] for m in u.gid_map]}
        return {
            "caps": capabilities.mask_of(self.capabilities), "nnp": self.no_new_privileges,
            "seccomp": bpf, "rlimits": rlimits, "shm": self.shm_size,
            "devices": [{"source": d.source, "target": d.target} for d in self.devices],
            "namespaces": dict(self.namespaces), "user": user, "apparmor": self.apparmor,
        }


def _rlim(value: int) -> int:
    return resource.RLIM_INFINITY if value == -1 else value


# -- checking


def check_run_settings(settings: RunSettings) -> RunSettings:
    """``settings`` checked against this host (the network's too), capability names
    normalized; UsageError or ConfinementError say what is wrong."""
    from builder.executor.network import check_settings

    settings = check_settings(settings)
    changes: dict[str, Any] = {}
    if settings.cap_add or settings.cap_drop:
        changes["cap_add"] = capabilities.normalize(settings.cap_add, "--cap-add")
        changes["cap_drop"] = capabilities.normalize(settings.cap_drop, "--cap-drop")
        capabilities.merge(settings.cap_add, settings.cap_drop)
    for volume in settings.volumes:
        if not os.path.exists(volume.source):
            raise UsageError(f"checking --volume {volume}: {volume.source} does not exist")
    for device in settings.devices:
        _device_nodes(device.source, device.target, device.permissions)
    if settings.seccomp not in ("", seccomp.UNCONFINED):
        seccomp.load(Path(settings.seccomp))
    for flag, value in (("--pid", settings.pid), ("--ipc", settings.ipc),
                        ("--uts", settings.uts), ("--cgroupns", settings.cgroupns),
                        ("--userns", settings.userns)):
        if value.startswith("/") and not os.path.exists(value):
            raise UsageError(f"checking {flag} {value}: no such namespace file")
    if settings.memory_swap is not None and settings.memory_swap != -1:
        if settings.memory is None:
            raise UsageError("checking --memory-swap: it needs --memory (it is memory plus "
                             "swap)")
        if settings.memory_swap < settings.memory:
            raise UsageError("checking --memory-swap: it must not be less than --memory (it "
                             "is memory plus swap)")
    if settings.cpu_quota is not None and settings.cpu_quota not in (-1,) \
            and settings.cpu_quota < 1000:
        raise UsageError("checking --cpu-quota: at least 1000 microseconds, or -1")
    if settings.cpu_period is not None and not 1000 <= settings.cpu_period <= 1000000:
        raise UsageError("checking --cpu-period: 1000 to 1000000 microseconds")
    step_userns(settings)
    return replace(settings, **changes) if changes else settings


def unused(settings: RunSettings, isolation: str) -> list[str]:
    """Warnings for settings given that this host or isolation does not use."""
    out = []
    for option in settings.label_options:
        out.append(f"ignoring --security-opt label={option}: "
                   + ("pybuild does not set SELinux labels" if _selinux()
                      else "this host has no SELinux"))
    if settings.apparmor and settings.apparmor != "unconfined" and not _apparmor():
        out.append(f"ignoring --security-opt apparmor={settings.apparmor}: this host has no "
                   "AppArmor")
    if isolation != "oci":
        for flag, value in (("--runtime", settings.runtime),
                            ("--runtime-flag", settings.runtime_flags),
                            ("--hooks-dir", settings.hooks_dirs)):
            if value:
                out.append(f"ignoring {flag}: it applies to --isolation oci, and RUN is "
                           "isolated by chroot")
    return out


def _selinux() -> bool:
    return os.path.exists("/sys/fs/selinux/enforce")


def _apparmor() -> bool:
    try:
        return Path("/sys/module/apparmor/parameters/enabled").read_text().strip() == "Y"
    except OSError:
        return False


def _device_nodes(source: str, target: str, permissions: str) -> list[DeviceNode]:
    try:
        st = os.stat(source)
    except OSError as exc:
        raise UsageError(f"checking --device {source}: {exc.strerror}") from exc
    if stat.S_ISDIR(st.st_mode):
        nodes = []
        for directory, _, files in os.walk(source):
            for name in sorted(files):
                path = os.path.join(directory, name)
                inner = os.lstat(path)
                if stat.S_ISCHR(inner.st_mode) or stat.S_ISBLK(inner.st_mode):
                    rel = os.path.relpath(path, source)
                    nodes += _device_nodes(path, os.path.join(target, rel), permissions)
        return nodes
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise UsageError(f"checking --device {source}: not a device node")
    return [DeviceNode(source, target, "c" if stat.S_ISCHR(st.st_mode) else "b",
                       os.major(st.st_rdev), os.minor(st.st_rdev), stat.S_IMODE(st.st_mode),
                       st.st_uid, st.st_gid, permissions)]


def _subid_maps(name: str, path: str, flag: str) -> tuple[IdMapping, ...]:
    try:
        import pwd

        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        uid = -1
    ranges = userns.subordinate_ranges(path, name, uid)
    if not ranges:
        raise UsageError(f"checking {flag} {name}: {path} has no ranges for {name}")
    out, inside = [], 0
    for start, count in ranges:
        out.append(IdMapping(inside, start, count))
        inside += count
    return tuple(out)


def step_userns(settings: RunSettings) -> StepUserns | None:
    """The user namespace a step gets (None: the one pybuild runs in), with Buildah's
    rules: a map given alone serves uids and gids alike, a name given alone serves
    both files, and maps cannot go with ``--userns host``."""
    user, group = settings.uid_map_user, settings.gid_map_group
    user, group = user or group, group or user
    uid_map: tuple[IdMapping, ...] = ()
    gid_map: tuple[IdMapping, ...] = ()
    if user:
        uid_map = _subid_maps(user, "/etc/subuid", "--userns-uid-map-user")
        gid_map = _subid_maps(group, "/etc/subgid", "--userns-gid-map-group")
    uid_map += settings.uid_map
    gid_map += settings.gid_map
    uid_map, gid_map = uid_map or gid_map, gid_map or uid_map
    mode = settings.userns
    if mode == "auto" or mode.startswith("auto:"):
        raise UsageError(f"checking --userns {mode}: automatic id ranges are not supported",
                         hint="give the ranges with --userns-uid-map and --userns-gid-map")
    if mode == "host":
        if uid_map:
            raise UsageError("checking --userns host: id maps cannot be used with the host's "
                             "user namespace")
        return None
    if mode.startswith("/"):
        if uid_map:
            raise UsageError(f"checking --userns {mode}: id maps cannot be used when joining "
                             "a user namespace")
        return StepUserns(path=mode)
    if not uid_map:
        if mode != "private":
            return None
        current = userns.id_map("uid"), userns.id_map("gid")  # the same ids, a new namespace
        return StepUserns(uid_map=tuple(IdMapping(c, c, n) for c, _, n in current[0]),
                          gid_map=tuple(IdMapping(c, c, n) for c, _, n in current[1]))
    for kind, maps in (("uid", uid_map), ("gid", gid_map)):
        ours = userns.id_map(kind)
        for m in maps:
            if not any(first <= m.host and m.host + m.size <= first + count
                       for first, _, count in ours):
                spans = ", ".join(f"{f}-{f + c - 1}" for f, _, c in ours)
                raise ConfinementError(
                    f"checking the step's {kind} map {m}: host {kind}s {m.host}-"
                    f"{m.host + m.size - 1} are not mapped where pybuild runs ({kind}s {spans})")
    return StepUserns(uid_map=uid_map, gid_map=gid_map)


# -- planning one step


def _namespace(value: str, default: str) -> str:
    if value in ("", "private"):
        return "new" if value or default == "new" else default
    return value  # host, or a path


def plan(settings: RunSettings) -> Confinement:
    """What the sandbox applies to a step run with ``settings`` (already checked)."""
    caps = capabilities.merge(settings.cap_add, settings.cap_drop)
    profile = None
    if settings.seccomp != seccomp.UNCONFINED:
        path = Path(settings.seccomp) if settings.seccomp else seccomp.default_profile()
        if path is not None:
            profile = seccomp.to_oci(seccomp.load(path), caps, f"loading seccomp profile {path}")
            if not settings.seccomp and profile is not None and not seccomp.available():
                profile = None  # the default profile needs libseccomp; asked-for ones fail
    devices = tuple(node for device in settings.devices
                    for node in _device_nodes(device.source, device.target, device.permissions))
    namespaces = {"pid": _namespace(settings.pid, "new"), "ipc": _namespace(settings.ipc, "new"),
                  "uts": _namespace(settings.uts, "new"),
                  "cgroup": _namespace(settings.cgroupns, "host")}
    apparmor = settings.apparmor if _apparmor() and settings.apparmor != "unconfined" else ""
    return Confinement(
        capabilities=caps, no_new_privileges=bool(settings.no_new_privileges), seccomp=profile,
        rlimits=settings.ulimits, devices=devices,
        shm_size=settings.shm_size or DEFAULT_SHM, namespaces=namespaces,
        user_namespace=step_userns(settings), apparmor=apparmor)


# -- the cache key


def settings_key(settings: RunSettings) -> str:
    """What a RUN's cache key takes from its settings (see the module docstring)."""
    s = settings
    parts: dict[str, Any] = {}
    if s.volumes:
        parts["volumes"] = sorted([v.target, *v.options] for v in s.volumes)
    if s.devices:
        parts["devices"] = sorted([d.target, d.permissions] for d in s.devices)
    if s.cap_add or s.cap_drop:
        parts["caps"] = list(capabilities.merge(s.cap_add, s.cap_drop))
    if s.no_new_privileges is not None:
        parts["nnp"] = s.no_new_privileges
    if s.seccomp:
        parts["seccomp"] = s.seccomp if s.seccomp == seccomp.UNCONFINED else \
            hashlib.sha256(Path(s.seccomp).read_bytes()).hexdigest()
    if s.ulimits:
        parts["ulimits"] = sorted(str(u) for u in s.ulimits)
    for name in ("pid", "ipc", "uts", "cgroupns", "userns", "uid_map_user", "gid_map_group"):
        if getattr(s, name):
            parts[name] = getattr(s, name)
    for name in ("uid_map", "gid_map"):
        if getattr(s, name):
            parts[name] = [str(m) for m in getattr(s, name)]
    if not parts:
        return s.network
    return s.network + " " + json.dumps(parts, sort_keys=True)


def warn(messages: list[str]) -> None:
    for message in messages:
        sys.stderr.write(f"WARN[0000] {message}\n")
