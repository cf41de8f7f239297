"""Command-line flags shared by ``push``, ``pull`` and ``login`` (kept free of heavy imports)."""

from __future__ import annotations

import argparse
from pathlib import Path

from builder.registry.client import RegistryOptions

__all__ = ["add_registry_flags", "add_tls_flags", "registry_options"]


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"want true or false, not {text!r}")


def add_tls_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tls-verify", nargs="?", const=True, default=None, type=parse_bool, metavar="BOOL",
        help="verify the registry's certificate; =false also allows plain HTTP (default true)",
    )
    parser.add_argument("--cert-dir", type=Path, metavar="DIR",
                        help="CA certificates (*.crt) and client certificate (*.cert, *.key)")
    parser.add_argument("--authfile", type=Path, metavar="FILE",
                        help="credentials file (env REGISTRY_AUTH_FILE)")


def add_registry_flags(parser: argparse.ArgumentParser, *, quiet: bool = True) -> None:
    """The TLS, credential and retry flags; ``quiet`` also adds ``-q/--quiet``."""
    add_tls_flags(parser)
    parser.add_argument("--creds", metavar="USER[:PASS]", help="credentials for the registry")
    parser.add_argument("--registries-conf", type=Path, metavar="FILE",
                        help="registries.conf to use (env CONTAINERS_REGISTRIES_CONF)")
    parser.add_argument("--retry", type=int, default=3, metavar="N",
                        help="retries after server errors and dropped connections (default 3)")
    parser.add_argument("--retry-delay", type=_seconds, default=1.0, metavar="SECONDS",
                        help="first delay between retries, doubled each time (default 1s)")
    if quiet:
        parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def _seconds(text: str) -> float:
    try:
        return float(text.removesuffix("s"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"want seconds, not {text!r}") from None


def registry_options(args: argparse.Namespace, **extra: object) -> RegistryOptions:

    return RegistryOptions(
        tls_verify=args.tls_verify, cert_dir=args.cert_dir, authfile=args.authfile,
        creds=getattr(args, "creds", None), registries_conf=getattr(args, "registries_conf", None),
        retry=getattr(args, "retry", 3), retry_delay=getattr(args, "retry_delay", 1.0),
        **extra,  # type: ignore[arg-type]
    )
