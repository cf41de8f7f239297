"""Every option ``buildah bud --help`` lists is accepted by ``pybuild bud``.

The list is read from the installed Buildah when the test runs, so the check follows
Buildah's version. An option counts as accepted when ``pybuild bud --help`` lists
it (long and short spellings) and pybuild's parser takes it with a value of the kind
Buildah's help gives (none for a boolean).

``NOT_YET`` names the options that other work will add, with the reason; it must
only shrink, and an entry that pybuild has started to accept fails the test so
that it is removed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

BUILDAH = shutil.which("buildah")
_LINE = re.compile(r"^\s+(?:-(?P<short>\w), )?--(?P<long>[a-z0-9-]+)(?: (?P<value>\S+))?\s")

NOT_YET: dict[str, str] = {}

# a value pybuild's parser should take for an option of this name (else "x")
SAMPLES = {"platform": "linux/arm64", "format": "oci", "isolation": "chroot",
           "network": "host", "pull": "true", "jobs": "2", "timestamp": "0", "retry": "3",
           "retry-delay": "2s", "cache-ttl": "1h", "layers": "true", "tls-verify": "false",
           "compression": "none", "output": "type=local,dest=out",
           "build-context": "name=dir", "build-arg": "A=1", "label": "a=b",
           "annotation": "a=b", "env": "A=1", "secret": "id=s,src=f",
           "volume": "/tmp:/data", "device": "/dev/null", "cap-add": "NET_ADMIN",
           "cap-drop": "ALL", "security-opt": "no-new-privileges", "ulimit": "nofile=10",
           "shm-size": "64m", "memory": "1g", "memory-swap": "-1", "cpu-period": "100000",
           "cpu-quota": "50000", "cpu-shares": "512", "cpuset-cpus": "0", "cpuset-mems": "0",
           "pid": "host", "ipc": "private", "uts": "host", "cgroupns": "private",
           "userns": "host", "userns-uid-map": "0:100000:65536",
           "userns-gid-map": "0:100000:65536", "hooks-dir": "/tmp", "runtime": "runc"}


def buildah_options() -> list[tuple[str | None, str, bool]]:
    """(short, long, takes a value) for every option of ``buildah bud --help``."""
    if BUILDAH is None:
        pytest.skip("buildah is not installed")
    text = subprocess.run(["buildah", "bud", "--help"], capture_output=True, text=True,
                          check=True).stdout
    found = []
    for line in text.split("\n"):
        match = _LINE.match(line)
        if match:
            value = match.group("value")
            takes_value = value is not None and not value.startswith("[")  # [="true"]
            found.append((match.group("short"), match.group("long"), takes_value))
    assert len(found) > 50, text
    return found


def _our_help() -> str:
    return subprocess.run([sys.executable, "-m", "builder", "bud", "--help"],
                          capture_output=True, text=True, cwd=REPO, check=True).stdout


def test_every_buildah_option_is_accepted() -> None:
    import argparse

    from builder.commands import build
    from builder.commands.argparsing import Parser

    options = buildah_options()
    listed = _our_help()
    parser = Parser(prog="pybuild bud")
    build.add_arguments(parser, "bud")
    missing, accepted = [], []
    for short, long, takes_value in options:
        if long in NOT_YET:
            continue
        for spelling in [f"--{long}"] + ([f"-{short}"] if short else []):
            if not re.search(rf"(^|[\s,\[]){re.escape(spelling)}\b", listed):
                missing.append(f"{spelling} (not in --help)")
                continue
            if long == "help":
                continue
            words = [spelling, SAMPLES.get(long, "x")] if takes_value else [spelling]
            try:
                parser.parse_args([*words, "context"])
            except SystemExit:
                missing.append(f"{' '.join(words)} (refused)")
            except argparse.ArgumentError as exc:
                missing.append(f"{' '.join(words)} ({exc})")
        accepted.append(long)
    assert not missing, missing
    still_listed = [name for name in NOT_YET if re.search(rf"--{name}\b", listed)]
    assert not still_listed, f"accepted now, remove from NOT_YET: {still_listed}"
    total = len(options)
    print(f"pybuild bud accepts {len(accepted)} of {total} buildah bud options; "
          f"{len(NOT_YET)} not yet")


def test_not_yet_names_only_buildah_options() -> None:
    names = {long for _, long, _ in buildah_options()}
    assert set(NOT_YET) <= names, set(NOT_YET) - names


def test_boolean_options_never_take_the_next_word() -> None:
    """``--rm .`` names the context, as with Buildah's Go flags."""
    from builder.commands import build
    from builder.commands.argparsing import BoolFlag, Parser

    parser = Parser(prog="pybuild bud")
    build.add_arguments(parser, "bud")
    bools = [a for a in parser._actions  # noqa: SLF001
             if isinstance(a, BoolFlag) or "--tls-verify" in a.option_strings]
    assert len(bools) >= 10
    for action in bools:
        spelling = action.option_strings[-1]
        ns = parser.parse_args([spelling, "ctx-dir"])
        assert ns.context == "ctx-dir" and getattr(ns, action.dest) is True, spelling
        ns = parser.parse_args([f"{spelling}=false", "ctx-dir"])
        assert getattr(ns, action.dest) is False, spelling
        ns = parser.parse_args(["--", spelling])  # after "--" it is a word, not a flag
        assert ns.context == spelling
