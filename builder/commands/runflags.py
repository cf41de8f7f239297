"""The flags that shape RUN's sandbox, shared by ``bud``, ``run`` and ``from``.

``add_network_flags`` and ``add_resource_flags`` declare them (Buildah's names,
short forms and value syntax); ``run_settings`` turns the parsed arguments into
one frozen ``RunSettings``, checked against this host (so a bad value fails before
anything runs), and warns about settings this host or isolation leaves unused
(SELinux labels without SELinux, ``--runtime`` with chroot isolation, ...).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from builder.runsettings import Device, IdMapping, RunSettings, Ulimit, Volume

__all__ = ["add_network_flags", "add_resource_flags", "run_settings"]


def add_network_flags(parser: argparse.ArgumentParser) -> None:
    """``--network``, ``--dns*``, ``--add-host``, ``--no-hosts`` and ``--http-proxy``."""
    from builder.executor.network import ACCEPTED_MODES

    add = parser.add_argument
    add("--network", "--net", dest="network", default=None, metavar="MODE",
        help=f"network for RUN: {', '.join(ACCEPTED_MODES)} (default: private, connected "
             "through slirp4netns or pasta)")
    add("--dns", action="append", default=[], metavar="IP",
        help="nameserver for RUN's /etc/resolv.conf (repeatable); none: leave the image's")
    add("--dns-search", action="append", default=[], metavar="DOMAIN",
        help="search domain for RUN's /etc/resolv.conf (repeatable)")
    add("--dns-option", action="append", default=[], metavar="OPTION",
        help="resolver option for RUN's /etc/resolv.conf (repeatable)")
    add("--add-host", action="append", default=[], metavar="HOST:IP",
        help="add a line to RUN's /etc/hosts (repeatable); IP host-gateway is the host")
    add("--no-hosts", action="store_true",
        help="do not generate /etc/hosts for RUN; the image's is used")
    add("--http-proxy", nargs="?", const="true", default=None, metavar="true|false",
        help="pass the caller's HTTP_PROXY, HTTPS_PROXY, FTP_PROXY, NO_PROXY and ALL_PROXY "
             "(either case) into RUN (default: true)")


def add_resource_flags(parser: argparse.ArgumentParser) -> None:
    """Volumes, devices, capabilities, security options, limits, namespaces, the OCI
    runtime: Buildah's RUN flags beyond the network."""
    many: dict[str, Any] = {"action": "append", "default": []}
    add = parser.add_argument
    add("-v", "--volume", metavar="HOST-DIR:CONTAINER-DIR[:OPTIONS]", **many,
        help="bind a host directory into RUN (repeatable); options ro, rw, z, Z (no SELinux "
             "here: accepted), U (give it to the step's user), O (writes thrown away); what "
             "is written there never reaches a layer")
    add("--device", metavar="HOST[:CONTAINER][:PERMS]", **many,
        help="make a host device (or a directory of them) available to RUN; PERMS r, w, m "
             "are enforced with --isolation oci")
    add("--cap-add", metavar="CAP", **many,
        help="add a capability for RUN (NET_ADMIN or CAP_NET_ADMIN, ALL; repeatable)")
    add("--cap-drop", metavar="CAP", **many,
        help="drop a capability for RUN (ALL drops every one; repeatable)")
    add("--security-opt", metavar="OPTION", **many,
        help="no-new-privileges, seccomp=PROFILE.json|unconfined (default: the "
             "containers' seccomp.json), apparmor=PROFILE, label=OPTION (used only where "
             "the host has AppArmor or SELinux)")
    add("--ulimit", metavar="NAME=SOFT[:HARD]", **many,
        help="a resource limit for RUN: nofile=1024:2048, nproc, core, stack ... (-1: none)")
    add("--shm-size", default=None, metavar="SIZE",
        help="size of RUN's /dev/shm (default 64m)")
    add("-m", "--memory", default=None, metavar="SIZE",
        help="memory limit for RUN (b, k, m, g); needs a cgroup this user may create")
    add("--memory-swap", default=None, metavar="SIZE",
        help="memory plus swap limit for RUN; -1: unlimited swap")
    add("--cpu-period", type=int, default=None, metavar="MICROSECONDS",
        help="CFS period for RUN's CPU quota")
    add("--cpu-quota", type=int, default=None, metavar="MICROSECONDS",
        help="CFS quota: CPU time RUN may use per period")
    add("-c", "--cpu-shares", type=int, default=None, metavar="SHARES",
        help="CPU shares (relative weight) for RUN")
    add("--cpuset-cpus", default=None, metavar="CPUS", help="CPUs RUN may use (0-3, 0,1)")
    add("--cpuset-mems", default=None, metavar="NODES",
        help="memory nodes RUN may use (NUMA systems)")
    add("--cgroup-parent", default=None, metavar="PATH",
        help="the cgroup under which RUN's cgroup is made")
    for name, what in (("pid", "PID"), ("ipc", "IPC"), ("uts", "UTS")):
        add(f"--{name}", default=None, metavar="private|host|PATH",
            help=f"RUN's {what} namespace: private (default), host, or the path of one to join")
    add("--cgroupns", default=None, metavar="private|host|PATH",
        help="RUN's cgroup namespace: host (default), private, or the path of one to join")
    add("--userns", default=None, metavar="private|host|PATH",
        help="RUN's user namespace: host (default: the one pybuild runs in), private "
             "(container), or the path of one to join")
    add("--userns-uid-map", metavar="CONTAINER-UID:HOST-UID:SIZE", **many,
        help="a uid range for RUN's own user namespace (repeatable)")
    add("--userns-gid-map", metavar="CONTAINER-GID:HOST-GID:SIZE", **many,
        help="a gid range for RUN's own user namespace (repeatable)")
    add("--userns-uid-map-user", default=None, metavar="NAME",
        help="make RUN's uid map from NAME's ranges in /etc/subuid")
    add("--userns-gid-map-group", default=None, metavar="NAME",
        help="make RUN's gid map from NAME's ranges in /etc/subgid")
    add("--runtime", default=None, metavar="PATH",
        help="the OCI runtime for --isolation oci (default runc; env BUILDAH_RUNTIME)")
    add("--runtime-flag", metavar="FLAG", **many,
        help="a global flag for the OCI runtime, without its dashes (debug, log=FILE)")
    add("--hooks-dir", metavar="DIR", **many,
        help="a directory of OCI hook definitions, for --isolation oci (repeatable)")


