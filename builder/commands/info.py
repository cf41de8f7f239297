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
    import platform

    from builder.cli import VERSION

    versions = {"pybuild": VERSION, "python": platform.python_version(),
                "kernel": platform.release(), "runc": _runc_version()}
    if args.command == "version":
        for key, value in versions.items():
            print(f"{key + ':':<10} {value}")
        return 0
    from builder import userns
    from builder.executor.network import tool_summary
    from builder.rootfs.workspace import describe_driver, detect_driver

    driver = options.storage_driver or detect_driver(options.root)
    rootless = userns.rootless()
    maps = userns.describe_maps()
    network = tool_summary()
    info: dict[str, Mapping[str, object]] = {
        "store": {"root": str(options.root), "driver": driver,
                  "driver_detail": describe_driver(options.root, driver),
                  "runroot": str(userns.runtime_dir(create=False))},
        "isolation": {"default": "chroot", "available": ["chroot", "oci"],
                      "rootless": rootless,
                      "uid_map": [list(r) for r in maps["uid"]],
                      "gid_map": [list(r) for r in maps["gid"]]},
        "network": network,
        "versions": versions,
    }
    if args.format == "json":
        import json

        print(json.dumps(info, indent=2))
        return 0
    print(f"store root:      {info['store']['root']}")
    print(f"run root:        {info['store']['runroot']}")
    print(f"storage driver:  {info['store']['driver_detail']}")
    print("isolation:       chroot (default), oci")
    print(f"network:         {_network_line(network)}")
    print(f"rootless:        {'yes' if rootless else 'no'}")
    if rootless:
        for kind in ("uid", "gid"):
            text = ", ".join(f"{a}->{b}" + (f" ({n})" if n > 1 else "") for a, b, n in maps[kind])
            print(f"{kind} map:         {text}")
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
