"""One module per subcommand: ``add_arguments(parser, name)`` and ``run(args, options)``."""

from __future__ import annotations


def key_values(values: list[str], flag: str) -> dict[str, str]:
    """``KEY=VALUE`` arguments of a repeatable flag, e.g. ``--label``, as a dict."""
    from builder.errors import UsageError

    out: dict[str, str] = {}
    for raw in values:
        key, sep, value = raw.partition("=")
        if not key or not sep:
            raise UsageError(f"parsing {flag} {raw!r}: expected KEY=VALUE")
        out[key] = value
    return out
