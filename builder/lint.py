"""Lint rules for Containerfiles: a table of named checks producing ``Warning`` values.

Each ``Rule`` has a CamelCase name (BuildKit's style), a one-line description
and a check ``(containerfile, context) -> warnings``. The parser's own
warnings (empty continuation lines, MAINTAINER, legacy ``ENV k v``) are rules
too, so they can be listed and skipped like the others. Warnings are values;
nothing here raises except on an unknown rule name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from builder.errors import UsageError
from builder.instructions import model as m
from builder.source import Finding

__all__ = ["RULES", "Rule", "check_rule_names", "lint_containerfile", "rules_from_directive"]

Check = Callable[[m.Containerfile, Path | None], Iterable[Finding]]
_DOCS = "https://docs.docker.com/go/dockerfile/rule/"


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    check: Check
    url: str | None = None


def _instructions(cf: m.Containerfile) -> Iterator[tuple[m.Stage, m.Instruction]]:
    for stage in cf.stages:
        yield stage, stage.base
        for instruction in stage.instructions:
            yield stage, instruction


def _warning(rule: str, message: str, instruction: m.Instruction) -> Finding:
    return Finding(rule, message, instruction.location)


def _parser_rule(name: str) -> Check:
    def check(cf: m.Containerfile, context: Path | None) -> Iterator[Finding]:
        return (w for w in cf.warnings if w.rule == name)

    return check


def _port_number(port: str) -> int | None:
    match = re.fullmatch(r"([0-9]+)(?:-[0-9]+)?(?:/[a-zA-Z]+)?", port)
    return int(match[1]) if match else None


def _privileged_ports(cf: m.Containerfile, context: Path | None) -> Iterator[Finding]:
    for _, i in _instructions(cf):
        if isinstance(i, m.ExposeInstruction):
            for port in i.ports:
                number = _port_number(port)
                if number is not None and 0 < number < 1024:
                    yield _warning("PrivilegedPortExposed",
                                   f"port {port} is below 1024: binding it needs privileges "
                                   "in the container", i)


def _final_user(cf: m.Containerfile, context: Path | None) -> Iterator[Finding]:
    final = cf.stages[-1]
    users = [i for i in final.instructions if isinstance(i, m.UserInstruction)]
    if not users:
        yield _warning("FinalUserRoot",
                       "the final stage sets no USER: the image runs as root unless its base "
                       "image says otherwise", final.base)
    elif users[-1].user.split(":")[0] in ("root", "0"):
        yield _warning("FinalUserRoot", "the final stage runs as root: add a non-root USER",
                       users[-1])


def _unpinned_base(cf: m.Containerfile, context: Path | None) -> Iterator[Finding]:
    stage_names = set()
    for stage in cf.stages:
        image = stage.base.image
        if image.lower() not in stage_names and image != "scratch" and "$" not in image:
            last = image.rsplit("/", 1)[-1]
            if "@" not in last and (":" not in last or last.endswith(":latest")):
                yield _warning("UnpinnedBaseImage",
                               f"base image {image} has no tag or uses :latest; pin a "
                               "version or digest for reproducible builds", stage.base)
        if stage.name:
            stage_names.add(stage.name)


def _relative_workdir(cf: m.Containerfile, context: Path | None) -> Iterator[Finding]:
    for stage in cf.stages:
        absolute = False
        for i in stage.instructions:
            if isinstance(i, m.WorkdirInstruction):
                path = i.path.strip("\"'")
                if path.startswith(("/", "$")) or re.match(r"[A-Za-z]:[\\/]", path):
                    absolute = True
                elif not absolute:
                    yield _warning("WorkdirRelativePath",
                                   f"relative WORKDIR {i.path} without an absolute WORKDIR "
                                   "before it depends on the base image's working directory", i)


_INSTALL = {
    "apt-get": (re.compile(r"\bapt-get\b[^;&|]*\binstall\b"),
                re.compile(r"rm\s+-[a-zA-Z]*\s+[^;&|]*/var/lib/apt/lists")),
    "dnf": (re.compile(r"\bdnf\b[^;&|]*\binstall\b"),
            re.compile(r"\bdnf\b[^;&|]*\bclean\s+all\b|rm\s+-[a-zA-Z]*\s+[^;&|]*/var/cache/dnf")),
    "yum": (re.compile(r"\byum\b[^;&|]*\binstall\b"),
            re.compile(r"\byum\b[^;&|]*\bclean\s+all\b|rm\s+-[a-zA-Z]*\s+[^;&|]*/var/cache/yum")),
}


def _run_text(i: m.RunInstruction) -> str:
    return " ".join(i.command.args) + "".join(doc.body for doc in i.heredocs)


def _package_cleanup(cf: m.Containerfile, context: Path | None) -> Iterator[Finding]:
    for _, i in _instructions(cf):
        if not isinstance(i, m.RunInstruction) or any(x.type == "cache" for x in i.mounts):
            continue
        text = _run_text(i)
        for tool, (install, cleanup) in _INSTALL.items():
            if install.search(text) and not cleanup.search(text):
                yield _warning("PackageCacheNotCleaned",
                               f"{tool} install without removing its cache in the same RUN "
                               "keeps the package lists in the layer", i)


def _consecutive_runs(cf: m.Containerfile, context: Path | None) -> Iterator[Finding]:
    for stage in cf.stages:
        previous: m.Instruction | None = None
        for i in stage.instructions:
            if (isinstance(i, m.RunInstruction) and isinstance(previous, m.RunInstruction)
                    and not i.command.is_exec and not previous.command.is_exec
                    and i.flags == previous.flags and not i.heredocs and not previous.heredocs):
                yield _warning("ConsecutiveRunInstructions",
                               "this RUN follows another with the same flags; joining them "
                               "with && makes one layer instead of two", i)
            previous = i


_CD = re.compile(r"\s*cd\s+(\S+)\s*(?:&&|;)")


def _cd_in_run(cf: m.Containerfile, context: Path | None) -> Iterator[Finding]:
    for _, i in _instructions(cf):
        if isinstance(i, m.RunInstruction) and not i.command.is_exec and i.command.args:
            match = _CD.match(i.command.args[0])
            if match:
                yield _warning("CdInsteadOfWorkdir",
                               f"RUN starts with cd {match[1]}; WORKDIR {match[1]} sets the "
                               "directory for this and later instructions", i)


def _excludes_git(ignore: Path) -> bool:
    for line in ignore.read_text(encoding="utf-8", errors="replace").splitlines():
        pattern = line.strip().strip("/")
        if pattern.startswith("**/"):
            pattern = pattern[3:]
        if pattern.endswith("/**"):
            pattern = pattern[:-3]
        if pattern in (".git", ".*", "*"):
            return True
    return False


def _ignore_file(cf: m.Containerfile, context: Path | None) -> Iterator[Finding]:
    if context is None:
        return
    name = Path(cf.path).name
    candidates = [context / ".containerignore", context / ".dockerignore",
                  Path(cf.path).with_name(name + ".containerignore"),
                  Path(cf.path).with_name(name + ".dockerignore")]
    present = [c for c in candidates if c.is_file()]
    if not any(_excludes_git(c) for c in present):
        where = "no .containerignore or .dockerignore" if not present else (
            f"{present[0].name} does not exclude .git")
        yield Finding("IgnoreFileMissingGit",
                        f"context {context}: {where}; the repository history is sent with "
                        "the context and may end up in images", None)


RULES: tuple[Rule, ...] = (
    Rule("NoEmptyContinuation", "empty lines inside a continued instruction",
         _parser_rule("NoEmptyContinuation"), _DOCS + "no-empty-continuation/"),
    Rule("MaintainerDeprecated", "MAINTAINER is deprecated; use a LABEL",
         _parser_rule("MaintainerDeprecated"), _DOCS + "maintainer-deprecated/"),
    Rule("LegacyKeyValueFormat", "ENV/LABEL key value without =",
         _parser_rule("LegacyKeyValueFormat"), _DOCS + "legacy-key-value-format/"),
    Rule("PrivilegedPortExposed", "EXPOSE of a port below 1024", _privileged_ports),
    Rule("FinalUserRoot", "the final stage has no USER or runs as root", _final_user),
    Rule("UnpinnedBaseImage", "FROM an image with no tag or :latest", _unpinned_base),
    Rule("WorkdirRelativePath", "relative WORKDIR before any absolute one", _relative_workdir,
         _DOCS + "workdir-relative-path/"),
    Rule("PackageCacheNotCleaned", "apt-get/dnf/yum install without cleanup in the same RUN",
         _package_cleanup),
    Rule("ConsecutiveRunInstructions", "consecutive RUNs that could be one layer",
         _consecutive_runs),
    Rule("CdInsteadOfWorkdir", "RUN cd dir && ... where WORKDIR fits", _cd_in_run),
    Rule("IgnoreFileMissingGit", "the context has no ignore file excluding .git", _ignore_file),
)
_BY_NAME = {rule.name: rule for rule in RULES}


def check_rule_names(names: Iterable[str]) -> None:
    """``UsageError`` for any name that is not a rule."""
    unknown = sorted(set(names) - set(_BY_NAME))
    if unknown:
        raise UsageError(f"selecting lint rules: unknown rule {', '.join(unknown)} "
                         f"(known: {', '.join(_BY_NAME)})")


def rules_from_directive(value: str | None) -> tuple[str, ...]:
    """Rule names skipped by a ``# check=skip=A,B`` directive (``all`` for every rule)."""
    skipped: list[str] = []
    for part in (value or "").split(";"):
        key, _, names = part.partition("=")
        if key.strip().lower() == "skip":
            skipped += [n.strip() for n in names.split(",") if n.strip()]
    if any(name.lower() == "all" for name in skipped):
        return tuple(_BY_NAME)
    return tuple(n for n in skipped if n in _BY_NAME)


def lint_containerfile(
    cf: m.Containerfile, context: Path | None = None, skip: Iterable[str] = ()
) -> list[Finding]:
    """Every warning of every rule not in ``skip``, in rule order then source order."""
    skip = set(skip)
    check_rule_names(skip)
    found: list[Finding] = []
    for rule in RULES:
        if rule.name not in skip:
            found += [w if w.url or not rule.url else Finding(w.rule, w.message, w.location,
                                                                 rule.url)
                      for w in rule.check(cf, context)]
    return found
