"""Build arguments: ``--build-arg`` parsing, platform args, ARG scopes, and the one
implementation of what ARG and ENV instructions do to the values steps expand with.

Meta args (ARGs before the first FROM) form the global scope, visible in FROM
lines. Inside a stage an ARG is visible only after its declaration; a bare
``ARG X`` there picks up the global value. ``--build-arg`` values override
every default. The eight platform args are predefined in the global scope.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from builder import replay
from builder.errors import ExpansionError, UsageError
from builder.instructions.model import ArgInstruction, EnvInstruction
from builder.platform import Platform, host_platform
from builder.source import Location
from builder.syntax.shell import expand_word

PLATFORM_ARGS = frozenset({
    "TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT",
    "BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT",
})


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


def expand(word: str, env: Mapping[str, str], escape: str, location: Location) -> str:
    """Expand one word, attaching the instruction's location to expansion errors."""
    try:
        return expand_word(word, env, escape)
    except ExpansionError as exc:
        if exc.location is None:
            exc.location = location
        raise


def declare_args(ins: ArgInstruction, scope: ArgScope, env: Mapping[str, str],
                 global_values: Mapping[str, str], escape: str) -> list[str]:
    """Apply an ARG instruction to ``scope``: each name and default is expanded with the
    values in scope so far (earlier names of the same instruction included) over
    ``env`` (the stage's ENV, which wins). Names are expanded as Buildah does
    (``ARG ${src}=x`` declares the ARG that ``src`` names). Returns the names."""
    names = []
    for arg in ins.args:
        values = {**scope.values, **env}
        name = expand(arg.name, values, escape, ins.location) if "$" in arg.name else arg.name
        if not name:
            continue  # Buildah accepts an ARG whose name expands to nothing, and ignores it
        default = None if arg.default is None else \
            expand(arg.default, values, escape, ins.location)
        scope.declare(name, default, global_values)
        names.append(name)
    return names


def apply_env(ins: EnvInstruction, values: Mapping[str, str], escape: str
              ) -> list[tuple[str, str]]:
    """The (name, value) pairs an ENV instruction sets: every value is expanded with the
    ``values`` from before the instruction, so ``ENV S=x T=$S`` gives T the old S."""
    return [(name, expand(word, values, escape, ins.location)) for name, word in ins.pairs]
