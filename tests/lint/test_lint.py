"""Lint rules: a table of (rule, Containerfile, expected lines), plus the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.errors import UsageError
from builder.instructions.parse import parse_containerfile
from builder.lint import RULES, lint_containerfile, rules_from_directive

CLEAN_TAIL = "USER app\n"
CASES = [
    # (rule, Containerfile text, lines expected to warn)
    ("NoEmptyContinuation", "FROM a:1\nRUN x \\\n\n y\n", [2]),
    ("MaintainerDeprecated", "FROM a:1\nMAINTAINER me\n", [2]),
    ("LegacyKeyValueFormat", "FROM a:1\nENV A b\nENV C=d\nLABEL e f\n", [2, 4]),
    ("PrivilegedPortExposed", "FROM a:1\nEXPOSE 80/tcp 8080 443-445 ${P}\n", [2, 2]),
    ("FinalUserRoot", "FROM a:1\nUSER app\nFROM b:1\nRUN x\n", [3]),
    ("FinalUserRoot", "FROM a:1\nUSER 0:0\n", [2]),
    ("FinalUserRoot", "FROM a:1\nUSER root\nUSER app\n", []),
    ("UnpinnedBaseImage",
     "FROM a AS one\nFROM b:latest\nFROM one\nFROM scratch\nFROM r.example:5000/c\n"
     "FROM d@sha256:00\nFROM $X\nFROM e:1\n", [1, 2, 5]),
    ("WorkdirRelativePath", "FROM a:1\nWORKDIR app\nWORKDIR /srv\nWORKDIR sub\n", [2]),
    ("PackageCacheNotCleaned",
     "FROM a:1\nRUN apt-get update && apt-get install -y x\n"
     "RUN apt-get install -y y && rm -rf /var/lib/apt/lists/*\n"
     "RUN dnf install -y z\nRUN yum -y install w && yum clean all\n"
     "RUN --mount=type=cache,target=/var/cache/apt apt-get install -y v\n", [2, 4]),
    ("ConsecutiveRunInstructions",
     "FROM a:1\nRUN a\nRUN b\nENV X=1\nRUN c\nRUN --network=none d\nRUN [\"e\"]\n", [3]),
    ("CdInsteadOfWorkdir", "FROM a:1\nRUN cd /src && make\nRUN make -C /src; cd x\n", [2]),
]


@pytest.mark.parametrize(("rule", "text", "lines"), CASES, ids=[f"{c[0]}-{i}" for i, c in
                                                                enumerate(CASES)])
def test_rule(rule: str, text: str, lines: list[int]) -> None:
    tail = "" if rule == "FinalUserRoot" else CLEAN_TAIL
    warnings = lint_containerfile(parse_containerfile(text + tail))
    found = [w.location.span.line for w in warnings if w.rule == rule]  # type: ignore[union-attr]
    assert found == lines


def test_every_rule_has_a_case_and_camel_case_name() -> None:
    assert {rule.name for rule in RULES} == {c[0] for c in CASES} | {"IgnoreFileMissingGit"}
    assert all(rule.name[0].isupper() and "_" not in rule.name for rule in RULES)


@pytest.mark.parametrize(
    ("files", "warns"),
    [({}, True), ({".dockerignore": "node_modules\n"}, True),
     ({".dockerignore": "# vcs\n.git\n"}, False), ({".containerignore": "**/.git/**\n"}, False),
     ({"Containerfile.dockerignore": "/.git/\n"}, False)],
)
def test_ignore_file_rule(tmp_path: Path, files: dict[str, str], warns: bool) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    path = tmp_path / "Containerfile"
    cf = parse_containerfile("FROM a:1\nUSER app\n", str(path))
    rules = [w.rule for w in lint_containerfile(cf, tmp_path)]
    assert rules == (["IgnoreFileMissingGit"] if warns else [])
    assert lint_containerfile(cf) == []  # no context, no ignore-file rule


def test_skip_and_unknown_rules() -> None:
    cf = parse_containerfile("FROM a\nMAINTAINER me\n")
    assert {w.rule for w in lint_containerfile(cf, skip=["FinalUserRoot", "UnpinnedBaseImage"])} == {
        "MaintainerDeprecated"}
    with pytest.raises(UsageError, match="unknown rule NoSuchRule"):
        lint_containerfile(cf, skip=["NoSuchRule"])
    assert rules_from_directive("skip=FinalUserRoot,Bogus;error=true") == ("FinalUserRoot",)
    assert len(rules_from_directive("skip=all")) == len(RULES)


def test_warnings_carry_docs_url_for_buildkit_rules() -> None:
    (warning,) = lint_containerfile(parse_containerfile("FROM a:1\nMAINTAINER me\nUSER u\n"))
    assert warning.url and warning.url.endswith("/maintainer-deprecated/")


def test_lint_cli(pybuild, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "Containerfile").write_text("# check=skip=UnpinnedBaseImage\nFROM a\nRUN a\nRUN b\n")
    (tmp_path / ".dockerignore").write_text(".git\n")
    result = pybuild("lint", tmp_path)
    assert result.returncode == 0
    path = tmp_path / "Containerfile"
    assert result.stdout.splitlines() == [
        f"{path}:2:1: warning: FinalUserRoot: the final stage sets no USER: the image runs as "
        "root unless its base image says otherwise",
        f"{path}:4:1: warning: ConsecutiveRunInstructions: this RUN follows another with the "
        "same flags; joining them with && makes one layer instead of two",
    ]
    failed = pybuild("lint", "--error", "--skip", "FinalUserRoot", tmp_path, check=False)
    assert failed.returncode == 1 and "ConsecutiveRunInstructions" in failed.stdout
    clean = pybuild("lint", "--error", "--skip", "FinalUserRoot", "--skip",
                    "ConsecutiveRunInstructions", tmp_path)
    assert clean.stdout == ""
    unknown = pybuild("lint", "--skip", "Nope", tmp_path, check=False)
    assert unknown.returncode == 125 and "unknown rule Nope" in unknown.stderr
