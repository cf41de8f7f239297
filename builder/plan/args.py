"""Build arguments: ``--build-arg`` parsing, platform args and ARG scopes.

Meta args (ARGs before the first FROM) form the global scope, visible in FROM
lines. Inside a stage an ARG is visible only after its declaration; a bare
``ARG X`` there picks up the global value. ``--build-arg`` values override
every default. The eight platform args are predefined in the global scope.
"""

from __future__ import annotations

import os
import platform as _platform
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from builder import replay
from builder.errors import UsageError

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

PLATFORM_ARGS = frozenset({
    "TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT",
    "BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT",
})


@dataclass(frozen=True)
class Platform:
    """An os/arch[/variant] triple as used by ``--platform``."""

    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


def host_platform() -> Platform:
    """The platform this machine runs (Linux naming as Go spells it)."""
    arch, variant = _MACHINE_ARCH.get(_platform.machine().lower(), (_platform.machine(), ""))
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


def platform_args(target: Platform, build: Platform | None = None) -> dict[str, str]:
    """The eight automatic args for a target platform, built on ``build`` (the host)."""
    build = build or host_platform()
    return {
        "TARGETPLATFORM": str(target),
        "TARGETOS": target.os,
        "TARGETARCH": target.architecture,
        "TARGETVARIANT": target.variant,
        "BUILDPLATFORM": str(build),
        "BUILDOS": build.os,
        "BUILDARCH": build.architecture,
        "BUILDVARIANT": build.variant,
    }


def _parse_pair(raw: str, what: str, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """``K=V`` -> (K, V); ``K`` -> (K, $K) or None when K is not in the environment."""
    name, sep, value = raw.partition("=")
    name = name.strip()
    if not name or any(c.isspace() for c in name):
        raise UsageError(f"parsing {what} {raw!r}: expected KEY=VALUE or KEY")
    if sep:
        return name, value
    if environ is os.environ:
        replay.watch_env(name)
    if name in environ:
        return name, environ[name]
    return None


def parse_build_args(
    raw_args: Iterable[str] = (),
    files: Iterable[str | Path] = (),
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Merge ``--build-arg-file`` files (in order) then ``--build-arg`` flags (later wins)."""
    environ = os.environ if environ is None else environ
    result: dict[str, str] = {}
    for file in files:
        replay.watch(file)
        try:
            text = Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"reading build-arg file {str(file)!r}: {exc.strerror}") from exc
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            pair = _parse_pair(line, "build-arg file line", environ)
            if pair:
                result[pair[0]] = pair[1]
    for raw in raw_args:
        pair = _parse_pair(raw, "--build-arg", environ)
        if pair:
            result[pair[0]] = pair[1]
    return result


@dataclass
class ArgScope:
    """The ARG values visible at one point of a build; records which build args were used."""

    build_args: Mapping[str, str]
    values: dict[str, str] = field(default_factory=dict)
    consumed: set[str] = field(default_factory=set)

    def declare(self, name: str, default: str | None, global_values: Mapping[str, str]) -> None:
        """ARG name[=default]: a --build-arg wins, then the default, then the global value."""
        if name in self.build_args:
            self.values[name] = self.build_args[name]
            self.consumed.add(name)
        elif default is not None:
            self.values[name] = default
        elif name in global_values:
            self.values[name] = global_values[name]
        else:
            self.values.pop(name, None)

    def child(self) -> ArgScope:
        """A fresh stage scope sharing the build args and the consumed set."""
        return ArgScope(self.build_args, {}, self.consumed)


def unconsumed(build_args: Mapping[str, str], consumed: Iterable[str]) -> list[str]:
    """Build args no ARG declared (platform and proxy args never count), sorted."""
    from builder.runsettings import PROXY_VARIABLES

    used = set(consumed)
    return sorted(k for k in build_args
                  if k not in used and k not in PLATFORM_ARGS and k not in PROXY_VARIABLES)
