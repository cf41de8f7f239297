"""A cgroup for one RUN step: ``--memory``, ``--memory-swap``, ``--cpu-*``,
``--cpuset-*`` and ``--cgroup-parent``.

A step gets a cgroup of its own only when one of those flags is given. It is made
as ``PARENT/pybuild-ID``, where PARENT is ``--cgroup-parent`` (a path from the
hierarchy's root) or else the cgroup pybuild runs in (its parent with cgroup v2,
whose no-internal-processes rule forbids controllers below a cgroup that has
processes). Buildah 1.28 with runc puts the step *into* ``--cgroup-parent``
itself; pybuild makes a child, so the limits never change the parent's own (a CI
job's slice, say). The limits are written before the sandbox's first process
joins, and the cgroup is removed when the step ends.

* cgroup v2 (one unified hierarchy): ``memory.max``, ``memory.swap.max`` (swap =
  memory-swap - memory), ``cpu.weight`` (from shares, as runc converts them),
  ``cpu.max``, ``cpuset.cpus``/``cpuset.mems``; the controllers are enabled in the
  parent's ``cgroup.subtree_control``.
* cgroup v1 (hybrid or legacy hosts): the same in each controller's hierarchy
  (``memory.limit_in_bytes``, ``memory.memsw.limit_in_bytes``, ``cpu.shares``,
  ``cpu.cfs_period_us``/``cpu.cfs_quota_us``, ``cpuset.*``); with
  ``--cgroup-parent`` the step joins every controller hierarchy.

An ordinary user may create cgroups only where they are delegated to it: cgroup
v2 under a systemd user session with delegation. cgroup v1 is never delegated,
so rootless steps with these flags fail there with an error that says so.

The step sees its own cgroup at ``/sys/fs/cgroup`` (read-only), as runc shows a
container its cgroup: ``cat /sys/fs/cgroup/memory.max`` (v2) or
``/sys/fs/cgroup/memory/memory.limit_in_bytes`` (v1).
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from builder.errors import ConfinementError
from builder.runsettings import RunSettings

__all__ = ["Hierarchy", "StepCgroup", "create", "hierarchies", "missing_parents", "oci_resources"]

_FLAGS = {"memory": "--memory", "memory_swap": "--memory-swap", "cpu_period": "--cpu-period",
          "cpu_quota": "--cpu-quota", "cpu_shares": "--cpu-shares",
          "cpuset_cpus": "--cpuset-cpus", "cpuset_mems": "--cpuset-mems",
          "cgroup_parent": "--cgroup-parent"}
_CONTROLLER = {"memory": "memory", "memory_swap": "memory", "cpu_period": "cpu",
               "cpu_quota": "cpu", "cpu_shares": "cpu", "cpuset_cpus": "cpuset",
               "cpuset_mems": "cpuset"}


@dataclass(frozen=True)
class Hierarchy:
    """One mounted cgroup hierarchy: v2 (``controllers`` from cgroup.controllers) or a
    v1 one (its controllers from the mount options)."""

    version: int
    mountpoint: Path
    root: str  # the mount's root within the hierarchy
    controllers: frozenset[str]
    own: str  # this process's cgroup in it

    def directory(self, cgroup: str) -> Path:
        """The directory of ``cgroup`` (a path from the hierarchy's root)."""
        relative = cgroup
        if self.root != "/" and (cgroup == self.root or cgroup.startswith(self.root + "/")):
            relative = cgroup[len(self.root):]
        return self.mountpoint / relative.strip("/")


def _mounts(mountinfo: str) -> list[tuple[str, Path, str, set[str]]]:
    out = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        parts, rest = left.split(), right.split()
        if len(parts) < 5 or len(rest) < 3 or rest[0] not in ("cgroup", "cgroup2"):
            continue
        mountpoint = parts[4].replace("\\040", " ")
        options = set(parts[5].split(",")) | set(rest[2].split(","))
        out.append((rest[0], Path(mountpoint), parts[3], options))
    return out


def hierarchies(mountinfo: str | None = None, own: str | None = None) -> list[Hierarchy]:
    """The cgroup hierarchies mounted here, v2 first when it has controllers."""
    if mountinfo is None:
        mountinfo = _read("/proc/self/mountinfo")
    if own is None:
        own = _read("/proc/self/cgroup")
    membership: dict[str, str] = {}
    for line in own.splitlines():
        number, _, rest = line.partition(":")
        names, _, path = rest.partition(":")
        membership[names if number != "0" else ""] = path
    found: list[Hierarchy] = []
    seen: set[str] = set()
    for kind, mountpoint, root, options in _mounts(mountinfo):
        if kind == "cgroup2":
            try:
                controllers = frozenset((mountpoint / "cgroup.controllers").read_text().split())
            except OSError:
                controllers = frozenset()
            key = "v2"
            hierarchy = Hierarchy(2, mountpoint, root, controllers, membership.get("", "/"))
        else:
            found_names = [o for o in options if o in _V1_CONTROLLERS]
            if not found_names:
                continue  # a named hierarchy (name=systemd): no controller
            key = ",".join(sorted(found_names))
            path = next((p for n, p in membership.items()
                         if n and set(n.split(",")) >= set(found_names)), "/")
            hierarchy = Hierarchy(1, mountpoint, root, frozenset(found_names), path)
        if key not in seen:
            seen.add(key)
            found.append(hierarchy)
    return sorted(found, key=lambda h: (h.version != 2 or not h.controllers, str(h.mountpoint)))


_V1_CONTROLLERS = {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio",
                   "pids", "net_cls", "net_prio", "perf_event", "hugetlb", "rdma", "misc"}


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


def _needed(settings: RunSettings) -> set[str]:
    return {_CONTROLLER[name] for name in _CONTROLLER
            if getattr(settings, name) not in (None, "")}


def _given(settings: RunSettings) -> str:
    return ", ".join(flag for name, flag in _FLAGS.items()
                     if getattr(settings, name) not in (None, ""))


@dataclass
class StepCgroup:
    """The cgroup(s) made for one step: one directory per hierarchy used."""

    directories: list[tuple[Hierarchy, Path]] = field(default_factory=list)
    created: list[Path] = field(default_factory=list)  # deepest last

    def join(self, pid: int) -> None:
        """Move process ``pid`` (the sandbox, before it starts anything) in."""
        for _, directory in self.directories:
            _write(directory / "cgroup.procs", str(pid), "moving the step into its cgroup")

    def mounts(self) -> list[tuple[str, str]]:
        """(path under /sys/fs/cgroup in the step, host directory) to bind read-only."""
        if len(self.directories) == 1 and self.directories[0][0].version == 2:
            return [("", os.fspath(self.directories[0][1]))]
        return [(hierarchy.mountpoint.name, os.fspath(directory))
                for hierarchy, directory in self.directories]

    def remove(self) -> None:
        """Remove what was made (a moment after the last process left)."""
        for path in reversed(self.created):
            deadline = time.monotonic() + 2
            while True:
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        break
                    time.sleep(0.01)


def _write(path: Path, value: str, action: str) -> None:
    try:
        with open(path, "w", encoding="ascii") as f:
            f.write(value)
    except OSError as exc:
        raise ConfinementError(f"{action}: writing {value!r} to {path}: "
                               f"{exc.strerror or exc}") from exc


def _denied(action: str, path: Path, exc: OSError, version: int, flags: str) -> ConfinementError:
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        if version == 1:
            hint = ("cgroup v1 hierarchies are never delegated to ordinary users: build as "
                    "root, or on a cgroup v2 host in a session with delegation "
                    "(systemd-run --user --scope -p Delegate=yes pybuild ...); or leave out "
                    f"{flags}")
        else:
            hint = ("this user has no delegated cgroup here: run the build in a systemd user "
                    "session with delegation (systemd-run --user --scope -p Delegate=yes "
                    f"pybuild ...), or as root; or leave out {flags}")
        return ConfinementError(f"{action}: {path}: {exc.strerror or exc} (this user may not "
                                "create cgroups there)", hint=hint)
    return ConfinementError(f"{action}: {path}: {exc.strerror or exc}")


def create(settings: RunSettings, name: str) -> StepCgroup:
    """Make the step's cgroup(s) with the limits ``settings`` gives; ConfinementError
    says why that is impossible here."""
    flags = _given(settings)
    action = f"creating a cgroup for the step ({flags})"
    found = hierarchies()
    unified = next((h for h in found if h.version == 2), None)
    v1 = [h for h in found if h.version == 1]
    needed = _needed(settings)
    if unified is not None and (not v1 or (needed and needed <= unified.controllers)):
        chosen = [unified]
    else:
        chosen = [h for h in v1 if h.controllers & needed]
        if settings.cgroup_parent:  # the step joins every hierarchy, as with runc
            chosen = v1 + ([unified] if unified is not None else [])
        missing = needed - {c for h in chosen for c in h.controllers}
        if missing or not chosen:
            raise ConfinementError(
                f"{action}: this host's cgroups have no {', '.join(sorted(missing)) or 'usable'} "
                "controller", hint=f"leave out {flags}")
    step = StepCgroup()
    try:
        for hierarchy in chosen:
            _make(step, hierarchy, settings, name, action, flags)
    except BaseException:
        step.remove()
        raise
    return step


def _make(step: StepCgroup, hierarchy: Hierarchy, settings: RunSettings, name: str,
          action: str, flags: str) -> None:
    if settings.cgroup_parent:
        parent = "/" + settings.cgroup_parent.strip("/")
        base = hierarchy.mountpoint / parent.strip("/")
    else:
        own = hierarchy.own
        if hierarchy.version == 2 and own != "/":
            own = os.path.dirname(own.rstrip("/")) or "/"  # no processes in inner cgroups
        base = hierarchy.directory(own)
    directory = base / f"pybuild-{name}"
    levels: list[Path] = []
    path = directory
    while not path.exists() and path != hierarchy.mountpoint:
        levels.append(path)
        path = path.parent
    for level in reversed(levels):
        if hierarchy.version == 2:
            _enable(level.parent, settings, hierarchy, action, flags)
        try:
            level.mkdir()
        except OSError as exc:
            raise _denied(action, level, exc, hierarchy.version, flags) from exc
        step.created.append(level)
        if hierarchy.version == 1 and "cpuset" in hierarchy.controllers:
            for item in ("cpuset.cpus", "cpuset.mems"):  # v1 starts them empty
                inherited = (level.parent / item).read_text().strip()
                _write(level / item, inherited, action)
    step.directories.append((hierarchy, directory))
    for item, value in _limits(settings, hierarchy):
        target = directory / item
        if not target.exists():
            raise ConfinementError(f"{action}: this host's cgroups have no {item}",
                                   hint="--memory-swap needs swap accounting (kernel option "
                                        "swapaccount=1)" if "sw" in item else None)
        _write(target, value, action)


def _enable(parent: Path, settings: RunSettings, hierarchy: Hierarchy, action: str,
            flags: str) -> None:
    """Enable the controllers the step needs in ``parent``'s subtree (v2)."""
    wanted = _needed(settings) & set(hierarchy.controllers)
    if not wanted:
        return
    try:
        have = set((parent / "cgroup.subtree_control").read_text().split())
    except OSError as exc:
        raise _denied(action, parent, exc, 2, flags) from exc
    missing = sorted(wanted - have)
    if missing:
        try:
            with open(parent / "cgroup.subtree_control", "w", encoding="ascii") as f:
                f.write(" ".join("+" + c for c in missing))
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                raise ConfinementError(
                    f"{action}: cannot enable {', '.join(missing)} in {parent}: it has "
                    "processes of its own (cgroup v2 allows controllers only below cgroups "
                    "without processes)", hint="name an empty cgroup with --cgroup-parent") \
                    from exc
            raise _denied(action, parent, exc, 2, flags) from exc


def _limits(settings: RunSettings, hierarchy: Hierarchy) -> list[tuple[str, str]]:
    """(file, value) pairs to write, in order."""
    s = settings
    out: list[tuple[str, str]] = []
    controllers = hierarchy.controllers
    if hierarchy.version == 2:
        if s.memory is not None:
            out.append(("memory.max", str(s.memory)))
        if s.memory_swap is not None:
            if s.memory_swap == -1:
                out.append(("memory.swap.max", "max"))
            else:
                swap = s.memory_swap - (s.memory or 0)
                out.append(("memory.swap.max", str(max(swap, 0))))
        if s.cpu_shares is not None:
            out.append(("cpu.weight", str(shares_to_weight(s.cpu_shares))))
        if s.cpu_quota is not None or s.cpu_period is not None:
            quota = "max" if s.cpu_quota in (None, -1) else str(s.cpu_quota)
            out.append(("cpu.max", f"{quota} {s.cpu_period or 100000}"))
        if s.cpuset_cpus:
            out.append(("cpuset.cpus", s.cpuset_cpus))
        if s.cpuset_mems:
            out.append(("cpuset.mems", s.cpuset_mems))
        return out
    if "memory" in controllers:
        if s.memory is not None:
            out.append(("memory.limit_in_bytes", str(s.memory)))
        if s.memory_swap is not None:
            out.append(("memory.memsw.limit_in_bytes", str(s.memory_swap)))
    if "cpu" in controllers:
        if s.cpu_shares is not None:
            out.append(("cpu.shares", str(s.cpu_shares)))
        if s.cpu_period is not None:
            out.append(("cpu.cfs_period_us", str(s.cpu_period)))
        if s.cpu_quota is not None:
            out.append(("cpu.cfs_quota_us", str(s.cpu_quota)))
    if "cpuset" in controllers:
        if s.cpuset_cpus:
            out.append(("cpuset.cpus", s.cpuset_cpus))
        if s.cpuset_mems:
            out.append(("cpuset.mems", s.cpuset_mems))
    return out


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares (2-262144) as v2 cpu.weight (1-10000), runc's conversion."""
    if shares == 0:
        return 100
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


def oci_resources(settings: RunSettings) -> dict[str, object]:
    """The OCI runtime spec's ``linux.resources`` memory and cpu for runc."""
    s = settings
    memory = {k: v for k, v in (("limit", s.memory), ("swap", s.memory_swap)) if v is not None}
    cpu = {k: v for k, v in (("shares", s.cpu_shares), ("quota", s.cpu_quota),
                             ("period", s.cpu_period), ("cpus", s.cpuset_cpus or None),
                             ("mems", s.cpuset_mems or None)) if v is not None}
    out: dict[str, object] = {}
    if memory:
        out["memory"] = memory
    if cpu:
        out["cpu"] = cpu
    return out


def missing_parents(parent: str) -> list[Path]:
    """The directories of ``--cgroup-parent`` that do not exist yet, in every hierarchy
    (the OCI runtime makes them; pybuild removes them again when they are empty)."""
    out: list[Path] = []
    for _, mountpoint, _, _ in _mounts(_read("/proc/self/mountinfo")):
        path = mountpoint / parent.strip("/")
        missing = []
        while not path.exists() and path != mountpoint:
            missing.append(path)
            path = path.parent
        out += reversed(missing)
    return out
