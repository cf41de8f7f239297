"""What one step runs and with what: the description both ways of running it share.

``RunSpec`` is the command, its environment, working directory, user, host name,
mounts (``MountSpec``), isolation and the RUN flags' ``RunSettings``. ``step_env``
is the environment the command gets, ``etc_files`` the contents bound at
``/etc/hosts``, ``/etc/resolv.conf`` and ``/etc/hostname``. Proxy variables from the
caller's environment are added here, so they never reach an image's config, history
or cache key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from builder.executor.network import Network, hosts_file, resolv_conf
from builder.rootfs.paths import resolve_in_root
from builder.runsettings import PROXY_VARIABLES, RunSettings

__all__ = ["MountSpec", "RunSpec", "etc_files", "step_env"]


@dataclass(frozen=True)
class MountSpec:
    """One mount for a step.

    ``type`` is bind, cache (a bind of a persistent directory), tmpfs or
    secret. A secret's bytes are in ``data``; it is written to a private
    tmpfs and bound at ``target`` (or only exported as ``env`` when ``target``
    is empty). ``discard_writes`` gives a writable bind whose writes are
    thrown away (a private copy). ``sharing`` applies to caches: shared,
    private or locked. ``hidden`` lists paths below a bind's source (relative to it)
    that the step must not see: the ignore file's exclusions in a bind of the context
    (``builder.executor.contextview``). ``options`` are a volume's nosuid, nodev, noexec
    and bind.
    """

    type: str
    source: Path | None
    target: str
    readonly: bool = True
    sharing: str = "shared"
    uid: int | None = None
    gid: int | None = None
    mode: int | None = None
    size: int | None = None
    discard_writes: bool = False
    data: bytes | None = None
    env: str | None = None
    hidden: tuple[str, ...] = ()
    options: tuple[str, ...] = ()  # a volume's nosuid, nodev, noexec; bind (not recursive)


@dataclass(frozen=True)
class RunSpec:
    """What to run and how; ``user`` is a USER value resolved inside the root;
    ``settings`` holds the network mode (``settings.network``) and the rest of what
    the RUN flags set (volumes, capabilities, limits, namespaces ...)."""

    argv: list[str]
    env: list[str]
    cwd: str = "/"
    user: str = ""
    hostname: str = "pybuild"
    mounts: tuple[MountSpec, ...] = ()
    stdin: bool = False
    isolation: str = "chroot"
    settings: RunSettings = field(default=RunSettings())


def step_env(spec: RunSpec, home: str, mounts: list[MountSpec]) -> list[str]:
    """The step's environment: ``spec.env`` with the caller's proxy variables (unless
    ``--http-proxy=false``), HOME and PATH when unset, and secrets exported as variables."""
    env = list(spec.env)
    names = {item.partition("=")[0] for item in env}
    if spec.settings.passes_proxies:  # the caller's proxies, under everything the step sets
        env = [f"{k}={os.environ[k]}" for k in PROXY_VARIABLES
               if k in os.environ and k not in names] + env
    if "HOME" not in names:
        env.append(f"HOME={home}")
    if "PATH" not in names:
        env.append("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    for m in mounts:
        if m.type == "secret" and m.env and m.data is not None:
            env.append(f"{m.env}={m.data.decode('utf-8', 'replace')}")
    return env


def etc_files(root: Path, spec: RunSpec, network: Network) -> dict[str, bytes]:
    """Contents bound at /etc/hosts, /etc/resolv.conf and /etc/hostname (the first two
    are left out when ``--no-hosts`` or ``--dns=none`` leave them to the image)."""
    try:
        own = resolve_in_root(root, "/etc/hosts").read_text(errors="replace")
    except OSError:
        own = ""
    try:
        host_resolv = Path("/etc/resolv.conf").read_text(errors="replace")
    except OSError:
        host_resolv = ""
    files = {"/etc/hosts": hosts_file(network, spec.settings, own, spec.hostname),
             "/etc/resolv.conf": resolv_conf(network, spec.settings, host_resolv),
             "/etc/hostname": f"{spec.hostname}\n".encode()}
    return {target: data for target, data in files.items() if data is not None}

