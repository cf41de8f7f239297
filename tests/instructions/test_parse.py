"""Typed instructions: forms, flags, stages, and the error table."""

from __future__ import annotations

import pytest

from builder.errors import ContainerfileError, InstructionError, ParseError
from builder.instructions import model as m
from builder.instructions.mounts import RunMount
from builder.instructions.parse import parse_containerfile

ERRORS = [
    # (name, Containerfile text, message substring, line:col)
    ("copy arity", "FROM a\n\nCOPY x", "COPY requires at least two arguments", "3:1"),
    ("copy unknown flag", "FROM a\nCOPY --foo=1 a b",
     "COPY: unknown flag --foo (accepted: --from, --chown, --chmod, --link, --parents, --exclude)",
     "2:6"),
    ("add unknown flag", "FROM a\nADD --from=x a b",
     "ADD: unknown flag --from (accepted: --chown, --chmod, --link, --checksum, --keep-git-dir, "
     "--exclude, --unpack)", "2:5"),
    ("flag without value", "FROM a\nCOPY --chown 1:1 a b", "missing a value on flag --chown", "2:6"),
    ("bool flag value", "FROM a\nCOPY --link=maybe a b", "expecting boolean value", "2:6"),
    ("duplicate flag", "FROM a\nCOPY --from=a --from=b x y", "duplicate flag specified: --from",
     "2:15"),
    ("unknown instruction", "FROM a\nCOPPY a b", "unknown instruction: COPPY (did you mean COPY?)",
     "2:1"),
    ("unknown without guess", "FROM a\nBOGUS nope", "unknown instruction: BOGUS", "2:1"),
    ("from arity", "FROM a b", "FROM requires either one or three arguments", "1:1"),
    ("from as", "FROM a IS b", "FROM requires either one or three arguments", "1:1"),
    ("from flag", "FROM --plat=x a", "FROM: unknown flag --plat (accepted: --platform)", "1:6"),
    ("before from", "RUN x\nFROM a", "no build stage in current context", "1:1"),
    ("no from", "ARG a", "no FROM instruction", "1:1"),
    ("env empty", "FROM a\nENV", "ENV requires at least one argument", "2:1"),
    ("env blank name", "FROM a\nENV =x", "ENV names can not be blank", "2:1"),
    ("env flag", "FROM a\nENV --x=1 a=b", "ENV: unknown flag --x (accepted: none)", "2:5"),
    ("arg empty", "ARG\nFROM a", "ARG requires at least one argument", "1:1"),
    ("user arity", "FROM a\nUSER", "USER requires exactly one argument", "2:1"),
    ("workdir arity", "FROM a\nWORKDIR", "WORKDIR requires exactly one argument", "2:1"),
    ("expose arity", "FROM a\nEXPOSE", "EXPOSE requires at least one argument", "2:1"),
    ("volume empty string", 'FROM a\nVOLUME [""]', "VOLUME specified can not be an empty string",
     "2:1"),
    ("shell form", "FROM a\nSHELL /bin/sh -c", "SHELL requires the arguments to be in JSON form",
     "2:1"),
    ("onbuild onbuild", "FROM a\nONBUILD ONBUILD RUN x", "Chaining ONBUILD", "2:1"),
    ("onbuild from", "FROM a\nONBUILD FROM b", "FROM isn't allowed as an ONBUILD trigger", "2:1"),
    ("onbuild maintainer", "FROM a\nONBUILD MAINTAINER me", "MAINTAINER isn't allowed", "2:1"),
    ("onbuild empty", "FROM a\nONBUILD", "ONBUILD requires at least one argument", "2:1"),
    ("onbuild trigger error", "FROM a\nONBUILD COPY x", "COPY requires at least two", "2:9"),
    ("healthcheck empty", "FROM a\nHEALTHCHECK", "HEALTHCHECK requires at least one argument",
     "2:1"),
    ("healthcheck none args", "FROM a\nHEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments",
     "2:1"),
    ("healthcheck type", "FROM a\nHEALTHCHECK CONNECT x", "unknown type CONNECT", "2:1"),
    ("healthcheck duration", "FROM a\nHEALTHCHECK --interval=5 CMD x", "invalid duration", "2:1"),
    ("healthcheck tiny", "FROM a\nHEALTHCHECK --timeout=1us CMD x", "cannot be less than 1ms",
     "2:1"),
    ("healthcheck retries", "FROM a\nHEALTHCHECK --retries=x CMD y", "invalid value for --retries",
     "2:1"),
    ("run network", "FROM a\nRUN --network=fake x", "unsupported value for --network", "2:1"),
    ("run flag", "FROM a\n  RUN --mount=type=cache --foo x", "RUN: unknown flag --foo", "2:26"),
    ("json non-string", 'FROM a\nRUN ["a", 1]', "arrays must be comprised of strings only", "2:5"),
    ("unterminated heredoc", "FROM a\nRUN <<EOF\nx", "unterminated heredoc", "2:1"),
    ("empty file", "", "file with no instructions", "1:1"),
]


