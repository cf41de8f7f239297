"""How a RUN step (or ``pybuild run``) is set up around its command.

One frozen ``RunSettings`` carries what the command line (``--network``,
``--dns``, ``--add-host``, ``--http-proxy`` and the rest, parsed by
``builder.commands.runflags``) or the Python API asked for. It flows through
``BuildOptions`` and the state of working containers into the sandbox's
``RunSpec``. Today it holds the network settings; RUN's resource and security
settings belong here too.

A field left at its default means "not given": ``merged_over`` lets the
settings of ``pybuild run`` override those a working container was made with
(``pybuild from --network ...``), as Buildah does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

__all__ = ["PROXY_VARIABLES", "RunSettings"]

# The proxy variables passed from the caller's environment into RUN (--http-proxy) and
# accepted as build args without an ARG line, in both cases (BuildKit's list; Buildah
# 1.28's lacks ALL_PROXY).
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY",
                   "http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy")


@dataclass(frozen=True)
class RunSettings:
    """Settings of a step's sandbox beyond the command, user and mounts."""

    network: str = ""  # "" is the default: private (see builder.executor.network)
    dns: tuple[str, ...] = ()  # nameservers instead of the host's; ("none",): no resolv.conf
    dns_search: tuple[str, ...] = ()  # search domains instead of the host's; (".",): none
    dns_options: tuple[str, ...] = ()  # resolver options instead of the host's
    add_hosts: tuple[str, ...] = ()  # "NAME:IP" lines for /etc/hosts; IP may be host-gateway
    no_hosts: bool = False  # leave /etc/hosts to the image
    http_proxy: bool | None = None  # pass the caller's proxy variables (None: yes)

    @property
    def passes_proxies(self) -> bool:
        return self.http_proxy is not False

    def merged_over(self, base: RunSettings) -> RunSettings:
        """These settings where they were given, ``base``'s elsewhere; ``--add-host``
        entries add up."""
        given = {f.name: getattr(self, f.name) for f in fields(self)
                 if getattr(self, f.name) != f.default}
        if "add_hosts" in given:
            given["add_hosts"] = base.add_hosts + self.add_hosts
        return replace(base, **given)

    def to_json(self) -> dict[str, Any]:
        """The given fields, for a working container's saved state."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()
                if v != getattr(RunSettings, k)}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> RunSettings:
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                  for k, v in (data or {}).items() if k in known}
        return cls(**values)
