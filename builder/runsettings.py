"""How a RUN step (or ``pybuild run``) is set up around its command.

One frozen ``RunSettings`` carries what the command line (``--network``,
``--dns``, ``--volume``, ``--cap-add``, ``--memory``, ``--pid`` and the rest,
parsed by ``builder.commands.runflags``) or the Python API asked for. It flows
through ``BuildOptions`` and the state of working containers into the sandbox's
``RunSpec``; ``builder.executor.confinement`` checks it against the host and
turns it into what the sandbox (or the OCI runtime) applies.

A field left at its default means "not given": ``merged_over`` lets the
settings of ``pybuild run`` override those a working container was made with
(``pybuild from --network ...``), as Buildah does; list-valued flags (volumes,
devices, ulimits, capabilities, hosts, hooks directories, runtime flags) add up.

The small values a flag's text becomes (``Volume``, ``Device``, ``Ulimit``,
``IdMapping``) parse themselves, with Buildah's syntax; checks that need the host
(does the path exist, is the capability known) are ``confinement``'s.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, ClassVar

from builder.errors import UsageError

__all__ = [
    "PROXY_VARIABLES", "ULIMITS", "Device", "IdMapping", "RunSettings", "Ulimit", "Volume",
    "parse_bytes", "parse_namespace",
]

# The proxy variables passed from the caller's environment into RUN (--http-proxy) and
# accepted as build args without an ARG line, in both cases (BuildKit's list; Buildah
# 1.28's lacks ALL_PROXY).
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY",
                   "http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy")

# --ulimit names (Docker's go-units) -> the RLIMIT_ resource they set
ULIMITS = {"core": "CORE", "cpu": "CPU", "data": "DATA", "fsize": "FSIZE", "locks": "LOCKS",
           "memlock": "MEMLOCK", "msgqueue": "MSGQUEUE", "nice": "NICE", "nofile": "NOFILE",
           "nproc": "NPROC", "rss": "RSS", "rtprio": "RTPRIO", "rttime": "RTTIME",
           "sigpending": "SIGPENDING", "stack": "STACK"}
UNLIMITED = -1

# --volume options as Buildah (containers/common ValidateVolumeOpts) takes them; at most
# one of each group
_VOLUME_GROUPS = (("rw", "ro"), ("z", "Z", "O"), ("U",), ("exec", "noexec"), ("dev", "nodev"),
                  ("suid", "nosuid"), ("bind", "rbind"), ("copy", "nocopy"),
                  ("private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable",
                   "runbindable"))
_VOLUME_IGNORED = ("cached", "delegated")  # macOS options Docker drops on Linux as well
_SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$", re.IGNORECASE)


def parse_bytes(text: str, flag: str) -> int:
    """``512m``, ``1g``, ``65536k``, ``100``: bytes, with binary units as Docker's
    ``RAMInBytes`` (the memory and shm-size flags)."""
    match = _SIZE.match(text.strip())
    if not match:
        raise UsageError(f"parsing {flag} {text!r}: expected a size such as 512m or 2g "
                         "(units b, k, m, g)")
    unit = (match.group(2) or "").lower()
    return int(float(match.group(1)) * 1024 ** " kmgtp".index(unit or " "))


def parse_namespace(text: str, flag: str, *, extra: tuple[str, ...] = ()) -> str:
    """``--pid``, ``--ipc``, ``--uts``, ``--cgroupns`` and ``--userns`` values: private
    (also spelled container, or empty), host, or the path of a namespace to join
    (``ns:`` is optional)."""
    value = text.strip()
    if value in ("", "private", "container"):
        return "private"
    if value == "host" or value in extra:
        return value
    path = value.removeprefix("ns:")
    if not path.startswith("/"):
        choices = ", ".join(("private", "host", *extra, "or the path of a namespace"))
        raise UsageError(f"parsing {flag} {text!r}: expected {choices}")
    return path


def _split_escaped(text: str) -> list[str]:
    """Split on colons, except backslash-escaped ones (Buildah's volume syntax)."""
    parts, current, index = [], "", 0
    while index < len(text):
        char = text[index]
        if char == "\\" and text[index + 1:index + 2] == ":":
            current += ":"
            index += 2
            continue
        if char == ":":
            parts.append(current)
            current = ""
        else:
            current += char
        index += 1
    parts.append(current)
    return parts


@dataclass(frozen=True)
class Volume:
    """``-v HOST:CTR[:OPTIONS]``: a host directory bound into every RUN step."""

    source: str
    target: str
    options: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Volume:
        parts = _split_escaped(text)
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise UsageError(f"parsing --volume {text!r}: expected HOST-DIR:CONTAINER-DIR"
                             "[:OPTIONS]")
        source, target = parts[0], parts[1]
        if not source.startswith("/"):
            raise UsageError(f"parsing --volume {text!r}: the host path must be absolute")
        if not target.startswith("/"):
            raise UsageError(f"parsing --volume {text!r}: the container path must be "
                             "absolute")
        options = tuple(o for o in (parts[2].split(",") if len(parts) == 3 else ())
                        if o and o not in _VOLUME_IGNORED)
        for option in options:
            if option.startswith(("upperdir=", "workdir=", "idmap")):
                raise UsageError(f"parsing --volume {text!r}: option {option!r} is not "
                                 "supported")
            group = next((g for g in _VOLUME_GROUPS if option in g), None)
            if group is None:
                raise UsageError(f"parsing --volume {text!r}: unknown option {option!r} "
                                 "(accepted: ro, rw, z, Z, O, U, [no]exec, [no]dev, [no]suid, "
                                 "[r]bind, propagation)")
            if sum(o in group for o in options) > 1:
                raise UsageError(f"parsing --volume {text!r}: only one of "
                                 f"{', '.join(group)} may be given")
        return cls(source, target, options)

    @property
    def readonly(self) -> bool:
        return "ro" in self.options

    @property
    def overlay(self) -> bool:
        """``O``: the step sees the directory, its writes are thrown away."""
        return "O" in self.options

    @property
    def chown(self) -> bool:
        """``U``: the host directory is given to the step's user first."""
        return "U" in self.options

    def __str__(self) -> str:
        escaped = [p.replace(":", "\\:") for p in (self.source, self.target)]
        return ":".join(escaped + ([",".join(self.options)] if self.options else []))


@dataclass(frozen=True)
class Device:
    """``--device HOST[:CTR][:PERMS]``: a host device node (or a directory of them)
    made available in the step's /dev."""

    source: str
    target: str
    permissions: str = "rwm"

    @classmethod
    def parse(cls, text: str) -> Device:
        parts = text.split(":")
        if not parts[0] or len(parts) > 3:
            raise UsageError(f"parsing --device {text!r}: expected HOST[:CONTAINER][:PERMS]")
        source, target, permissions = parts[0], parts[0], "rwm"
        rest = parts[1:]
        if len(rest) == 2:
            target, permissions = rest
            if not _device_mode(permissions):
                raise UsageError(f"parsing --device {text!r}: invalid permissions "
                                 f"{permissions!r} (r, w and m)")
        elif len(rest) == 1:
            if _device_mode(rest[0]):
                permissions = rest[0]
            else:
                target = rest[0]
        if not source.startswith("/") or not target.startswith("/"):
            raise UsageError(f"parsing --device {text!r}: paths must be absolute")
        return cls(source, target, permissions)

    def __str__(self) -> str:
        return f"{self.source}:{self.target}:{self.permissions}"


def _device_mode(text: str) -> bool:
    return bool(text) and len(set(text)) == len(text) and set(text) <= set("rwm")


@dataclass(frozen=True)
class Ulimit:
    """``--ulimit NAME=SOFT[:HARD]``; -1 (or ``unlimited``) is no limit."""

    name: str
    soft: int
    hard: int

    @classmethod
    def parse(cls, text: str) -> Ulimit:
        name, sep, values = text.partition("=")
        name = name.strip().lower().removeprefix("rlimit_")
        if not sep or name not in ULIMITS:
            raise UsageError(f"parsing --ulimit {text!r}: expected NAME=SOFT[:HARD] with NAME "
                             f"one of {', '.join(ULIMITS)}")
        soft_text, _, hard_text = values.partition(":")
        try:
            soft = _limit(soft_text)
            hard = _limit(hard_text) if hard_text else soft
        except ValueError:
            raise UsageError(f"parsing --ulimit {text!r}: limits are numbers, -1 or "
                             "unlimited") from None
        if hard != UNLIMITED and (soft == UNLIMITED or soft > hard):
            raise UsageError(f"parsing --ulimit {text!r}: the soft limit must not exceed the "
                             "hard limit")
        return cls(name, soft, hard)

    @property
    def resource(self) -> str:
        """The rlimit's name, as in ``RLIMIT_NOFILE``."""
        return "RLIMIT_" + ULIMITS[self.name]

    def __str__(self) -> str:
        return f"{self.name}={self.soft}:{self.hard}"


def _limit(text: str) -> int:
    text = text.strip()
    if text in ("-1", "unlimited"):
        return UNLIMITED
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


@dataclass(frozen=True)
class IdMapping:
    """One ``CONTAINER-ID:HOST-ID:SIZE`` range of a user namespace's id map."""

    container: int
    host: int
    size: int

    @classmethod
    def parse_list(cls, text: str, flag: str) -> tuple[IdMapping, ...]:
        """``0:100000:65536[,65536:...]`` (any non-digit separates, as Buildah reads it)."""
        numbers = re.split(r"\D+", text.strip())
        numbers = [n for n in numbers if n]
        if not numbers or len(numbers) % 3:
            raise UsageError(f"parsing {flag} {text!r}: expected CONTAINER-ID:HOST-ID:SIZE"
                             "[,...]")
        values = [int(n) for n in numbers]
        if any(v >= 1 << 32 for v in values):
            raise UsageError(f"parsing {flag} {text!r}: ids are 32-bit numbers")
        out = tuple(cls(*values[i:i + 3]) for i in range(0, len(values), 3))
        if any(m.size == 0 for m in out):
            raise UsageError(f"parsing {flag} {text!r}: a range cannot be empty")
        return out

    def __str__(self) -> str:
        return f"{self.container}:{self.host}:{self.size}"


@dataclass(frozen=True)
class RunSettings:
    """Settings of a step's sandbox beyond the command, user and mounts."""

    # network (builder.executor.network)
    network: str = ""  # "" is the default: private (see builder.executor.network)
    dns: tuple[str, ...] = ()  # nameservers instead of the host's; ("none",): no resolv.conf
    dns_search: tuple[str, ...] = ()  # search domains instead of the host's; (".",): none
    dns_options: tuple[str, ...] = ()  # resolver options instead of the host's
    add_hosts: tuple[str, ...] = ()  # "NAME:IP" lines for /etc/hosts; IP may be host-gateway
    no_hosts: bool = False  # leave /etc/hosts to the image
    http_proxy: bool | None = None  # pass the caller's proxy variables (None: yes)
    # what the step sees besides its root
    volumes: tuple[Volume, ...] = ()
    devices: tuple[Device, ...] = ()
    # security (builder.executor.capabilities, builder.executor.seccomp)
    cap_add: tuple[str, ...] = ()  # CAP_NAME or ALL, as given (checked by confinement)
    cap_drop: tuple[str, ...] = ()
    no_new_privileges: bool | None = None  # None: not given (off, as with Buildah)
    seccomp: str = ""  # "": the default profile; "unconfined"; or a profile's path
    apparmor: str = ""  # a profile name (used only where AppArmor is enabled)
    label_options: tuple[str, ...] = ()  # SELinux label options (used only under SELinux)
    # resources: rlimits, /dev/shm, cgroups (builder.executor.cgroups)
    ulimits: tuple[Ulimit, ...] = ()
    shm_size: int | None = None  # bytes (default 64 MiB)
    memory: int | None = None  # bytes
    memory_swap: int | None = None  # bytes of memory plus swap; -1: unlimited swap
    cpu_period: int | None = None  # microseconds
    cpu_quota: int | None = None  # microseconds per period
    cpu_shares: int | None = None  # relative weight (cgroup v1 shares)
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    cgroup_parent: str = ""
    # namespaces: "" not given; "private", "host" or a path (parse_namespace)
    pid: str = ""
    ipc: str = ""
    uts: str = ""
    cgroupns: str = ""
    userns: str = ""
    uid_map: tuple[IdMapping, ...] = ()
    gid_map: tuple[IdMapping, ...] = ()
    uid_map_user: str = ""  # a name in /etc/subuid whose ranges make the uid map
    gid_map_group: str = ""  # a name in /etc/subgid whose ranges make the gid map
    # the OCI runtime (--isolation oci)
    runtime: str = ""  # a path or a name on PATH (default runc, or $BUILDAH_RUNTIME)
    runtime_flags: tuple[str, ...] = ()  # global runtime flags, without their dashes
    hooks_dirs: tuple[str, ...] = ()  # directories of OCI hook definitions

    # fields whose values add up in merged_over; the value types of tuple fields
    _ADDING: ClassVar[tuple[str, ...]] = (
        "add_hosts", "volumes", "devices", "ulimits", "cap_add", "cap_drop", "hooks_dirs",
        "runtime_flags", "label_options")
    _ITEMS: ClassVar[dict[str, type]] = {
        "volumes": Volume, "devices": Device, "ulimits": Ulimit, "uid_map": IdMapping,
        "gid_map": IdMapping}

    @property
    def passes_proxies(self) -> bool:
        return self.http_proxy is not False

    @property
    def needs_cgroup(self) -> bool:
        """Whether the step needs a cgroup of its own."""
        return any(getattr(self, name) not in (None, "") for name in (
            "memory", "memory_swap", "cpu_period", "cpu_quota", "cpu_shares", "cpuset_cpus",
            "cpuset_mems", "cgroup_parent"))

    def given(self) -> dict[str, Any]:
        """The fields given (those not at their defaults)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) != f.default}

    def merged_over(self, base: RunSettings) -> RunSettings:
        """These settings where they were given, ``base``'s elsewhere; list-valued
        flags (``--add-host``, ``--volume``, ``--device``, ``--cap-add`` ...) add up."""
        given = self.given()
        for name in self._ADDING:
            if name in given:
                given[name] = getattr(base, name) + given[name]
        return replace(base, **given)

    def to_json(self) -> dict[str, Any]:
        """The given fields, for a working container's saved state."""
        return {k: [asdict(i) if k in self._ITEMS else i for i in v]
                if isinstance(v, tuple) else v for k, v in self.given().items()}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> RunSettings:
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in (data or {}).items():
            if key not in known:
                continue
            if isinstance(value, list):
                item = cls._ITEMS.get(key)
                value = tuple(item(**{k: tuple(x) if isinstance(x, list) else x
                                      for k, x in v.items()}) if item is not None else v
                              for v in value)
            values[key] = value
        return cls(**values)