@pytest.mark.parametrize(("text", "message", "where"), [c[1:] for c in ERRORS],
                         ids=[c[0] for c in ERRORS])
def test_error_table(text: str, message: str, where: str) -> None:
    with pytest.raises(ContainerfileError) as info:
        parse_containerfile(text)
    assert isinstance(info.value, (ParseError, InstructionError))
    assert info.value.exit_code == 125  # as Buildah: scripts check for 125
    assert message in info.value.message
    location = info.value.location
    assert location is not None and location.file == "Containerfile"
    assert f"{location.span.line}:{location.span.column}" == where


def _only(text: str) -> m.Instruction:
    cf = parse_containerfile("FROM base\n" + text)
    (instruction,) = cf.stages[0].instructions
    return instruction


def test_stages_and_meta_args() -> None:
    cf = parse_containerfile(
        "# syntax=docker/dockerfile:1\nARG BASE=alpine\nARG V\n"
        "FROM --platform=$BUILDPLATFORM ${BASE} AS Build\nRUN make\n"
        "FROM scratch\nCOPY --from=build /out /\n"
    )
    assert cf.syntax == "docker/dockerfile:1"
    assert [a.args for a in cf.meta_args] == [
        (m.ArgDefinition("BASE", "alpine"),), (m.ArgDefinition("V", None),)]
    first, second = cf.stages
    assert (first.index, first.name, first.base.image, first.base.platform) == (
        0, "build", "${BASE}", "$BUILDPLATFORM")
    assert (second.index, second.name, len(second.instructions)) == (1, None, 1)
    assert second.instructions[0].location.span.line == 7  # type: ignore[union-attr]


def test_command_forms() -> None:
    assert _only('CMD ["a", "b c"]').command == m.Command(("a", "b c"), False)  # type: ignore[attr-defined]
    assert _only("CMD a  'b c'").command == m.Command(("a  'b c'",), True)  # type: ignore[attr-defined]
    assert _only("CMD [a]").command == m.Command(("[a]",), True)  # type: ignore[attr-defined]
    assert _only("RUN").command == m.Command((), True)  # type: ignore[attr-defined]


def test_run_flags() -> None:
    run = _only("RUN --mount=type=cache,target=/a --mount=type=secret,id=b --network=none "
                "--security=insecure make")
    assert isinstance(run, m.RunInstruction)
    assert run.mounts == (RunMount("cache", "/a"), RunMount("secret", id="b"))
    assert (run.network, run.security) == ("none", "insecure")