def run_settings(args: argparse.Namespace) -> RunSettings:
    """The RUN settings the flags asked for, checked; fields not given keep their
    defaults. Warns about what this host or isolation leaves unused."""
    from builder.errors import UsageError
    from builder.executor.confinement import check_run_settings, unused, warn

    proxy = None
    if args.http_proxy is not None:
        lowered = args.http_proxy.lower()
        if lowered not in ("true", "false", "1", "0"):
            raise UsageError(f"parsing --http-proxy {args.http_proxy!r}: expected true or false")
        proxy = lowered in ("true", "1")
    settings = RunSettings(
        network=args.network or "",
        dns=tuple(_split(args.dns)), dns_search=tuple(_split(args.dns_search)),
        dns_options=tuple(args.dns_option), add_hosts=tuple(args.add_host),
        no_hosts=args.no_hosts, http_proxy=proxy,
    )
    if hasattr(args, "cap_add"):
        settings = _resources(args, settings)
    settings = check_run_settings(settings)
    isolation = getattr(args, "isolation", None) or os.environ.get("BUILDAH_ISOLATION") \
        or "chroot"
    warn(unused(settings, isolation))
    return settings


def _resources(args: argparse.Namespace, base: RunSettings) -> RunSettings:
    from dataclasses import replace

    from builder.runsettings import parse_bytes, parse_namespace

    values: dict[str, Any] = {
        "volumes": tuple(Volume.parse(v) for v in args.volume),
        "devices": tuple(Device.parse(d) for d in args.device),
        "cap_add": tuple(_split(args.cap_add)), "cap_drop": tuple(_split(args.cap_drop)),
        "ulimits": tuple(Ulimit.parse(u) for u in _split(args.ulimit)),
        "cpu_period": args.cpu_period, "cpu_quota": args.cpu_quota,
        "cpu_shares": args.cpu_shares, "cpuset_cpus": args.cpuset_cpus or "",
        "cpuset_mems": args.cpuset_mems or "", "cgroup_parent": args.cgroup_parent or "",
        "uid_map": tuple(m for text in args.userns_uid_map
                         for m in IdMapping.parse_list(text, "--userns-uid-map")),
        "gid_map": tuple(m for text in args.userns_gid_map
                         for m in IdMapping.parse_list(text, "--userns-gid-map")),
        "uid_map_user": args.userns_uid_map_user or "",
        "gid_map_group": args.userns_gid_map_group or "",
        "runtime": args.runtime or "", "runtime_flags": tuple(_split(args.runtime_flag)),
        "hooks_dirs": tuple(os.path.abspath(d) for d in args.hooks_dir),
    }
    if args.shm_size is not None:
        values["shm_size"] = parse_bytes(args.shm_size, "--shm-size")
    if args.memory is not None:
        values["memory"] = parse_bytes(args.memory, "--memory")
    if args.memory_swap is not None:
        values["memory_swap"] = -1 if args.memory_swap.strip() == "-1" else \
            parse_bytes(args.memory_swap, "--memory-swap")
    for name in ("pid", "ipc", "uts", "cgroupns"):
        if getattr(args, name) is not None:
            values[name] = parse_namespace(getattr(args, name), f"--{name}")
    if args.userns is not None:
        values["userns"] = parse_namespace(args.userns, "--userns", extra=("auto",)) \
            if not args.userns.startswith("auto:") else args.userns
    values.update(_security(args.security_opt))
    return replace(base, **values)


def _security(options: list[str]) -> dict[str, object]:
    """``--security-opt`` values as Buildah (and newer Buildah for no-new-privileges)
    takes them."""
    from builder.errors import UsageError

    out: dict[str, object] = {}
    labels: list[str] = []
    for option in options:
        name, sep, value = option.partition("=")
        if not sep and ":" in option:  # Docker's older key:value spelling
            name, sep, value = option.partition(":")
        if name == "no-new-privileges":
            if sep and value.lower() not in ("true", "false"):
                raise UsageError(f"parsing --security-opt {option!r}: expected true or false")
            out["no_new_privileges"] = not sep or value.lower() == "true"
        elif name == "seccomp" and value:
            out["seccomp"] = value if value == "unconfined" else os.path.abspath(value)
        elif name == "apparmor" and value:
            out["apparmor"] = value
        elif name == "label" and value:
            labels.append(value)
        else:
            raise UsageError(f"parsing --security-opt {option!r}: unknown option (accepted: "
                             "no-new-privileges, seccomp=PROFILE|unconfined, apparmor=PROFILE, "
                             "label=OPTION)")
    if labels:
        out["label_options"] = tuple(labels)
    return out


def _split(values: list[str]) -> list[str]:
    """``--dns 1.1.1.1,8.8.8.8`` and repeated flags alike, as Buildah's string slices."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]
