"""The stage graph and ARG scoping, planned from parsed Containerfiles (no building)."""

from __future__ import annotations

import pytest

from builder.errors import PlanError, UsageError
from builder.instructions.parse import parse_containerfile
from builder.plan.args import parse_build_args, platform_args, unconsumed
from builder.plan.graph import StageRef, make_plan
from builder.platform import Platform, parse_platform

PLATFORM = platform_args(Platform("linux", "amd64"))


def plan(text: str, build_args: dict[str, str] | None = None, target: str | None = None,
         images: tuple[str, ...] = ()):
    return make_plan(parse_containerfile(text), build_args or {}, PLATFORM, target=target,
                     image_exists=lambda ref: ref in images)


def test_only_stages_the_target_needs_in_dependency_order() -> None:
    p = plan("FROM scratch AS a\nFROM scratch AS unused\nFROM scratch AS b\n"
             "COPY --from=a /x /x\nFROM b AS c\nRUN --mount=type=bind,from=A,target=/m true\n")
    assert [s.name for s in p.stages] == ["a", "b", "c"]
    assert p.stages[-1].base == StageRef(stage=2)
    assert p.stages[1].sources == {0: StageRef(stage=0)}
    assert p.stages[2].sources == {}
    assert p.stages[2].mounts == {0: (StageRef(stage=0),)}


def test_target_is_case_insensitive_and_checked() -> None:
    text = "FROM scratch AS Base\nFROM scratch AS app\nCOPY --from=0 /a /b\n"
    assert [s.index for s in plan(text, target="BASE").stages] == [0]
    with pytest.raises(PlanError, match="target stage 'nope' not found"):
        plan(text, target="nope")


@pytest.mark.parametrize("text,message,line", [
    ("FROM scratch\nCOPY --from=nope /a /b\n", "no stage or image found with that name", 2),
    ("FROM scratch AS a\nCOPY --from=a /a /b\n", "cannot copy from itself", 2),
    ("FROM scratch\nCOPY --from=7 /a /b\n", "no stage with index 7", 2),
    ("FROM scratch AS a\nCOPY --from=b /x /x\nFROM scratch AS b\nCOPY --from=a /y /y\n",
     "circular dependency: b -> a -> b", 3),
    ("FROM $UNDECLARED\n", "base name is empty", 1),
])
def test_plan_errors_carry_locations(text: str, message: str, line: int) -> None:
    with pytest.raises(PlanError, match=message) as info:
        plan(text)
    assert info.value.location is not None and info.value.location.span.line == line


def test_images_are_not_stages() -> None:
    p = plan("FROM scratch\nCOPY --from=busybox /bin/sh /sh\nCOPY --from=quay.io/x/y:1 /a /a\n",
             images=("busybox",))
    assert p.stages[0].sources == {0: StageRef(image="busybox"),
                                   1: StageRef(image="quay.io/x/y:1")}


def test_meta_args_and_stage_scopes() -> None:
    text = ("ARG BASE=one OTHER=${BASE}-x\nFROM scratch AS one\nFROM $BASE\nARG OTHER\n"
            "ARG SRC=$OTHER\nCOPY --from=${SRC%-x} /a /a\n")
    p = plan(text)
    assert p.global_args["OTHER"] == "one-x"
    assert p.stages[-1].base == StageRef(stage=0)
    assert p.stages[-1].sources == {2: StageRef(stage=0)}
    p = plan(text, {"BASE": "zzz"}, images=("zzz",))
    assert p.stages[-1].base == StageRef(image="zzz")
    assert p.stages[-1].sources == {2: StageRef(image="zzz")}
    assert unconsumed({"BASE": "1", "NOPE": "2", "TARGETARCH": "x"}, p.scope.consumed) == ["NOPE"]


def test_platform_args_available_in_from() -> None:
    p = plan("FROM scratch AS amd64\nFROM scratch AS arm64\nFROM $TARGETARCH\n")
    assert p.stages[-1].base == StageRef(stage=0)


def test_build_arg_parsing(tmp_path) -> None:
    file = tmp_path / "args"
    file.write_text("# c\nA=file\n\nB=file\nFROM_ENV\n")
    env = {"FROM_ENV": "e", "C": "c"}
    assert parse_build_args(["A=flag", "C", "MISSING", "D=x=y"], [file], env) == {
        "A": "flag", "B": "file", "FROM_ENV": "e", "C": "c", "D": "x=y"}
    for bad in ("=v", " =v", "A B=1"):
        with pytest.raises(UsageError, match="parsing --build-arg"):
            parse_build_args([bad], [], env)
    with pytest.raises(UsageError, match="reading build-arg file"):
        parse_build_args([], [tmp_path / "missing"], env)


@pytest.mark.parametrize("text,expected", [
    ("linux/arm64", ("linux", "arm64", "")),
    ("linux/arm/v7", ("linux", "arm", "v7")),
    ("s390x", ("linux", "s390x", "")),
    ("windows/amd64", ("windows", "amd64", "")),
])
def test_parse_platform(text: str, expected: tuple[str, str, str]) -> None:
    p = parse_platform(text)
    assert (p.os, p.architecture, p.variant) == expected
    assert platform_args(p)["TARGETPLATFORM"] == "/".join(x for x in expected if x)


def test_every_mount_of_a_run_is_planned() -> None:
    """A second ``--mount from=`` was never planned: the build then tried to pull the
    stage name as an image."""
    p = plan("FROM scratch AS base\nFROM base AS a\nRUN echo A > /a.txt\n"
             "FROM base AS b\nRUN echo B > /b.txt\nFROM base\n"
             "RUN --mount=type=bind,from=a,target=/ma --mount=type=tmpfs,target=/t "
             "--mount=type=bind,from=b,target=/mb cat /ma/a.txt /mb/b.txt\n")
    final = p.stages[-1]
    assert final.mounts == {0: (StageRef(stage=1), None, StageRef(stage=2))}
    assert final.deps == {0, 1, 2}
    assert [s.index for s in p.stages] == [0, 1, 2, 3]


def test_one_env_instruction_expands_with_the_values_from_before_it() -> None:
    """``ENV S=x T=$S`` gives T the old S, in the image and in ``COPY --from=$T`` alike
    (the planner had expanded pair by pair and copied from stage x)."""
    p = plan("FROM scratch AS a\nFROM scratch AS x\nFROM scratch\nENV S=a\n"
             "ENV S=x T=$S\nCOPY --from=$T /f /f\n")
    assert p.stages[-1].sources == {2: StageRef(stage=0)}


@pytest.mark.parametrize(("text", "expected"), [
    # Buildah expands ARG names: ARG ${src}=somefile declares file3
    ("ARG src=file3\nARG ${src}=a\nCOPY --from=$file3 /f /f\n", 0),
    ("ARG src=b\nARG name=$src\nCOPY --from=$name /f /f\n", 1),
])
def test_arg_walk_decides_copy_from(text: str, expected: int) -> None:
    p = plan("FROM scratch AS a\nFROM scratch AS b\nFROM scratch\n" + text)
    assert set(p.stages[-1].sources.values()) == {StageRef(stage=expected)}
