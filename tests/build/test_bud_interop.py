"""Same result as Buildah: config and file tree of images built by both from the same input.

Only builds without RUN (FROM scratch) are compared, so the two builders see
identical inputs. Intended differences, removed before comparing:

* Buildah adds the label ``io.buildah.version``, pybuild ``io.pybuild.version`` (the
  identity labels, see tests/build/test_bud_flags.py).
* After a RUN, Buildah leaves the empty mount points it made for the sandbox
  (``/dev``, ``/proc``, ``/sys``, ``/run``, ``/etc/hosts``, ...) in the image;
  pybuild's sandbox leaves no trace. Those empty entries are ignored.
* File mtimes are not compared (Buildah stamps directories it creates with the
  build time).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.build.conftest import Buildah, pybuild_image
from tests.conftest import CORPUS, Pybuild
from tests.rootfs.tarbuild import E, make_tar

pytestmark = pytest.mark.interop

BUD = CORPUS / "buildah-bud" / "bud"
COMPARED = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes",
            "Labels", "StopSignal")
BRAND_LABELS = ("io.buildah.version", "io.pybuild.version")


def _config(config: dict) -> dict:
    body = dict(config.get("config") or {})
    labels = {k: v for k, v in (body.get("Labels") or {}).items() if k not in BRAND_LABELS}
    body["Labels"] = labels or None
    return {key: body.get(key) or None for key in COMPARED}


def _tar_gz(files: dict[str, bytes | None], compression: str = "gzip") -> bytes:
    """A tar of ``files`` (None: a directory), compressed as ``compression``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid, info.mtime = 0o640, 7, 8, 1000
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o750
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    import bz2
    import gzip
    import lzma

    import zstandard

    compress = {"gzip": lambda b: gzip.compress(b, mtime=0), "bzip2": bz2.compress,
                "xz": lzma.compress, "zstd": zstandard.ZstdCompressor().compress}
    return compress[compression](buf.getvalue())


