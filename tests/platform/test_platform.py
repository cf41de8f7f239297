"""builder.platform: the one home of platforms (parsing, the host's, matching, choosing)."""

from __future__ import annotations

import pytest

from builder.errors import ImageError, UsageError
from builder.platform import Platform, choose, host_platform, parse_platform


@pytest.mark.parametrize(("text", "expected"), [
    ("linux/amd64", Platform("linux", "amd64")),
    ("linux/arm64/v8", Platform("linux", "arm64", "v8")),
    ("LINUX/ARM/v7", Platform("linux", "arm", "v7")),
    ("arm64", Platform("linux", "arm64")),
    ("windows/amd64", Platform("windows", "amd64")),
])
def test_parse_platform(text: str, expected: Platform) -> None:
    assert parse_platform(text) == expected


@pytest.mark.parametrize("text", [None, "", "/"])
def test_parse_platform_defaults_to_the_host(text: str | None) -> None:
    assert parse_platform(text) == host_platform()


def test_parse_platform_refuses_four_parts() -> None:
    with pytest.raises(UsageError, match="expected os/arch"):
        parse_platform("linux/arm/v7/extra")


@pytest.mark.parametrize(("wanted", "candidate", "expected"), [
    (Platform("linux", "amd64"), Platform("linux", "amd64"), True),
    (Platform("linux", "amd64"), Platform("", "amd64"), True),  # no os: linux
    (Platform("linux", "arm64"), Platform("linux", "arm64", "v8"), True),  # default variant
    (Platform("linux", "arm64", "v8"), Platform("linux", "arm64"), True),
    (Platform("linux", "arm"), Platform("linux", "arm", "v7"), True),
    (Platform("linux", "arm"), Platform("linux", "arm", "v6"), False),
    (Platform("linux", "amd64", "v3"), Platform("linux", "amd64"), False),
    (Platform("linux", "amd64"), Platform("linux", "arm64"), False),
    (Platform("linux", "amd64"), Platform("windows", "amd64"), False),
])
def test_matches(wanted: Platform, candidate: Platform, expected: bool) -> None:
    assert wanted.matches(candidate) is expected
    assert candidate.matches(wanted) is expected


OFFERED = [(Platform("linux", "arm", "v6"), "a"), (Platform("linux", "arm", "v7"), "b"),
           (Platform("linux", "amd64"), "c"), (None, "d")]


@pytest.mark.parametrize(("wanted", "expected"), [
    (Platform("linux", "arm", "v7"), "b"),
    (Platform("linux", "arm"), "b"),  # arm means arm/v7, as containerd reads it
    (Platform("linux", "arm", "v6"), "a"),
    (Platform("linux", "amd64"), "c"),
    (Platform("linux", "amd64", "v3"), "c"),  # the same os/arch when no variant fits
])
def test_choose(wanted: Platform, expected: str) -> None:
    assert choose(OFFERED, wanted, "the index") == expected


def test_choose_names_what_is_offered() -> None:
    with pytest.raises(ImageError, match=r"linux/s390x .*it has linux/amd64, linux/arm/v6, "
                                         r"linux/arm/v7"):
        choose(OFFERED, Platform("linux", "s390x"), "the index")
