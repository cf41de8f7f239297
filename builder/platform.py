"""Platforms: ``os/arch[/variant]``, the host's, choosing one from a list, emulation.

The one home of the concept. Architecture names are Go's (``amd64``,
``arm64``); ``--platform`` text is parsed here, the host's platform is derived
here from the Linux machine name, and every choice of an image for a platform
(an index entry from a registry or an OCI layout, a stored image for a build)
goes through ``matches`` and ``choose``. A missing variant matches the
architecture's default one (``arm64`` is ``arm64/v8``, ``arm`` is ``arm/v7``,
``amd64`` is ``amd64/v1``), as containerd's platform matcher has it.

Running binaries of another architecture needs a binfmt_misc handler
(``emulation_registered``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from builder.errors import ImageError, UsageError

__all__ = ["Platform", "choose", "emulation_registered", "host_platform", "machine_name",
           "needs_emulation", "parse_platform"]

# Linux machine names -> (GOARCH, variant)
_MACHINE_ARCH: dict[str, tuple[str, str]] = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", ""),
    "arm64": ("arm64", ""),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
}
# the variant an architecture means when none is named
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7", "amd64": "v1"}
# Go architecture names -> the Linux machine names binfmt_misc handlers are named after
_MACHINES = {"amd64": "x86_64", "arm64": "aarch64", "386": "i386", "arm": "arm",
             "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
             "mips64le": "mips64el", "loong64": "loongarch64"}
_NATIVE = {("amd64", "386"), ("arm64", "arm")}  # hosts that run these without emulation
BINFMT_MISC = Path("/proc/sys/fs/binfmt_misc")

_T = TypeVar("_T")


@dataclass(frozen=True)
class Platform:
    """An os/arch[/variant] triple (plus the rarely used OS version and features)."""

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    def normalized(self) -> Platform:
        """containerd's normal form: ``arm64/v8`` is ``arm64``, ``arm`` is ``arm/v7``."""
        variant = self.variant.lower()
        if self.architecture == "arm64" and variant in ("v8", "8"):
            variant = ""
        elif self.architecture == "arm" and variant in ("", "7"):
            variant = "v7"
        return Platform(self.os or "linux", self.architecture, variant)

    def matches(self, other: Platform) -> bool:
        """Whether ``other`` is this platform: same OS and architecture, and the same
        variant once a missing one is read as the architecture's default."""
        if (self.os or "linux") != (other.os or "linux") or \
                self.architecture != other.architecture:
            return False
        default = _DEFAULT_VARIANT.get(self.architecture, "")
        return (self.variant or default) == (other.variant or default)


def host_platform() -> Platform:
    """The platform this machine runs (Linux naming as Go spells it)."""
    machine = os.uname().machine
    arch, variant = _MACHINE_ARCH.get(machine.lower(), (machine, ""))
    return Platform("linux", arch, variant)


def parse_platform(text: str | None) -> Platform:
    """``os/arch[/variant]``, ``arch`` alone or ``/``; missing parts come from the host."""
    host = host_platform()
    if not text or not text.strip("/"):
        return host
    parts = text.lower().split("/")
    if len(parts) == 1:
        return Platform(host.os, parts[0] or host.architecture)
    if len(parts) > 3:
        raise UsageError(f"parsing platform {text!r}: expected os/arch[/variant]")
    os_name = parts[0] or host.os
    arch = parts[1] or host.architecture
    variant = parts[2] if len(parts) == 3 else ""
    if arch == host.architecture and not variant and len(parts) == 2:
        variant = host.variant
    return Platform(os_name, arch, variant)


def choose(candidates: Iterable[tuple[Platform | None, _T]], wanted: Platform,
           what: str) -> _T:
    """The first candidate for ``wanted``: an exact variant match first, then one that
    matches with default variants, then one with the same OS and architecture. The
    error names ``what`` was being chosen from and the platforms it offers."""
    listed = list(candidates)
    exact = [item for p, item in listed if p is not None and p.matches(wanted)
             and p.variant == wanted.variant]
    close = [item for p, item in listed if p is not None and p.matches(wanted)]
    loose = [item for p, item in listed if p is not None and (p.os or "linux") == wanted.os
             and p.architecture == wanted.architecture]
    found = exact or close or loose
    if found:
        return found[0]
    offered = sorted(str(p) for p, _ in listed if p is not None)
    raise ImageError(f"choosing a manifest for {wanted} from {what}: not in the index "
                     f"(it has {', '.join(offered) or 'no platforms'})")


def machine_name(platform: Platform) -> str:
    """The Linux machine name of ``platform``'s architecture (binfmt_misc's naming)."""
    return _MACHINES.get(platform.architecture, platform.architecture)


def needs_emulation(platform: Platform, host: Platform | None = None) -> bool:
    """Whether binaries for ``platform`` need an emulator to run on ``host``."""
    host = host or host_platform()
    return platform.os != host.os or (platform.architecture != host.architecture and
                                      (host.architecture, platform.architecture) not in _NATIVE)


def emulation_registered(machine: str, directory: Path = BINFMT_MISC) -> bool:
    """Whether an enabled binfmt_misc handler runs ``machine`` binaries (a handler named
    ``qemu-MACHINE``, or one whose interpreter is a ``qemu-MACHINE`` binary)."""
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return False
    for entry in entries:
        if entry.name in ("register", "status"):
            continue
        try:
            lines = entry.read_text().splitlines()
        except OSError:
            continue
        if not lines or lines[0].strip() != "enabled":
            continue
        interpreter = next((line.split(None, 1)[-1] for line in lines
                            if line.startswith("interpreter ")), "")
        program = interpreter.rsplit("/", 1)[-1].removesuffix("-static")
        if entry.name == f"qemu-{machine}" or program == f"qemu-{machine}":
            return True
    return False