# name -> (Containerfile, context files, extra build flags)
INLINE: dict[str, tuple[str, dict[str, bytes | str], tuple[str, ...]]] = {
    "config-everything": (
        "FROM scratch\nENV A=1 B=\"two words\"\nENV C $A-$B\nLABEL x=y \"sp ace\"=\"v w\"\n"
        "EXPOSE 80 53/udp 8000-8002/tcp\nVOLUME /data /logs\nUSER 1000:1000\n"
        "WORKDIR /srv\nWORKDIR app\nSTOPSIGNAL SIGKILL\nENTRYPOINT [\"/bin/app\", \"-v\"]\n"
        "CMD [\"--help\"]\n", {}, ()),
    "shell-form-commands": (
        "FROM scratch\nENTRYPOINT /bin/app run\nCMD exec me\n", {}, ()),
    "entrypoint-resets-cmd": (
        "FROM scratch AS base\nCMD [\"a\"]\nFROM base\nENTRYPOINT [\"/e\"]\n", {}, ()),
    "env-in-copy-names": (
        "FROM scratch\nENV VERSION=0.0.1 DIR=/opt/app\nCOPY file-${VERSION}.txt $DIR/\n",
        {"file-0.0.1.txt": "v\n"}, ()),
    "copy-dir-contents": (
        "FROM scratch\nCOPY dir /target\nCOPY dir/ /target2/\n",
        {"dir/a": "a", "dir/sub/b": "bb", "dir/sub/deeper/c": "ccc"}, ()),
    "copy-file-rules": (
        "FROM scratch\nCOPY one /renamed\nCOPY one /into/\nCOPY one two /multi/\n"
        "WORKDIR /w\nCOPY one rel\nCOPY two ./\n",
        {"one": "1", "two": "22"}, ()),
    "copy-chown-chmod": (
        "FROM scratch\nCOPY --chown=1234:5678 one /owned\nCOPY --chmod=0700 dir /modes/\n"
        "COPY --chown=42 --chmod=640 one /both\n",
        {"one": "1", "dir/a": "a", "dir/b/c": "c"}, ()),
    "copy-globs-in-dirs": (
        "FROM scratch\nCOPY */*.txt /g/\nCOPY [ab]?.md /h/\n",
        {"x/a.txt": "a", "y/b.txt": "b", "y/c.dat": "c", "a1.md": "m", "b2.md": "n",
         "c3.md": "o"}, ()),
    "symlinks-kept": (
        "FROM scratch\nCOPY tree /tree\n",
        {"tree/file": "f", "tree/link": Path("file"), "tree/abs": Path("/etc/passwd"),
         "tree/dangling": Path("nowhere")}, ()),
    "dest-through-symlink": (
        "FROM scratch\nCOPY tree /\nCOPY one /link/\n",
        {"tree/real/keep": "k", "tree/link": Path("/real"), "one": "1"}, ()),
    "multi-stage-copy-from": (
        "FROM scratch AS a\nCOPY one /stage-a/one\nFROM scratch AS b\nCOPY two /stage-b/two\n"
        "FROM scratch\nCOPY --from=a /stage-a /from-a\nCOPY --from=1 /stage-b/two /b/\n",
        {"one": "1", "two": "2"}, ()),
    "arg-scope-static": (
        "ARG WHERE=/global\nFROM scratch\nARG WHERE\nARG LOCAL=local\nENV W=$WHERE L=$LOCAL\n"
        "COPY one $WHERE/\n", {"one": "1"}, ("--build-arg", "LOCAL=given")),
    "add-archive-and-file": (
        "FROM scratch\nADD arch.tar.gz /unpacked/\nADD plain.txt /plain.txt\n",
        {"arch.tar.gz": _tar_gz({"top/inner.txt": b"in", "other.txt": b"o"}),
         "plain.txt": "p"}, ()),
    "add-archive-compressions": (
        "FROM scratch\nADD a.tar.bz2 /bz2/\nADD a.tar.xz /xz/\nADD a.tar.zst /zst/\n",
        {"a.tar.bz2": _tar_gz({"f": b"b"}, "bzip2"), "a.tar.xz": _tar_gz({"f": b"x"}, "xz"),
         "a.tar.zst": _tar_gz({"d/f": b"z"}, "zstd")}, ()),
    # merged /usr: a parent that is a symlink is followed (inside the root); a directory
    # entry in its place replaces the symlink with a directory
    "add-archive-onto-symlinked-parents": (
        "FROM scratch\nCOPY base/ /\nADD files.tar.gz /\nADD dirs.tar.gz /\n",
        {"base/usr/bin/sh": "sh", "base/usr/lib/x": "x", "base/bin": Path("usr/bin"),
         "base/lib": Path("usr/lib"), "base/sbin": Path("usr/bin"),
         "files.tar.gz": _tar_gz({"bin/hello": b"hi", "lib/libhello.so": b"so"}),
         "dirs.tar.gz": _tar_gz({"sbin": None, "sbin/tool": b"t"})}, ()),
    # the destination is the archive's root: "..", "/" and links stop there
    "add-archive-confined-to-destination": (
        "FROM scratch\nCOPY base/ /\nADD evil.tar /dest/\n",
        {"base/x/keep": "root", "base/dest/x/keep": "dest",
         "evil.tar": make_tar([E("link", "symlink", link="/x"), E("link/f", data=b"f"),
                               E("rl", "symlink", link="../../x"), E("rl/g", data=b"g"),
                               E("../escape", data=b"e"), E("y/../../z", data=b"z"),
                               E("/abs", data=b"a"), E("hl", "hardlink", link="../x/keep")])},
        ()),
    "ignore-file": (
        "FROM scratch\nCOPY . /ctx/\n",
        {".dockerignore": "*.log\nsecret/\n!keep.log\n", "a.log": "x", "keep.log": "k",
         "secret/s": "s", "ok.txt": "ok"}, ()),
    "maintainer-and-labels": (
        "FROM scratch\nMAINTAINER someone <a@b.c>\nLABEL version=\"1.0\" \\\n"
        " description=\"multi word\"\n", {}, ("--label", "extra=flag")),
    "volume-and-workdir-expansion": (
        "FROM scratch\nARG ROOT=/r\nENV SUB=s\nWORKDIR $ROOT/$SUB\nVOLUME $ROOT/vol ${SUB}2\n",
        {}, ()),
}