def test_copy_and_add_flags() -> None:
    copy = _only("COPY --from=b --chown=1:2 --chmod=755 --link --parents --exclude=*.o "
                 "--exclude=.git a b /d/")
    assert isinstance(copy, m.CopyInstruction)
    assert (copy.sources, copy.dest, copy.from_, copy.chown, copy.chmod) == (
        ("a", "b"), "/d/", "b", "1:2", "755")
    assert (copy.link, copy.parents, copy.excludes) == (True, True, ("*.o", ".git"))
    add = _only("ADD --checksum=sha256:00 --keep-git-dir=true --unpack=false --link=false u /")
    assert isinstance(add, m.AddInstruction)
    assert (add.checksum, add.keep_git_dir, add.unpack, add.link) == ("sha256:00", True, False, False)
    assert _only('COPY ["a b", "/c"]').sources == ("a b",)  # type: ignore[attr-defined]


def test_heredocs_are_typed() -> None:
    run = _only("RUN <<-'EOF' bash\n\techo $X\n\tEOF\n")
    assert isinstance(run, m.RunInstruction)
    assert run.heredocs == (m.Heredoc("EOF", "\techo $X\n", expand=False, chomp=True),)
    copy = _only("COPY <<a <<b /d/\n1\na\n2\nb\n")
    assert [(h.name, h.body) for h in copy.heredocs] == [("a", "1\n"), ("b", "2\n")]  # type: ignore[attr-defined]


def test_env_label_arg_values_stay_raw() -> None:
    env = _only('ENV A="x y" B=$C\\ d')
    assert env.pairs == (("A", '"x y"'), ("B", "$C\\ d"))  # type: ignore[attr-defined]
    legacy = _only("ENV A x  y")
    assert (legacy.pairs, legacy.legacy) == ((("A", "x  y"),), True)  # type: ignore[attr-defined]
    label = _only('LABEL "com.x"="1" b=2')
    assert label.pairs == (('"com.x"', '"1"'), ("b", "2"))  # type: ignore[attr-defined]
    arg = _only('ARG A B="c d"')
    assert arg.args == (m.ArgDefinition("A", None), m.ArgDefinition("B", '"c d"'))  # type: ignore[attr-defined]


def test_healthcheck() -> None:
    none = _only("HEALTHCHECK NONE")
    assert none.test is None  # type: ignore[attr-defined]
    shell = _only("HEALTHCHECK --interval=5s --timeout=1m30s --start-period=0 --retries=3 "
                  "CMD curl -f x || exit 1")
    assert isinstance(shell, m.HealthcheckInstruction)
    assert shell.test == ("CMD-SHELL", "curl -f x || exit 1")
    assert (shell.interval, shell.timeout, shell.start_period, shell.retries) == (
        "5s", "1m30s", "0", 3)
    assert _only('HEALTHCHECK cmd ["a", "b"]').test == ("CMD", "a", "b")  # type: ignore[attr-defined]


def test_onbuild() -> None:
    onbuild = _only("ONBUILD   COPY --from=x a /b")
    assert isinstance(onbuild, m.OnbuildInstruction)
    assert onbuild.expression == "COPY --from=x a /b"
    assert isinstance(onbuild.trigger, m.CopyInstruction) and onbuild.trigger.from_ == "x"
    assert onbuild.trigger.location.span.column == 11


def test_parser_warnings() -> None:
    cf = parse_containerfile("FROM a\nMAINTAINER me\nENV a b\nLABEL c d\nRUN x \\\n\n y\n")
    assert [w.rule for w in cf.warnings] == [
        "NoEmptyContinuation", "MaintainerDeprecated", "LegacyKeyValueFormat",
        "LegacyKeyValueFormat"]
    assert [w.location.span.line for w in cf.warnings] == [5, 2, 3, 4]  # type: ignore[union-attr]


def test_keywords_are_case_insensitive_and_escape_directive_applies() -> None:
    cf = parse_containerfile("# escape=`\nfrom a\ncopy x `\n  y\n")
    assert cf.escape == "`"
    copy = cf.stages[0].instructions[0]
    assert (copy.keyword, copy.sources, copy.dest) == ("COPY", ("x",), "y")  # type: ignore[attr-defined]
