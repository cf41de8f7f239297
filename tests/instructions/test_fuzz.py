"""Fuzzing: whatever the input, only PybuildError subclasses come out (small budget here;
``bench/fuzz_parser.py`` runs the same strategies for 10,000+ examples)."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings

from builder.errors import PybuildError
from builder.instructions.parse import parse_containerfile
from builder.instructions.render import render_containerfile
from builder.syntax.nodes import dump_nodes, parse_nodes

from .strategies import containerfiles
from .test_corpus import _flatten as flatten

_UNDECODABLE = re.compile("[\udc80-\udcff]")
FAST = settings(max_examples=100, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


def check_one(text: str | bytes) -> None:
    """The property fuzzed: errors are PybuildErrors; what parses re-renders to itself."""
    try:
        dump_nodes(parse_nodes(text).nodes)
    except PybuildError:
        pass
    try:
        cf = parse_containerfile(text)
    except PybuildError:
        return
    rendered = render_containerfile(cf)
    again = parse_containerfile(rendered)
    if not _UNDECODABLE.search(rendered):
        # Undecodable bytes cannot travel through the JSON form (BuildKit too turns them
        # into U+FFFD), so such files need only parse again.
        assert flatten(again) == flatten(cf)


@FAST
@given(containerfiles)
def test_only_pybuild_errors(text: str | bytes) -> None:
    check_one(text)
