"""RUN --mount values parsed with the instruction, against the declared option table."""

from __future__ import annotations

import pytest

from builder.errors import InstructionError, StepError
from builder.instructions.mounts import RunMount, parse_mount
from builder.instructions.parse import parse_containerfile

PARSE = [
    ("type=cache,target=/root/.cache", RunMount("cache", "/root/.cache")),
    ("type=cache,id=pip,dst=/c,sharing=locked,uid=1,gid=2,mode=0700",
     RunMount("cache", "/c", id="pip", sharing="locked", uid="1", gid="2", mode="0700")),
    ("target=/src,from=builder,source=/out,rw", RunMount("bind", "/src", "/out", "builder", False)),
    ("type=bind,src=a,destination=b,ro=false", RunMount("bind", "/b", "a", readonly=False)),
    ("type=tmpfs,target=/t,size=64m", RunMount("tmpfs", "/t", size="64m")),
    ("type=secret,id=tok,env=TOKEN,required", RunMount("secret", id="tok", env="TOKEN",
                                                       required=True)),
    ("type=ssh,id=default,dst=/sock,uid=1000,mode=0444",
     RunMount("ssh", "/sock", id="default", uid="1000", mode="0444")),
    # Buildah's SELinux and propagation options are accepted and mean nothing here
    ("type=bind,source=.,target=/test,z,rw", RunMount("bind", "/test", ".", readonly=False)),
    ('type=bind,"source=a,b",target=/x', RunMount("bind", "/x", "a,b")),  # CSV quoting
    ("type=cache,target=$HOME/c,uid=$UID", RunMount("cache", "$HOME/c", uid="$UID")),
]


@pytest.mark.parametrize("raw,expected", PARSE, ids=[p[0] for p in PARSE])
def test_parse(raw: str, expected: RunMount) -> None:
    assert parse_mount(raw) == expected


@pytest.mark.parametrize("raw,message", [
    ("type=volume,target=/x", "unknown mount type 'volume'"),
    ("type=$T,target=/x", "cannot hold variables"),
    ("type=cache", "a target is required"),
    ("target=/x,bogus=1", "unknown option .bogus. .a bind mount takes from, ro, rw, source, "
                          "target, type"),
    ("type=tmpfs,target=/x,from=a", "option not valid here: 'from'"),
    ("target=/x,sharing=maybe", "option not valid here: 'sharing'"),
    ("type=cache,target=/x,sharing=maybe", "sharing must be shared, private, locked"),
    ("type=cache,target=/x,uid=abc", "uid must be a number"),
    ("type=cache,target=/x,mode=999", "mode must be an octal number"),
    ("type=tmpfs,target=/x,size=lots", "size must be a size"),
    ("target=/x,ro=perhaps", "true or false"),
    ("type=cache,target", "target needs a value"),
    ("type=secret", "needs an id or a target"),
])
def test_parse_errors(raw: str, message: str) -> None:
    with pytest.raises(InstructionError, match=message):
        parse_mount(raw)


def test_a_bad_mount_is_located_at_its_instruction() -> None:
    with pytest.raises(InstructionError, match="unknown option 'bogus'") as caught:
        parse_containerfile("FROM a\nRUN --mount=target=/x,bogus=1 true\n", "Containerfile")
    assert str(caught.value.location) == "Containerfile:2:1"


def test_words_are_checked_again_once_expanded() -> None:
    mount = parse_mount("type=cache,target=/c/$N,uid=$UID,mode=$M")
    values = {"N": "pip", "UID": "1000", "M": "0750"}
    done = mount.expanded(lambda word: word.replace("$N", values["N"])
                          .replace("$UID", values["UID"]).replace("$M", values["M"]))
    assert (done.target, done.uid_number, done.mode_number) == ("/c/pip", 1000, 0o750)
    with pytest.raises(StepError, match="uid must be a number, not 'x'"):
        mount.expanded(lambda word: word.replace("$UID", "x"))
