"""``registries.conf`` (version 2 TOML, plus the old v1 tables): where to pull from.

Files are read in order (the system file, its ``.d`` drop-ins, then the user's
file and drop-ins, which win); an explicit path or ``$CONTAINERS_REGISTRIES_CONF``
replaces them all. Later files override earlier ones per registry prefix, and
``unqualified-search-registries`` / ``aliases`` as a whole.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from builder.errors import RegistryError, UsageError
from builder.reference import DOCKER_HUB, Reference, is_qualified, parse_reference

__all__ = [
    "Endpoint",
    "Mirror",
    "RegistriesConf",
    "RegistryEntry",
    "default_paths",
    "load_registries_conf",
]

SYSTEM_CONF = Path("/etc/containers/registries.conf")


@dataclass(frozen=True)
class Mirror:
    location: str
    insecure: bool = False
    pull_from_mirror: str = "all"  # all | digest-only | tag-only


@dataclass(frozen=True)
class RegistryEntry:
    prefix: str
    location: str
    insecure: bool = False
    blocked: bool = False
    mirrors: tuple[Mirror, ...] = ()

    def matches(self, name: str) -> bool:
        """Whether ``name`` (``host/repo``) falls under this entry's prefix."""
        if self.prefix.startswith("*."):
            host = name.split("/", 1)[0]
            return host.endswith(self.prefix[1:])
        if not name.startswith(self.prefix):
            return False
        rest = name[len(self.prefix):]
        return rest == "" or rest[0] in "/:@"


@dataclass(frozen=True)
class Endpoint:
    """One place to pull a reference from: the rewritten reference and its TLS stance."""

    reference: Reference
    insecure: bool
    mirror: bool = False


@dataclass
class RegistriesConf:
    registries: dict[str, RegistryEntry] = field(default_factory=dict)
    unqualified_search: list[str] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)
    sources: list[Path] = field(default_factory=list)

    def find(self, name: str) -> RegistryEntry | None:
        """The entry whose prefix matches ``name`` most specifically."""
        best: RegistryEntry | None = None
        for entry in self.registries.values():
            if entry.matches(name) and (best is None or len(entry.prefix) > len(best.prefix)):
                best = entry
        return best

    def is_insecure(self, registry: str) -> bool:
        entry = self.find(registry)
        return bool(entry and entry.insecure)

    def check_blocked(self, ref: Reference) -> None:
        entry = self.find(ref.name)
        if entry and entry.blocked:
            raise RegistryError(
                f"registry {ref.registry} is blocked in registries.conf", registry=ref.registry
            )

    def endpoints(self, ref: Reference) -> list[Endpoint]:
        """Where to pull ``ref`` from, mirrors first, after prefix rewriting."""
        self.check_blocked(ref)
        entry = self.find(ref.name)
        if entry is None:
            return [Endpoint(ref, False)]
        result = []
        for mirror in entry.mirrors:
            if mirror.pull_from_mirror == "digest-only" and not ref.digest:
                continue
            if mirror.pull_from_mirror == "tag-only" and ref.digest:
                continue
            rewritten = _rewrite(ref, entry.prefix, mirror.location)
            result.append(Endpoint(rewritten, mirror.insecure, mirror=True))
        result.append(Endpoint(_rewrite(ref, entry.prefix, entry.location), entry.insecure))
        return result

    def resolve_short_name(self, name: str) -> list[Reference]:
        """Candidate references for ``name``: itself when qualified, else alias or search list."""
        if is_qualified(name.removeprefix("docker://")):
            return [parse_reference(name)]
        bare, digest, tag = _split_short(name)
        if bare in self.aliases:
            target = parse_reference(self.aliases[bare])
            return [Reference(target.registry, target.repository, tag or target.tag, digest)]
        if not self.unqualified_search:
            raise UsageError(
                f"resolving short name {name!r}: no unqualified-search-registries are configured",
                hint="use a fully qualified name such as docker.io/library/" + bare,
            )
        return [parse_reference(name, default_registry=host) for host in self.unqualified_search]


def _split_short(name: str) -> tuple[str, str | None, str | None]:
    digest = None
    if "@" in name:
        name, digest = name.rsplit("@", 1)
    tag = None
    if ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    return name, digest, tag


def _rewrite(ref: Reference, prefix: str, location: str) -> Reference:
    if prefix.startswith("*.") or not location or location == prefix:
        return ref
    rewritten = location + ref.name[len(prefix):]
    registry, _, repository = rewritten.partition("/")
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    return Reference(registry, repository or ref.repository, ref.tag, ref.digest)


def default_paths(explicit: Path | None = None) -> list[Path]:
    """The files to read, in order."""
    if explicit is not None:
        return [explicit]
    env = os.environ.get("CONTAINERS_REGISTRIES_CONF")
    if env:
        return [Path(env)]
    paths: list[Path] = []
    user_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "containers"
    user = user_home / "registries.conf"
    paths.append(user if user.exists() else SYSTEM_CONF)
    for directory in (SYSTEM_CONF.with_suffix(".conf.d"), user_home / "registries.conf.d"):
        if directory.is_dir():
            paths.extend(sorted(directory.glob("*.conf")))
    return paths


def load_registries_conf(explicit: Path | None = None) -> RegistriesConf:
    """Read and merge registries.conf files; a missing default file is no error."""
    conf = RegistriesConf()
    for path in default_paths(explicit):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            if path == explicit:
                raise UsageError(f"reading registries.conf: {path} does not exist") from None
            continue
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"reading registries.conf {path}: {exc}") from exc
        _merge(conf, data, path)
    return conf


def _merge(conf: RegistriesConf, data: dict[str, object], path: Path) -> None:
    conf.sources.append(path)
    if "unqualified-search-registries" in data:
        conf.unqualified_search = [str(v) for v in _list(data["unqualified-search-registries"])]
    aliases = data.get("aliases")
    if isinstance(aliases, dict):
        conf.aliases.update({str(k): str(v) for k, v in aliases.items()})
    for raw in _list(data.get("registry", [])):
        if not isinstance(raw, dict):
            raise UsageError(f"reading registries.conf {path}: [[registry]] must be a table")
        location = str(raw.get("location", "")).rstrip("/")
        prefix = str(raw.get("prefix") or location)
        if not prefix:
            raise UsageError(f"reading registries.conf {path}: [[registry]] needs a location")
        mirrors = tuple(
            Mirror(
                str(m.get("location", "")).rstrip("/"),
                bool(m.get("insecure", False)),
                str(raw.get("mirror-by-digest-only") and "digest-only"
                    or m.get("pull-from-mirror", "all")),
            )
            for m in _list(raw.get("mirror", []))
            if isinstance(m, dict)
        )
        conf.registries[prefix] = RegistryEntry(
            prefix, location or prefix, bool(raw.get("insecure", False)),
            bool(raw.get("blocked", False)), mirrors,
        )
    v1 = data.get("registries")
    if isinstance(v1, dict):
        search = v1.get("search", {})
        if isinstance(search, dict) and "registries" in search:
            conf.unqualified_search = [str(v) for v in _list(search["registries"])]
        for key, attr in (("insecure", "insecure"), ("block", "blocked")):
            table = v1.get(key, {})
            for host in _list(table.get("registries", []) if isinstance(table, dict) else []):
                old = conf.registries.get(str(host)) or RegistryEntry(str(host), str(host))
                conf.registries[str(host)] = RegistryEntry(
                    old.prefix, old.location,
                    old.insecure or attr == "insecure", old.blocked or attr == "blocked",
                    old.mirrors,
                )


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []
