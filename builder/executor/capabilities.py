"""The capabilities a RUN step gets: Buildah's default set, ``--cap-add`` and ``--cap-drop``.

Names are taken as Buildah (containers/common) takes them: any case, with or
without ``CAP_``, and ``ALL``. ``--cap-add ALL`` gives every capability the
build's own bounding set has; ``--cap-drop ALL`` leaves only what ``--cap-add``
names; a capability both added and dropped is an error, as is an unknown name.
The set applies to a step run as root; other users start with none (their
bounding set is the same), as in Buildah.
"""

from __future__ import annotations

from builder.errors import UsageError

__all__ = ["CAPABILITIES", "DEFAULT_CAPABILITIES", "mask_of", "merge", "normalize"]

# capability(7) numbers
CAPABILITIES = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
    "CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
    "CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}
# containers.conf's default_capabilities (Buildah 1.28, Podman)
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID",
    "CAP_SYS_CHROOT",
)
ALL = "ALL"


def _last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as f:
            return int(f.read())
    except (OSError, ValueError):
        return max(CAPABILITIES.values())


def known() -> dict[str, int]:
    """The capabilities this kernel has."""
    last = _last_cap()
    return {name: bit for name, bit in CAPABILITIES.items() if bit <= last}


def normalize(names: tuple[str, ...], flag: str) -> tuple[str, ...]:
    """``net_admin``, ``CAP_NET_ADMIN``, ``all`` -> ``CAP_NET_ADMIN``, ``ALL``."""
    out = []
    table = known()
    for raw in names:
        name = raw.strip().upper()
        if name != ALL and not name.startswith("CAP_"):
            name = "CAP_" + name
        if name != ALL and name not in table:
            raise UsageError(f"parsing {flag} {raw!r}: unknown capability",
                             hint=f"known: {', '.join(sorted(n[4:] for n in table))}, ALL")
        out.append(name)
    return tuple(out)


def _bounding() -> list[str]:
    """The capabilities in this process's bounding set."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            mask = next(int(line.split()[1], 16) for line in f if line.startswith("CapBnd:"))
    except (OSError, StopIteration, ValueError):
        mask = (1 << (_last_cap() + 1)) - 1
    return [name for name, bit in known().items() if mask & (1 << bit)]


def merge(adds: tuple[str, ...], drops: tuple[str, ...]) -> tuple[str, ...]:
    """The default set with ``adds`` and without ``drops`` (normalized names), by
    containers/common's MergeCapabilities rules; sorted."""
    add = normalize(adds, "--cap-add")
    drop = normalize(drops, "--cap-drop")
    if ALL in drop:
        if ALL in add:
            raise UsageError("checking --cap-add and --cap-drop: adding all capabilities and "
                             "dropping all is not allowed")
        return tuple(sorted(set(add)))
    base = list(DEFAULT_CAPABILITIES)
    if ALL in add:
        base, add = _bounding(), ()
    for name in add:
        if name in drop:
            raise UsageError(f"checking --cap-add and --cap-drop: capability {name} cannot be "
                             "dropped and added")
    return tuple(sorted({n for n in base if n not in drop} | set(add)))


def mask_of(names: tuple[str, ...]) -> int:
    """The bit mask of capability names."""
    mask = 0
    for name in names:
        mask |= 1 << CAPABILITIES[name]
    return mask
