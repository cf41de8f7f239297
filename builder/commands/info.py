"""``pybuild info`` and ``pybuild version``: store, storage driver, isolation, versions."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from builder.cli import GlobalOptions


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    if name == "info":
        parser.add_argument("--format", choices=["text", "json"], default="text")


def _runc_version() -> str:
    import shutil
    import subprocess

    runc = shutil.which("runc")
    if runc is None:
        return "not installed"
    out = subprocess.run([runc, "--version"], capture_output=True, text=True).stdout
    return out.splitlines()[0].split()[-1] if out else "unknown"


def run(args: argparse.Namespace, options: GlobalOptions) -> int:
    import os
    import platform

    from builder.cli import VERSION

    versions = {"pybuild": VERSION, "python": platform.python_version(),
                "kernel": platform.release(), "runc": _runc_version()}
    if args.command == "version":
        for key, value in versions.items():
            print(f"{key + ':':<10} {value}")
        return 0
    from builder.executor.network import tool_summary
    from builder.rootfs.workspace import detect_driver

    network = tool_summary()
    info: dict[str, Mapping[str, object]] = {
        "store": {"root": str(options.root),
                  "driver": options.storage_driver or detect_driver(options.root)},
        "isolation": {"default": "chroot", "available": ["chroot", "oci"],
                      "rootless": os.geteuid() != 0},
        "network": network,
        "versions": versions,
    }
    if args.format == "json":
        import json

        print(json.dumps(info, indent=2))
        return 0
    print(f"store root:      {info['store']['root']}")
    print(f"storage driver:  {info['store']['driver']}")
    print("isolation:       chroot (default), oci")
    print(f"network:         {_network_line(network)}")
    print(f"rootless:        {'yes' if os.geteuid() != 0 else 'no'}")
    for key, value in versions.items():
        print(f"{key + ' version:':<16} {value}")
    return 0


def _network_line(network: Mapping[str, object]) -> str:
    """``private via slirp4netns 1.2.0 (default); also pasta; none, host, ns:PATH``."""
    tools = network["tools"]
    assert isinstance(tools, dict)
    if network["tool"]:
        default = f"private via {network['tool']} {network['tool_version']} (default)"
    else:
        default = "private (default) needs slirp4netns or pasta: neither is installed"
    others = [t if v == "unknown" else f"{t} {v}" for t, v in tools.items()
              if t != network["tool"] and v != "not installed"]
    return "; ".join([default, *(f"also {o}" for o in others), "none, host, ns:PATH"])
