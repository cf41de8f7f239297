"""``pybuild lint``: check a Containerfile against the lint rules.

Warnings are printed as ``FILE:LINE:COL: warning: Rule: message``; with
``--error`` any warning makes the exit status 1. Rules can be skipped with
``--skip`` or a ``# check=skip=Rule`` directive.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from builder.cli import GlobalOptions

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("-f", "--file", help="the Containerfile ('-' reads standard input)")
    parser.add_argument("--error", action="store_true", help="exit 1 when there are warnings")
    parser.add_argument("--skip", action="append", default=[], metavar="RULE",
                        help="do not run RULE (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the rules and exit")
    parser.add_argument("context", nargs="?", help="directory holding the Containerfile")


def run(args: argparse.Namespace, options: GlobalOptions) -> int:
    from builder.commands.parse import format_warning, read_source
    from builder.instructions.parse import parse_containerfile
    from builder.lint import RULES, check_rule_names, lint_containerfile, rules_from_directive
    from builder.syntax.lines import read_directives

    if args.list:
        for rule in RULES:
            print(f"{rule.name:<28} {rule.description}")
        return 0
    check_rule_names(args.skip)
    path, data = read_source(args.file, args.context)
    cf = parse_containerfile(data, path)
    skip = [*args.skip, *rules_from_directive(read_directives(data, path).get("check"))]
    context = Path(args.context) if args.context else None
    warnings = lint_containerfile(cf, context, skip)
    for warning in warnings:
        print(format_warning(warning, path))
    return 1 if warnings and args.error else 0