# (directory, file); a base image other than scratch is replaced by scratch (no RUN there).
# Left out on purpose: copy-globs/Containerfile (``COPY *.txt /testdir``, one glob matching
# two files, no trailing slash): Buildah writes a file ``/testdir`` holding the last match;
# pybuild follows Docker's rule (several sources, even through a glob, mean a directory).
CORPUS_CASES = [
    ("from-scratch", "Containerfile"),
    ("from-scratch", "Containerfile2"),
    ("copy-workdir", "Dockerfile"),
    ("multi-stage-builds", "Dockerfile.mixed"),
    # two identical COPY steps: two layers with one diff_id in the overlay stack
    ("recurse", "Dockerfile"),
    ("copy-globs", "Containerfile.missing"),
    ("dockerignore", "Dockerfile.succeed"),
    ("containerignore", "Dockerfile.succeed"),
    ("dockerignore2", "Dockerfile"),
    ("dockerignore6", "Dockerfile.succeed"),
    ("from-multiple-files", "Dockerfile1.scratch"),
    ("symlink", "Dockerfile.replace-symlink"),
]


def _write_context(base: Path, files: dict[str, bytes | str | Path], containerfile: str) -> Path:
    context = base / "context"
    context.mkdir()
    (context / "Containerfile").write_text(containerfile)
    for name, content in files.items():
        path = context / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            os.symlink(content, path)
        else:
            path.write_bytes(content.encode() if isinstance(content, str) else content)
            os.utime(path, (1_600_000_000, 1_600_000_000))
    return context


MOUNT_POINTS = ("dev", "proc", "sys", "run", "etc/hosts", "etc/hostname", "etc/resolv.conf")


def _compare(ours: tuple[dict, dict], theirs: tuple[dict, dict]) -> None:
    assert _config(ours[0]) == _config(theirs[0])
    their_tree = {path: entry for path, entry in theirs[1].items()
                  if path in ours[1] or path not in MOUNT_POINTS or entry[4] != 0}
    assert ours[1] == their_tree


@pytest.mark.parametrize("name", sorted(INLINE))
def test_inline_matches_buildah(name: str, tmp_path: Path, pybuild: Pybuild,
                                buildah: Buildah) -> None:
    containerfile, files, flags = INLINE[name]
    context = _write_context(tmp_path, files, containerfile)
    _compare(pybuild_image(pybuild, context, *flags), buildah.build(context, *flags))


@pytest.mark.parametrize("directory,file", CORPUS_CASES, ids=lambda v: str(v))
def test_corpus_matches_buildah(directory: str, file: str, tmp_path: Path, pybuild: Pybuild,
                                buildah: Buildah) -> None:
    context = tmp_path / directory
    shutil.copytree(BUD / directory, context, symlinks=True)
    for path in [context, *context.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    containerfile = context / file
    containerfile.write_text(re.sub(r"(?im)^FROM (alpine|busybox)\b", "FROM scratch",
                                    containerfile.read_text()))
    if directory == "dockerignore2":  # the symlinks the upstream test adds
        os.symlink("subdir", context / "symlink")
        os.symlink("circular-link", context / "subdir" / "circular-link")
        os.symlink("no-such-file", context / "subdir" / "dangling-link")
    if directory == "symlink":
        os.symlink(file, context / "symlink")
    flags = ("-f", str(containerfile))
    ours = pybuild_image(pybuild, context, *flags)
    _compare(ours, buildah.build(context, *flags))


EXAMPLES = sorted(p.name for p in (Path(__file__).parents[2] / "Containerfile.examples").iterdir()
                  if (p / "Containerfile").exists())


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_matches_buildah(name: str, tmp_path: Path, pybuild: Pybuild,
                                 buildah: Buildah, request: pytest.FixtureRequest) -> None:
    context = tmp_path / name
    shutil.copytree(Path(__file__).parents[2] / "Containerfile.examples" / name, context)
    if "localhost/busybox" in (context / "Containerfile").read_text():
        store = request.getfixturevalue("busybox_store")
        request.getfixturevalue("with_busybox")
        buildah.load(store, "localhost/busybox:latest")
    if (context / "prepare.sh").exists():
        if not Path("/bin/busybox").exists():
            pytest.skip("busybox-static is not installed")
        subprocess.run(["sh", str(context / "prepare.sh")], check=True, capture_output=True)
    flags: tuple[str, ...] = ()
    if "localhost/debian" in (context / "Containerfile").read_text():  # apt-get over the
        # network: pybuild's default private network, Buildah's chroot (the host's)
        flags = ("--build-arg", f"BASE={request.getfixturevalue('debian_base')}")
    _compare(pybuild_image(pybuild, context, *flags), buildah.build(context, *flags))
