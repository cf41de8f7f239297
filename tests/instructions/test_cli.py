"""`pybuild parse` through the real CLI in a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

CONTAINERFILE = """\
ARG BASE=alpine:3.19
FROM ${BASE} AS build
MAINTAINER someone
RUN --mount=type=cache,target=/c make
FROM scratch
COPY --from=build /out /
"""


def test_parse_dump(pybuild, tmp_path: Path, corpus: Path) -> None:  # type: ignore[no-untyped-def]
    case = corpus / "parser" / "testfiles" / "flags"
    result = pybuild("parse", "--dump", "-f", case / "Dockerfile")
    assert result.stdout == (case / "result").read_text()


def test_parse_default_context_and_warnings(pybuild, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "Dockerfile").write_text(CONTAINERFILE)
    result = pybuild("parse", tmp_path)
    assert "stage 0 (build)" in result.stdout and "stage 1" in result.stdout
    assert "  4:1\tRUN --mount=type=cache,target=/c make" in result.stdout
    assert f"{tmp_path / 'Dockerfile'}:3:1: warning: MaintainerDeprecated: " in result.stderr
    (tmp_path / "Containerfile").write_text("FROM preferred\n")
    assert "FROM preferred" in pybuild("parse", tmp_path).stdout


def test_parse_json_from_stdin(pybuild) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(pybuild("parse", "--json", "-f", "-", input=CONTAINERFILE).stdout)
    assert data["meta_args"][0]["args"] == [{"name": "BASE", "default": "alpine:3.19"}]
    run = data["stages"][0]["instructions"][1]
    assert run["type"] == "RunInstruction"
    assert [(x["type"], x["target"]) for x in run["mounts"]] == [("cache", "/c")]
    assert run["location"] == {"file": "<stdin>", "line": 4, "column": 1, "end_line": 4,
                               "end_column": 38}
    assert data["stages"][1]["instructions"][0]["from"] == "build"
    assert data["warnings"][0]["rule"] == "MaintainerDeprecated"


def test_parse_error_is_rendered_with_caret(pybuild, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "Containerfile"
    path.write_text("FROM a\n\n    COPY onlyone\n")
    result = pybuild("parse", "-f", path, check=False)
    assert result.returncode == 125
    assert f"{path}:3:5: COPY requires at least two arguments" in result.stderr
    assert "3 |     COPY onlyone\n  |     ^" in result.stderr


def test_parse_missing_file(pybuild, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = pybuild("parse", tmp_path, check=False)
    assert result.returncode == 125 and "Containerfile or Dockerfile" in result.stderr


def test_parse_and_lint_read_the_file_bud_reads(pybuild, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A default Containerfile that is a symlink is resolved inside the context, for
    parse and lint as for bud: one that leads out of it is refused by all three."""
    (tmp_path / "outside").write_text("FROM outside\n")
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Containerfile").symlink_to(tmp_path / "outside")
    for command in ("parse", "lint", "bud"):
        result = pybuild(command, context, check=False)
        assert result.returncode == 125, (command, result.output)
        assert "not a regular file inside the context" in result.stderr, command
    (context / "Dockerfile").write_text("FROM inside\n")
    (context / "Containerfile").unlink()
    assert "FROM inside" in pybuild("parse", context).stdout
