"""Real-world Dockerfiles and Buildah's bud contexts through the typed parser."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest

from builder.errors import InstructionError
from builder.instructions import model as m
from builder.instructions.parse import parse_containerfile
from builder.instructions.render import render_containerfile
from builder.syntax.nodes import parse_nodes

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "corpus"
REAL_WORLD = sorted((CORPUS / "real-world").rglob("*.Dockerfile"))
BUD = CORPUS / "buildah-bud" / "bud"
PARSER_CASES = sorted(p for p in (CORPUS / "parser" / "testfiles").iterdir() if p.is_dir())


def _comparable(instruction: m.Instruction) -> m.Instruction:
    """The instruction without what rendering cannot keep: position and original text."""
    changes: dict[str, object] = {"location": None, "original": ""}
    if isinstance(instruction, m.OnbuildInstruction):
        changes.update(trigger=_comparable(instruction.trigger), expression="")
    return replace(instruction, **changes)  # type: ignore[arg-type]


def _flatten(cf: m.Containerfile) -> list[m.Instruction]:
    out = [_comparable(arg) for arg in cf.meta_args]
    for stage in cf.stages:
        out += [_comparable(i) for i in (stage.base, *stage.instructions)]
    return out


def test_real_world_size() -> None:
    assert len(REAL_WORLD) == 350


def test_real_world_parse_and_round_trip() -> None:
    """Every file parses; render → parse gives equal instructions (one test: it is fast)."""
    for path in REAL_WORLD:
        cf = parse_containerfile(path.read_bytes(), str(path))
        again = parse_containerfile(render_containerfile(cf), str(path))
        assert _flatten(again) == _flatten(cf), path.name
        assert [s.name for s in again.stages] == [s.name for s in cf.stages]


def _theirs(data: bytes) -> list[dict[str, object]]:
    from dockerfile_parse import DockerfileParser

    structure = DockerfileParser(fileobj=io.BytesIO(data)).structure
    return [s for s in structure if s["instruction"] != "COMMENT"]


def _differences(data: bytes) -> set[str]:
    ours = parse_nodes(data).nodes
    theirs = _theirs(data)
    kinds = set()
    if len(ours) != len(theirs):
        kinds.add("count")
    for node, other in zip(ours, theirs):
        if other["instruction"] != node.keyword.upper():
            kinds.add("keyword")
        if (other["startline"] + 1, other["endline"] + 1) != (node.span.line, node.span.end_line):
            kinds.add("lines")
        if other["value"] != node.original[len(node.keyword):].strip():
            kinds.add("value")
    return kinds


def test_differential_against_dockerfile_parse_real_world() -> None:
    """Keywords, 1-based line ranges and values agree on every real-world file."""
    pytest.importorskip("dockerfile_parse")
    disagreeing = {p.name: d for p in REAL_WORLD if (d := _differences(p.read_bytes()))}
    assert disagreeing == {}


# Where dockerfile-parse reads BuildKit's edge cases differently, and why.
BLANK_ENDS = "an empty line inside a continuation ends the instruction in dockerfile-parse; " \
             "BuildKit skips it (with a NoEmptyContinuation warning) and keeps going"
KNOWN_DIFFERENCES = {
    "brimstone-consuldock": BLANK_ENDS,
    "brimstone-docker-consul": BLANK_ENDS,
    "continueIndent": BLANK_ENDS,
    "escapes": BLANK_ENDS,
    "continue-at-eof": "dockerfile-parse drops an instruction still continued at end of file",
    "env": "dockerfile-parse drops an instruction still continued at end of file",
    "trailing-backslash": "two escape characters at the end do not continue in BuildKit; "
                          "dockerfile-parse joins the next line",
}


@pytest.mark.parametrize("case", PARSER_CASES, ids=lambda p: p.name)
def test_differential_against_dockerfile_parse_edge_cases(case: Path) -> None:
    pytest.importorskip("dockerfile_parse")
    differs = bool(_differences((case / "Dockerfile").read_bytes()))
    assert differs == (case.name in KNOWN_DIFFERENCES), KNOWN_DIFFERENCES.get(case.name)


# What EXPECTATIONS.md says fails before anything is built, and the reason it gives.
BUD_FAILURES = {
    "add-checksum/Containerfile.bad": "ADD: missing a value on flag --checksum",
    "add-chmod/Dockerfile.bad": "ADD: missing a value on flag --chmod",
    "add-chown/Dockerfile.bad": "ADD: missing a value on flag --chown",
    "copy-chmod/Dockerfile.bad": "COPY: missing a value on flag --chmod",
    "copy-chown/Dockerfile.bad": "COPY: missing a value on flag --chown",
    "copy-from/Dockerfile.bad": "COPY: missing a value on flag --from",
    "copy-multistage-paths/Dockerfile.invalid_from": "COPY: missing a value on flag --from",
    "inline-network/Dockerfile3": "unsupported value for --network",
    "unrecognized/Dockerfile": "unknown instruction: BOGUS",
}
# Files that are not Containerfiles on their own.
BUD_NOT_STANDALONE = {
    "from-multiple-files/Dockerfile2.nofrom": "a fragment appended to another -f file (T136)",
}


def _bud_files() -> list[str]:
    names = []
    for path in sorted(BUD.rglob("*")):
        lowered = path.name.lower()
        if not path.is_file() or not ("dockerfile" in lowered or "containerfile" in lowered):
            continue
        if lowered.endswith((".in", ".dockerignore", ".containerignore")):
            continue  # cpp input (preprocessed first) and per-file ignore files
        names.append(str(path.relative_to(BUD)))
    return names


@pytest.mark.parametrize("name", _bud_files())
def test_buildah_bud_files(name: str) -> None:
    if name in BUD_NOT_STANDALONE:
        pytest.skip(BUD_NOT_STANDALONE[name])
    data = (BUD / name).read_bytes()
    if name in BUD_FAILURES:
        with pytest.raises(InstructionError, match=BUD_FAILURES[name]):
            parse_containerfile(data, name)
    else:
        assert parse_containerfile(data, name).stages
