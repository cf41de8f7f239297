"""``pybuild login REGISTRY`` and ``pybuild logout [--all] [REGISTRY]``.

Login checks the credentials against the registry before storing them in
auth.json (mode 0600). Passwords are read from ``-p``, ``--password-stdin`` or a
prompt, and are never printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from builder.cli import GlobalOptions
    from builder.registry.credentials import Credentials

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    from builder.registry.flags import add_tls_flags

    if name == "logout":
        parser.add_argument("-a", "--all", action="store_true", help="remove every credential")
        parser.add_argument("--authfile", type=Path, metavar="FILE",
                            help="credentials file (env REGISTRY_AUTH_FILE)")
        parser.add_argument("registry", nargs="?", metavar="REGISTRY")
        return
    add_tls_flags(parser)
    parser.add_argument("-u", "--username", help="user name")
    parser.add_argument("-p", "--password", help="password (prefer --password-stdin)")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the password from standard input")
    parser.add_argument("--get-login", action="store_true",
                        help="print the user name stored for REGISTRY")
    parser.add_argument("registry", metavar="REGISTRY")


def _key(text: str) -> str:
    """``docker://host/ns/`` or ``https://host`` -> ``host/ns``."""
    for prefix in ("docker://", "https://", "http://"):
        text = text.removeprefix(prefix)
    return text.rstrip("/")


def run(args: argparse.Namespace, options: GlobalOptions) -> int:
    from builder.errors import AuthenticationError, UsageError
    from builder.registry import credentials

    if args.command == "logout":
        if args.all:
            credentials.remove_credentials(None, authfile=args.authfile)
            print("Removed login credentials for all registries")
            return 0
        if not args.registry:
            raise UsageError("logging out: name a registry or pass --all")
        key = _key(args.registry)
        if not credentials.remove_credentials(key, authfile=args.authfile):
            raise AuthenticationError(f"logging out of {key}: not logged in", registry=key)
        print(f"Removed login credentials for {key}")
        return 0

    key = _key(args.registry)
    registry, _, repository = key.partition("/")
    if args.get_login:
        found = credentials.find_credentials(registry, repository or None, authfile=args.authfile)
        if found is None:
            raise AuthenticationError(f"getting login for {key}: not logged in", registry=key)
        print(found.username)
        return 0
    if args.password is not None and args.password_stdin:
        raise UsageError("logging in: --password and --password-stdin are mutually exclusive")
    username = args.username or _prompt("Username: ")
    if args.password_stdin:
        password = sys.stdin.read().rstrip("\r\n")
    elif args.password is not None:
        print("WARNING! Using --password via the command line is insecure; "
              "prefer --password-stdin", file=sys.stderr)
        password = args.password
    else:
        import getpass

        password = getpass.getpass("Password: ")
    if not username:
        raise UsageError("logging in: the user name is empty")
    creds = credentials.Credentials(username, password)
    _verify(registry, creds, args)
    credentials.store_credentials(key, creds, authfile=args.authfile)
    print("Login Succeeded!")
    return 0


def _prompt(text: str) -> str:
    if not sys.stdin.isatty():
        from builder.errors import UsageError

        raise UsageError("logging in: no user name given (use -u) and no terminal to ask on")
    return input(text).strip()


def _verify(registry: str, creds: Credentials, args: argparse.Namespace) -> None:
    from builder.errors import AuthenticationError, PybuildError
    from builder.registry.client import RegistryClient, RegistryOptions, in_context
    from builder.registry.config import load_registries_conf
    options = RegistryOptions(tls_verify=args.tls_verify, cert_dir=args.cert_dir)
    insecure = load_registries_conf().is_insecure(registry)
    client = RegistryClient(registry, options, insecure=insecure, credentials=creds)
    try:
        client.login()
    except AuthenticationError as exc:
        raise AuthenticationError(
            f"logging in to {registry}: invalid username or password (HTTP {exc.status or 401})",
            registry=registry, status=exc.status,
        ) from exc
    except PybuildError as exc:
        raise in_context(f"logging in to {registry}", exc) from exc
    finally:
        client.close()
