"""``pybuild parse``: parse a Containerfile and print its instructions.

Default output is one line per instruction with its position; ``--dump`` is
the reference s-expression dump; ``--json`` the typed instructions with
positions. Warnings go to stderr as ``FILE:LINE:COL: warning: Rule: message``.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from builder.cli import GlobalOptions
    from builder.instructions.model import Containerfile
    from builder.source import Finding

__all__ = ["add_arguments", "format_warning", "read_source", "run"]



def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("-f", "--file", help="the Containerfile ('-' reads standard input)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--dump", action="store_true", help="print the reference node dump")
    output.add_argument("--json", action="store_true", help="print typed instructions as JSON")
    parser.add_argument("context", nargs="?", help="directory holding the Containerfile")


def read_source(file: str | None, context: str | None) -> tuple[str, bytes]:
    """The path (as shown to people) and bytes of the Containerfile ``bud`` would use
    with the same ``-f`` and context (the default one found inside the context)."""
    from builder.context import open_context, read_containerfile

    source = read_containerfile(open_context(context or "."), file, sys.stdin.buffer)
    return source.display, source.text


def format_warning(warning: Finding, path: str) -> str:
    where = str(warning.location) if warning.location else path
    return f"{where}: warning: {warning.rule}: {warning.message}"


def _jsonable(value: Any) -> Any:
    from dataclasses import fields, is_dataclass

    from builder.source import Location

    if isinstance(value, Location):
        span = value.span
        return {"file": value.file, "line": span.line, "column": span.column,
                "end_line": span.end_line, "end_column": span.end_column}
    if is_dataclass(value) and not isinstance(value, type):
        data = {"type": type(value).__name__} if hasattr(value, "keyword") else {}
        data.update({f.name.rstrip("_"): _jsonable(getattr(value, f.name)) for f in fields(value)})
        return data
    if isinstance(value, (tuple, list)):
        return [_jsonable(item) for item in value]
    return value


def _readable(cf: Containerfile) -> str:
    from builder.instructions.render import render

    def line(instruction: Any, indent: str) -> str:
        span = instruction.location.span
        text = render(instruction, cf.escape).splitlines()[len(instruction.comments)]
        return f"{indent}{span.line}:{span.column}\t{text}"

    out = [line(arg, "") for arg in cf.meta_args]
    for stage in cf.stages:
        name = f" ({stage.name})" if stage.name else ""
        out.append(f"stage {stage.index}{name}")
        out += [line(i, "  ") for i in (stage.base, *stage.instructions)]
    return "\n".join(out)


def run(args: argparse.Namespace, options: GlobalOptions) -> int:
    import json

    path, data = read_source(args.file, args.context)
    if args.dump:
        from builder.syntax.nodes import dump_nodes, parse_nodes

        result = parse_nodes(data, path)
        warnings = result.warnings
        print(dump_nodes(result.nodes))
    else:
        from builder.instructions.parse import parse_containerfile

        cf = parse_containerfile(data, path)
        warnings = cf.warnings
        if args.json:
            print(json.dumps(_jsonable(cf), indent=2, ensure_ascii=False))
        else:
            print(_readable(cf))
    for warning in warnings:
        print(format_warning(warning, path), file=sys.stderr)
    return 0
