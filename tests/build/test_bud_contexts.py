"""Build contexts from elsewhere: git (file://, git daemon, smart HTTP, scp-style over
git's ssh transport), tarball URLs, stdin and local archives; ``ADD <git URL>``; and
``--build-context`` named contexts.

Rules named here:

* A URL context that is not a tar archive is the Containerfile of an empty context;
  so is a non-archive on stdin (Buildah's ``downloadToDirectory``/``stdinToDirectory``,
  Docker's ``docker build -``).
* ``ADD <git URL>`` copies the tree without ``.git`` unless ``--keep-git-dir=true``
  (BuildKit); the commit is in the cache key.
* A named context wins over a stage of the same name (Buildah and BuildKit); only an
  image context may be a FROM base (Buildah: "is not an image, can not be used for
  FROM").
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard

from tests.build.imagetree import read_image
from tests.build.remote_servers import Repo, advance, fake_ssh, make_repo
from tests.conftest import REPO, Pybuild

CONTAINERFILE = "FROM scratch\nCOPY . /ctx/\n"


def _tree(pybuild: Pybuild, name: str = "localhost/x:latest") -> dict:
    return read_image(pybuild.root, name)[1]


def _tar(files: dict[str, str], compression: str = "") -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    data = raw.getvalue()
    if compression == "gz":
        import gzip

        return gzip.compress(data)
    if compression == "zst":
        return zstandard.ZstdCompressor().compress(data)
    if compression == "xz":
        import lzma

        return lzma.compress(data)
    return data


def _bud_stdin(pybuild: Pybuild, data: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "builder", "bud", *args, "-"], input=data,
                          capture_output=True, env=pybuild.env, cwd=REPO, timeout=300)


# git


@pytest.mark.parametrize("ref,version", [("", "two"), ("v1", "one"), ("main", "two")])
def test_git_context_over_smart_http(ref: str, version: str, pybuild: Pybuild,
                                     git_http: tuple[str, Repo]) -> None:
    base, repo = git_http
    fragment = f"#{ref}:app" if ref else "#:app"
    pybuild("bud", "-q", "-t", "x", f"{base}/{repo.name}{fragment}")
    tree = _tree(pybuild)
    assert tree["version"][4] == len(version) + 1


def test_git_context_over_git_daemon(pybuild: Pybuild, git_daemon: tuple[str, Repo]) -> None:
    base, repo = git_daemon
    pybuild("bud", "-q", "-t", "x", f"{base}/{repo.name}#v1:app")
    assert _tree(pybuild)["version"][4] == len("one\n")


def test_git_context_by_commit_and_file_url(tmp_path: Path, pybuild: Pybuild) -> None:
    repo = make_repo(tmp_path / "local")
    pybuild("bud", "-q", "-t", "x", f"file://{repo.path}#{repo.commits['v1']}:app")
    assert _tree(pybuild)["version"][4] == len("one\n")


def test_git_context_scp_style(tmp_path: Path, pybuild: Pybuild) -> None:
    repo = make_repo(tmp_path / "ssh")
    pybuild.env.update(fake_ssh(tmp_path))
    pybuild("bud", "-q", "-t", "x", f"git@localhost:{repo.path}#main:app")
    assert _tree(pybuild)["version"][4] == len("two\n")


GIT_ERRORS = [
    ("#no-such-ref:app", "couldn't find remote ref no-such-ref"),
    ("#main:no-such-dir", "no directory 'no-such-dir' in the repository"),
]


@pytest.mark.parametrize("fragment,message", GIT_ERRORS)
def test_git_context_errors(fragment: str, message: str, pybuild: Pybuild,
                            git_http: tuple[str, Repo]) -> None:
    base, repo = git_http
    res = pybuild("bud", f"{base}/{repo.name}{fragment}", check=False)
    assert res.returncode == 125, res.output
    assert message in res.stderr and f"cloning {base}/{repo.name}" in res.stderr


def test_git_context_needs_a_server(pybuild: Pybuild) -> None:
    res = pybuild("bud", "git://127.0.0.1:1/nothing.git", check=False)
    assert res.returncode == 125 and "cloning git://127.0.0.1:1/nothing.git" in res.stderr


# tarballs: URLs, stdin, files


@pytest.mark.parametrize("compression,suffix", [("", "tar"), ("gz", "tar.gz"),
                                                ("zst", "tar.zst"), ("xz", "tar.xz")])
def test_tarball_url_context(compression: str, suffix: str, pybuild: Pybuild,
                             file_server: tuple[str, Path]) -> None:
    base, root = file_server
    (root / f"ctx.{suffix}").write_bytes(_tar({"Containerfile": CONTAINERFILE, "a": "aa",
                                               "d/b": "bbb"}, compression))
    pybuild("bud", "-q", "-t", "x", f"{base}/ctx.{suffix}")
    tree = _tree(pybuild)
    assert (tree["ctx/a"][4], tree["ctx/d/b"][4]) == (2, 3)


def test_url_of_a_containerfile(pybuild: Pybuild, file_server: tuple[str, Path]) -> None:
    base, root = file_server
    (root / "Containerfile").write_text("FROM scratch\nLABEL from=url\n")
    pybuild("bud", "-q", "-t", "x", f"{base}/Containerfile")
    config, tree = read_image(pybuild.root, "localhost/x:latest")
    assert config["config"]["Labels"]["from"] == "url" and tree == {}


def test_url_errors(pybuild: Pybuild, file_server: tuple[str, Path]) -> None:
    base, _ = file_server
    res = pybuild("bud", f"{base}/missing.tar.gz", check=False)
    assert res.returncode == 125 and f"downloading {base}/missing.tar.gz: HTTP status 404" \
        in res.stderr


@pytest.mark.parametrize("compression", ["", "gz", "zst"])
def test_stdin_tar_context(compression: str, pybuild: Pybuild) -> None:
    proc = _bud_stdin(pybuild, _tar({"Containerfile": CONTAINERFILE, "a": "aa"}, compression),
                      "-q", "-t", "x")
    assert proc.returncode == 0, proc.stderr
    assert _tree(pybuild)["ctx/a"][4] == 2


def test_stdin_containerfile_without_context(pybuild: Pybuild) -> None:
    proc = _bud_stdin(pybuild, b"FROM scratch\nLABEL from=stdin\n", "-q", "-t", "x")
    assert proc.returncode == 0, proc.stderr
    config, tree = read_image(pybuild.root, "localhost/x:latest")
    assert config["config"]["Labels"]["from"] == "stdin" and tree == {}


def test_stdin_context_conflicts(pybuild: Pybuild) -> None:
    for flags in (("-f", "-"), ("--stdin",)):
        proc = _bud_stdin(pybuild, b"", *flags)
        assert proc.returncode == 125
        assert b"stdin is also used by" in proc.stderr


@pytest.mark.parametrize("compression,suffix", [("", "tar"), ("gz", "tar.gz")])
def test_archive_file_context(compression: str, suffix: str, tmp_path: Path,
                              pybuild: Pybuild) -> None:
    archive = tmp_path / f"context.{suffix}"
    archive.write_bytes(_tar({"Containerfile": CONTAINERFILE, "a": "aa"}, compression))
    pybuild("bud", "-q", "-t", "x", archive)
    assert _tree(pybuild)["ctx/a"][4] == 2


def test_hostile_context_archive_is_contained(tmp_path: Path, pybuild: Pybuild) -> None:
    """A context tar goes through the layer extractor: an entry below a symlink that
    points out of the context is refused, and nothing outside is written."""
    outside = tmp_path / "outside"
    outside.mkdir()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        link = tarfile.TarInfo("escape")
        link.type, link.linkname = tarfile.SYMTYPE, str(outside)
        tar.addfile(link)
        data = b"pwned"
        info = tarfile.TarInfo("escape/file")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    archive = tmp_path / "evil.tar"
    archive.write_bytes(raw.getvalue())
    res = pybuild("bud", archive, check=False)
    assert res.returncode == 125
    assert "unpacking build context" in res.stderr
    assert list(outside.iterdir()) == []


def test_not_a_directory_nor_archive(tmp_path: Path, pybuild: Pybuild) -> None:
    plain = tmp_path / "notes.txt"
    plain.write_text("hello")
    res = pybuild("bud", plain, check=False)
    assert res.returncode == 125 and "not a directory or a tar archive" in res.stderr


# ADD <git URL>


def test_add_git_url(tmp_path: Path, pybuild: Pybuild, git_http: tuple[str, Repo]) -> None:
    base, repo = git_http
    url = f"{base}/{repo.name}"
    context = tmp_path / "add"
    context.mkdir()
    (context / "Containerfile").write_text(
        f"FROM scratch\nADD {url}#v1 /src\nADD --keep-git-dir=true {url}#main /kept/\n"
        f"ADD --chown=7:8 {url}#main:app /owned\n")
    first = pybuild("bud", "-t", "x", context)
    tree = _tree(pybuild)
    assert tree["src/app/version"][4] == len("one\n") and "src/README" in tree
    assert not any(p.startswith("src/.git") for p in tree)
    assert "kept/.git/HEAD" in tree and tree["kept/app/version"][4] == len("two\n")
    assert tree["owned/version"][2:4] == (7, 8)
    again = pybuild("bud", "-t", "x", context)
    assert again.stdout.count("--> Using cache") == 3, again.stdout
    assert first.stdout.splitlines()[-1] == again.stdout.splitlines()[-1]
    advance(repo, "three\n")
    changed = pybuild("bud", "-t", "x", context)
    assert changed.stdout.count("--> Using cache") == 1  # only the ADD of the tag v1
    assert _tree(pybuild)["owned/version"][4] == len("three\n")


def test_add_git_with_checksum(tmp_path: Path, pybuild: Pybuild,
                               git_http: tuple[str, Repo]) -> None:
    base, repo = git_http
    context = tmp_path / "add"
    context.mkdir()
    (context / "Containerfile").write_text(
        f"FROM scratch\nADD --checksum={repo.commits['v1']} {base}/{repo.name}#v1 /src\n")
    pybuild("bud", "-q", context)
    (context / "Containerfile").write_text(
        f"FROM scratch\nADD --checksum={'0' * 40} {base}/{repo.name}#v1 /src\n")
    res = pybuild("bud", context, check=False)
    assert res.returncode == 125 and f"is at commit {repo.commits['v1']}" in res.stderr


# --build-context


def _write(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    return directory


def test_named_directory_context(tmp_path: Path, pybuild: Pybuild) -> None:
    extra = _write(tmp_path / "extra", {"data/one": "1", "data/two": "22"})
    context = _write(tmp_path / "ctx", {"Containerfile": (
        "FROM scratch AS extra\nCOPY nothing-here /x\n"  # the context wins over the stage
        "FROM scratch\nCOPY --from=extra data /data\nCOPY --from=0 data/two /two\n")})
    res = pybuild("bud", "-t", "x", "--build-context", f"extra={extra}", context)
    assert "nothing-here" not in res.stdout  # the stage it replaced is not built
    tree = _tree(pybuild)
    assert (tree["data/one"][4], tree["data/two"][4], tree["two"][4]) == (1, 2, 2)
    again = pybuild("bud", "-t", "x", "--build-context", f"extra={extra}", context)
    assert again.stdout.count("--> Using cache") == 2
    (extra / "data" / "one").write_text("changed")
    changed = pybuild("bud", "-t", "x", "--build-context", f"extra={extra}", context)
    assert changed.stdout.count("--> Using cache") == 0
    assert _tree(pybuild)["data/one"][4] == len("changed")


def test_named_image_contexts(tmp_path: Path, pybuild: Pybuild) -> None:
    base = _write(tmp_path / "base", {"Containerfile": "FROM scratch\nCOPY f /from-base\n",
                                      "f": "base"})
    pybuild("bud", "-q", "-t", "base", base)
    layout = tmp_path / "layout"
    pybuild("push", "localhost/base", f"oci:{layout}:tagged")
    context = _write(tmp_path / "ctx", {"Containerfile": (
        "FROM img AS first\nLABEL stage=first\nFROM scratch\n"
        "COPY --from=layout /from-base /via-layout\nCOPY --from=first /from-base /via-stage\n")})
    pybuild("bud", "-q", "-t", "x", "--build-context", "img=docker-image://localhost/base",
            "--build-context", f"layout=oci-layout://{layout}:tagged", context)
    tree = _tree(pybuild)
    assert tree["via-layout"][4] == tree["via-stage"][4] == len("base")


def test_named_git_and_url_contexts(tmp_path: Path, pybuild: Pybuild,
                                    git_http: tuple[str, Repo],
                                    file_server: tuple[str, Path]) -> None:
    base, repo = git_http
    files, root = file_server
    (root / "extra.tar.gz").write_bytes(_tar({"inside": "from the tarball"}, "gz"))
    context = _write(tmp_path / "ctx", {"Containerfile": (
        "FROM scratch\nCOPY --from=code version /version\nCOPY --from=tarball inside /inside\n")})
    pybuild("bud", "-q", "-t", "x", "--build-context", f"code={base}/{repo.name}#v1:app",
            "--build-context", f"tarball={files}/extra.tar.gz", context)
    tree = _tree(pybuild)
    assert (tree["version"][4], tree["inside"][4]) == (len("one\n"), len("from the tarball"))


def test_directory_context_cannot_be_a_base(tmp_path: Path, pybuild: Pybuild) -> None:
    extra = _write(tmp_path / "extra", {"f": "f"})
    context = _write(tmp_path / "ctx", {"Containerfile": "FROM extra\nLABEL a=b\n"})
    res = pybuild("bud", "--build-context", f"extra={extra}", context, check=False)
    assert res.returncode == 125
    assert "build context 'extra' is a directory, not an image" in res.stderr
    res = pybuild("bud", "--build-context", f"extra={tmp_path / 'missing'}", context,
                  check=False)
    assert res.returncode == 125 and "is not a directory" in res.stderr


def test_url_parsing() -> None:
    from builder.fetch import GitSource, is_git_url, parse_git_url

    table = {
        "https://example.invalid/org/repo.git#v1:sub/dir": GitSource(
            "https://example.invalid/org/repo.git", "v1", "sub/dir"),
        "git@example.invalid:org/repo.git": GitSource("git@example.invalid:org/repo.git"),
        "git://example.invalid/repo#main": GitSource("git://example.invalid/repo", "main"),
        "ssh://git@example.invalid/repo.git#:docs": GitSource(
            "ssh://git@example.invalid/repo.git", "", "docs"),
    }
    for url, expected in table.items():
        assert is_git_url(url) and parse_git_url(url) == expected
    for not_git in ("https://example.invalid/ctx.tar.gz", "http://example.invalid/repo",
                    "./repo.git", "dir", "-"):
        assert not is_git_url(not_git), not_git
    assert os.sep == "/"
