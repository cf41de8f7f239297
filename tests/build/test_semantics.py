"""Build semantics where Docker/BuildKit and Buildah agree, or where they differ and pybuild
follows Buildah 1.28 (each such rule is named). Every case is a real build on the busybox
base; owners and modes are read from the image (uid:gid mode)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.build.imagetree import read_image
from tests.conftest import Pybuild


def build(pybuild: Pybuild, tmp_path: Path, text: str, *flags: str,
          files: dict[str, str] | None = None, check: bool = True,
          driver: str | None = None) -> tuple[dict, dict]:
    context = tmp_path / "ctx"
    context.mkdir(exist_ok=True)
    (context / "Containerfile").write_text(text)
    for rel, content in (files or {}).items():
        (context / rel).parent.mkdir(parents=True, exist_ok=True)
        (context / rel).write_text(content)
    options = ("--storage-driver", driver) if driver else ()
    result = pybuild(*options, "bud", "-q", "-t", "x", *flags, context, check=check)
    if not check:
        return {"result": result}, {}
    return read_image(pybuild.root, "localhost/x:latest")


def owners(tree: dict, *paths: str) -> list[str]:
    """``uid:gid mode`` of each path in the image tree."""
    out = []
    for path in paths:
        _, mode, uid, gid, _, _ = tree[path.lstrip("/")]
        out.append(f"{uid}:{gid} {stat.S_IMODE(mode):o}")
    return out


# 1. ARG names are expanded, as Buildah 1.28 expands them (BuildKit >= dockerfile 1.8 does
# not); an empty COPY source is the context root in both references.

def test_arg_names_are_expanded(with_busybox: Pybuild, tmp_path: Path) -> None:
    _, tree = build(with_busybox, tmp_path,
                    "ARG gsrc=gfile\nARG ${gsrc}=fromglobal\nFROM localhost/busybox\n"
                    "ARG gfile\nARG src=file3\nARG ${src}=somefile\nCOPY $file3 /baz\n"
                    'RUN test "$file3" = somefile && test "$gfile" = fromglobal\n'
                    "ARG ${undefinedvar}=v\n",
                    files={"file3": "three", "somefile": "some"})
    assert tree["baz"][0] == "file"  # the file somefile, not the whole context


def test_arg_name_takes_its_build_arg(with_busybox: Pybuild, tmp_path: Path) -> None:
    build(with_busybox, tmp_path, "FROM localhost/busybox\nARG src=file3\nARG ${src}\n"
          'RUN test "$file3" = fromcli\n', "--build-arg", "file3=fromcli")


@pytest.mark.parametrize("line", ['COPY "" /x/', "COPY $undefined /x/",
                                  "COPY $undefined file /x/"])
def test_an_empty_copy_source_is_the_context_root(with_busybox: Pybuild, tmp_path: Path,
                                                  line: str) -> None:
    _, tree = build(with_busybox, tmp_path, f"FROM localhost/busybox\n{line}\n",
                    files={"file": "f"})
    assert {"x/file", "x/Containerfile"} <= set(tree)


# 2. Directories a COPY/ADD --chown creates are U:G, parents and destination alike; their
# mode is 0755 whatever --chmod says (Buildah; BuildKit >= v0.21 would use the --chmod mode).

CHOWN_PARENTS = [
    ("COPY --chown=1000:1000 src /a/b/c", ["/a", "/a/b", "/a/b/c"],
     ["1000:1000 755", "1000:1000 755", "1000:1000 644"]),
    ("ADD --chown=1000:1000 src /a2/b/c", ["/a2", "/a2/b", "/a2/b/c"],
     ["1000:1000 755", "1000:1000 755", "1000:1000 644"]),
    ("COPY --chmod=0700 src /m/b/c", ["/m", "/m/b", "/m/b/c"],
     ["0:0 755", "0:0 755", "0:0 700"]),
    ("COPY --chown=1000:1000 dir/ /new/deep/", ["/new", "/new/deep", "/new/deep/g",
                                               "/new/deep/sub"],
     ["1000:1000 755", "1000:1000 755", "1000:1000 644", "1000:1000 755"]),
    ("COPY --chown=1000:1000 --chmod=0640 src /both/b/c", ["/both/b", "/both/b/c"],
     ["1000:1000 755", "1000:1000 640"]),
    ("COPY --chmod=0700 dir /cm/x", ["/cm", "/cm/x", "/cm/x/g", "/cm/x/sub"],
     ["0:0 755", "0:0 755", "0:0 700", "0:0 700"]),
    ("RUN mkdir /exist && chown 7:7 /exist\nCOPY --chown=1000:1000 src /exist/new/c",
     ["/exist", "/exist/new"], ["7:7 755", "1000:1000 755"]),
    ("COPY --chown=user:user src /named/b/c", ["/named", "/named/b"],
     ["1000:1000 755", "1000:1000 755"]),
    ("COPY --chown=:55 src /g/c", ["/g", "/g/c"], ["0:55 755", "0:55 644"]),
]


@pytest.mark.parametrize(("lines", "paths", "expected"), CHOWN_PARENTS,
                         ids=[c[0].splitlines()[-1] for c in CHOWN_PARENTS])
def test_directories_a_copy_creates(with_busybox: Pybuild, tmp_path: Path, lines: str,
                                   paths: list[str], expected: list[str]) -> None:
    _, tree = build(with_busybox, tmp_path,
                    "FROM localhost/busybox\n"
                    "RUN echo user:x:1000:1000::/home/user:/bin/sh >> /etc/passwd && "
                    "echo user:x:1000: >> /etc/group\n" + lines + "\n",
                    files={"src": "s", "dir/g": "g", "dir/sub/h": "h"})
    assert owners(tree, *paths) == expected


def test_a_user_can_write_in_the_directories_its_copy_created(with_busybox: Pybuild,
                                                             tmp_path: Path) -> None:
    build(with_busybox, tmp_path, "FROM localhost/busybox\nCOPY --chown=1000:1000 src /a/b/c\n"
          "USER 1000\nRUN mkdir /a/b/new\n", files={"src": "s"})


# 3. COPY --from a stage keeps the source's uid/gid (both references); the directory the
# copy creates is 0:0 755 and context files are 0:0.

def test_copy_from_a_stage_keeps_owners(with_busybox: Pybuild, tmp_path: Path) -> None:
    ctxfile = tmp_path / "ctx" / "ctxfile"
    ctxfile.parent.mkdir(parents=True)
    ctxfile.write_text("c")
    os.chmod(ctxfile, 0o640)
    os.chown(ctxfile, 4242, 4343)
    _, tree = build(with_busybox, tmp_path,
                    "FROM localhost/busybox AS base\n"
                    "RUN mkdir -p /app/sub && touch /app/f /app/sub/s && chown -R 100:200 /app "
                    "&& chmod 0600 /app/f && chown 300:400 /app/sub/s\n"
                    "FROM localhost/busybox\n"
                    "COPY --from=base /app /app1\nCOPY --from=base /app/f /f1\n"
                    "COPY --from=base --chown=1000:1000 /app /app3\n"
                    "COPY --from=base --chmod=0755 /app /app5\nCOPY ctxfile /ctxfile\n")
    assert owners(tree, "/app1", "/app1/f", "/app1/sub", "/app1/sub/s", "/f1") == [
        "0:0 755", "100:200 600", "100:200 755", "300:400 644", "100:200 600"]
    assert owners(tree, "/app3", "/app3/f", "/app3/sub/s") == [
        "1000:1000 755", "1000:1000 600", "1000:1000 644"]
    assert owners(tree, "/app5", "/app5/f", "/app5/sub/s") == [
        "0:0 755", "100:200 755", "300:400 755"]
    assert owners(tree, "/ctxfile") == ["0:0 640"]


def test_copy_from_into_an_empty_stage_keeps_owners(with_busybox: Pybuild,
                                                    tmp_path: Path) -> None:
    """The layer of a COPY into FROM scratch is planned from the sources, not written:
    the same owners."""
    _, tree = build(with_busybox, tmp_path,
                    "FROM localhost/busybox AS base\nRUN mkdir /app && touch /app/f && "
                    "chown -R 100:200 /app\nFROM scratch\nCOPY --from=base /app /app\n")
    assert owners(tree, "/app", "/app/f") == ["0:0 755", "100:200 644"]


# 4. WORKDIR never fails on a user: it owns what it creates as COPY --chown would, and an
# unknown name (or none with no /etc/passwd) is 0:0. RUN needs a user it can resolve,
# root included (both references).

NOPASSWD = "FROM localhost/busybox\nRUN rm /etc/passwd /etc/group\n"

WORKDIR_USERS = [
    ("USER root\nWORKDIR /x", "/x", "0:0 755"),
    ("USER 1000\nWORKDIR /y", "/y", "1000:1000 755"),
    ("USER 1000:55\nWORKDIR /y3", "/y3", "1000:55 755"),
    ("USER nosuchuser\nWORKDIR /z", "/z", "0:0 755"),
]


@pytest.mark.parametrize(("lines", "path", "expected"), WORKDIR_USERS,
                         ids=[c[0].replace("\n", "; ") for c in WORKDIR_USERS])
def test_workdir_without_a_passwd_file(with_busybox: Pybuild, tmp_path: Path, lines: str,
                                       path: str, expected: str) -> None:
    _, tree = build(with_busybox, tmp_path, NOPASSWD + lines + "\n")
    assert owners(tree, path) == [expected]


@pytest.mark.parametrize(("base", "lines", "user"), [
    (NOPASSWD, "USER root\nRUN true", "root"),
    ("FROM localhost/busybox\n", "USER nosuchuser\nRUN true", "nosuchuser"),
])
def test_run_needs_a_known_user(with_busybox: Pybuild, tmp_path: Path, base: str, lines: str,
                                user: str) -> None:
    result = build(with_busybox, tmp_path, base + lines + "\n", check=False)[0]["result"]
    assert result.returncode == 125
    assert f"resolving user {user!r}" in result.stderr and 'STEP "RUN true"' in result.stderr


def test_an_unknown_user_no_step_needs_is_kept(with_busybox: Pybuild, tmp_path: Path) -> None:
    config, _ = build(with_busybox, tmp_path,
                      'FROM localhost/busybox\nUSER nosuchuser\nCMD ["sh"]\n')
    assert config["config"]["User"] == "nosuchuser"


def test_run_as_a_number_without_passwd_has_group_0(with_busybox: Pybuild,
                                                     tmp_path: Path) -> None:
    build(with_busybox, tmp_path, NOPASSWD + 'USER 1000\nRUN test "$(id -u):$(id -g)" = 1000:0\n')


# 7. Variables in --from and a mount's from= are expanded, as Buildah 1.28 does (BuildKit
# refuses them: "variable expansion is not supported for --from").

@pytest.mark.parametrize("line", [
    "ARG SRC\nCOPY --from=$SRC /f /f\nRUN test $(cat /f) = frombase",
    "ARG SRC\nRUN --mount=type=bind,from=$SRC,target=/x test $(cat /x/f) = frombase",
    "ARG SRC=base\nCOPY --from=${SRC} /f /f",
    'COPY --from="base" /f /f',
])
def test_from_variables_are_expanded(with_busybox: Pybuild, tmp_path: Path, line: str) -> None:
    build(with_busybox, tmp_path, "ARG SRC=base\nFROM localhost/busybox AS base\n"
          "RUN echo frombase > /f\nFROM localhost/busybox\n" + line + "\n")


# 5. VOLUME, as Buildah 1.28 (BuildKit creates nothing and keeps what RUN writes there): a
# VOLUME followed by a RUN creates its directories at once (0:0 0755 whatever USER is) and
# every later RUN's changes under it are undone (COPY and ADD into it are kept); a VOLUME
# followed by no RUN creates its directories only when no step after it changes the file
# system.

@pytest.mark.parametrize("driver", ["overlay", "vfs"])
def test_volume_directories_and_what_run_writes_there(with_busybox: Pybuild, tmp_path: Path,
                                                      driver: str) -> None:
    config, tree = build(with_busybox, tmp_path,
                         "FROM localhost/busybox\nRUN mkdir /pre && echo old > /pre/old\n"
                         "USER 1000\nVOLUME /foo1 /pre\nUSER 0\n"
                         "RUN echo hi > /foo1/hello && test -f /foo1/hello && "
                         "echo new > /pre/new && echo changed > /pre/old\n"
                         "RUN test ! -e /foo1/hello && test ! -e /pre/new && "
                         "test $(cat /pre/old) = old\n"
                         "VOLUME /v\nCOPY f /v/f\nRUN rm /v/f\nVOLUME /s\nCOPY f /other\n"
                         "VOLUME /a/b/c\n", files={"f": "f"}, driver=driver)
    assert owners(tree, "/foo1", "/a", "/a/b", "/a/b/c") == ["0:0 755"] * 4
    assert "foo1/hello" not in tree and "pre/new" not in tree and "pre/old" in tree
    assert "v/f" in tree  # COPY into a volume is kept, and RUN cannot remove it
    assert "s" not in tree  # no RUN after it, and a COPY after it: not created
    assert set(config["config"]["Volumes"]) == {"/foo1", "/pre", "/v", "/s", "/a/b/c"}


# 6. ``**`` in a COPY source is one directory level (Go's filepath.Match: Buildah and
# BuildKit agree); with --parents (BuildKit's, Buildah 1.28 has none) it is any number of
# directories, none included, and paths are kept from the ``/./`` pivot.

DOUBLE_STAR = {"src/bar": "top", "src/x/bar": "x", "src/x/y/bar": "xy", "src/x/other": "o"}


def files_under(tree: dict, prefix: str) -> set[str]:
    return {path[len(prefix):] for path, entry in tree.items()
            if path.startswith(prefix) and entry[0] == "file"}


@pytest.mark.parametrize(("line", "expected"), [
    ("COPY src/**/bar /out/", {"bar"}),
    ("COPY src/** /out/", {"bar", "other", "y/bar"}),
    ("COPY --parents src/./**/bar /out/", {"bar", "x/bar", "x/y/bar"}),
    ("COPY --parents src/**/bar /out/", {"src/bar", "src/x/bar", "src/x/y/bar"}),
    ("COPY --from=base --parents /test/src/x/./**/bar /out/", {"bar", "y/bar"}),
    ("COPY --from=base --parents /test/a/b*/./c/**/bar /out/", {"c/d/e/bar"}),
    ("COPY --from=base --parents /test/a/b*/./c/**/e /out/", {"c/d/e/bar", "c/d/e/bay"}),
])
def test_double_star(with_busybox: Pybuild, tmp_path: Path, line: str,
                     expected: set[str]) -> None:
    _, tree = build(with_busybox, tmp_path,
                    "FROM localhost/busybox AS base\nCOPY src /test/src\n"
                    "RUN mkdir -p /test/a/b1/c/d/e /test/a/b2/c/d/e && "
                    "touch /test/a/b1/c/d/e/bar /test/a/b2/c/d/e/bay\n"
                    f"FROM scratch\n{line}\n", files=DOUBLE_STAR)
    assert files_under(tree, "out/") == expected


# 9. An image built with --format docker and pushed to an OCI layout is converted to OCI
# (as Buildah: the fields OCI has no place for are dropped, and pybuild names them); skopeo
# and umoci read the layout. --format docker on push keeps it v2s2.

def test_push_of_a_docker_image_to_an_oci_layout(with_busybox: Pybuild, tmp_path: Path) -> None:
    build(with_busybox, tmp_path, "FROM localhost/busybox\nONBUILD RUN echo onbuild\n"
          "HEALTHCHECK --interval=5s CMD true\nLABEL a=b\nCMD [\"sh\"]\n", "--format", "docker",
          "--identity-label=false")
    layout = tmp_path / "layout"
    pushed = with_busybox("push", "x", f"oci:{layout}:x")
    assert "Healthcheck is not supported by the OCI image format" in pushed.stderr
    assert "OnBuild is not supported by the OCI image format" in pushed.stderr
    stat_ = subprocess.run(["umoci", "stat", "--image", f"{layout}:x"], capture_output=True,
                           text=True)
    assert stat_.returncode == 0, stat_.stderr
    inspect = json.loads(subprocess.run(["skopeo", "inspect", "--config", f"oci:{layout}:x"],
                                        check=True, capture_output=True, text=True).stdout)
    assert inspect["config"]["Labels"] == {"a": "b"} and "Healthcheck" not in inspect["config"]
    with_busybox("push", "--format", "docker", "x", f"oci:{tmp_path / 'v2s2'}:x")
    index = json.loads((tmp_path / "v2s2" / "index.json").read_text())
    assert index["manifests"][0]["mediaType"] == \
        "application/vnd.docker.distribution.manifest.v2+json"


# References the plan resolves once (issue 14): every --mount from= of a RUN, and --from
# variables set by an ENV that names its own earlier value. Real builds, as a user runs them.

def test_a_run_with_two_mounts_from_two_stages(with_busybox: Pybuild, tmp_path: Path) -> None:
    _, tree = build(with_busybox, tmp_path,
                    "FROM localhost/busybox AS a\nRUN echo A > /a.txt\n"
                    "FROM localhost/busybox AS b\nRUN echo B > /b.txt\n"
                    "FROM localhost/busybox\nRUN --mount=type=bind,from=a,target=/ma "
                    "--mount=type=bind,from=b,target=/mb cat /ma/a.txt /mb/b.txt > /both\n")
    assert tree["both"][4] == len("A\nB\n")


def test_copy_from_names_the_stage_env_had_before_the_instruction(
        with_busybox: Pybuild, tmp_path: Path) -> None:
    config, tree = build(with_busybox, tmp_path,
                         "FROM localhost/busybox AS a\nRUN echo a > /f\n"
                         "FROM localhost/busybox AS x\nRUN echo x > /f\n"
                         "FROM localhost/busybox\nENV S=a\nENV S=x T=$S\n"
                         "COPY --from=$T /f /f\nRUN test \"$(cat /f)\" = a\n")
    assert "T=a" in config["config"]["Env"] and "S=x" in config["config"]["Env"]
