"""The flags that shape RUN's sandbox, shared by ``bud``, ``run`` and ``from``.

``add_network_flags`` declares them; ``run_settings`` turns the parsed
arguments into one frozen ``RunSettings`` (checked, so a bad value fails
before anything runs). RUN's resource and security flags belong here too,
declared by their own ``add_*_flags`` and read by ``run_settings``.
"""

from __future__ import annotations

import argparse

from builder.runsettings import RunSettings

__all__ = ["add_network_flags", "run_settings"]


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


def run_settings(args: argparse.Namespace) -> RunSettings:
    """The RUN settings the flags asked for; fields not given keep their defaults."""
    from builder.errors import UsageError
    from builder.executor.network import check_settings

    proxy = None
    if args.http_proxy is not None:
        lowered = args.http_proxy.lower()
        if lowered not in ("true", "false", "1", "0"):
            raise UsageError(f"parsing --http-proxy {args.http_proxy!r}: expected true or false")
        proxy = lowered in ("true", "1")
    return check_settings(RunSettings(
        network=args.network or "",
        dns=tuple(_split(args.dns)), dns_search=tuple(_split(args.dns_search)),
        dns_options=tuple(args.dns_option), add_hosts=tuple(args.add_host),
        no_hosts=args.no_hosts, http_proxy=proxy,
    ))


def _split(values: list[str]) -> list[str]:
    """``--dns 1.1.1.1,8.8.8.8`` and repeated flags alike, as Buildah's string slices."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]
