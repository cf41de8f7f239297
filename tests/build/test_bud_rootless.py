"""The new bud features as an ordinary user: ``--output``, contexts from git and stdin,
named contexts, image flags and a RUN step, through the real CLI run by that user with
the system python3 and a copy of the package (and its dependencies) every user can read.

Rule named here (Buildah's ``generateBuildOutput``): exported for an unprivileged
caller, files belong to the caller and lose setuid and setgid bits.

Each build here has one COPY at most: a second COPY into an assembled root fails as
an ordinary user until builds run in a user namespace (the rootless issue).
"""

from __future__ import annotations

import io
import os
import pwd
import shutil
import site
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.build.remote_servers import make_repo
from tests.conftest import REPO

pytestmark = pytest.mark.sandbox
USER = "pbcli"
PYTHON = "/usr/bin/python3"
DEPS = ("lark", "zstandard", "isal", "requests", "urllib3", "idna", "certifi",
        "charset_normalizer", "yaml", "_yaml")


@dataclass
class Rootless:
    base: Path
    user: pwd.struct_passwd

    def __call__(self, *args: str, input: bytes | None = None,
                 check: bool = True) -> subprocess.CompletedProcess[bytes]:
        env = [f"HOME={self.base / 'home'}", f"PYBUILD_ROOT={self.base / 'store'}",
               f"PYTHONPATH={self.base / 'pkg'}:{self.base / 'deps'}", "PYTHONDONTWRITEBYTECODE=1"]
        proc = subprocess.run(["runuser", "-u", USER, "--", "env", *env, PYTHON, "-m",
                               "builder", *args], input=input, capture_output=True,
                              cwd=self.base, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"pybuild {' '.join(args)} exited {proc.returncode}:\n"
                                 f"{proc.stdout.decode()}\n{proc.stderr.decode()}")
        return proc

    def give(self, path: Path) -> Path:
        subprocess.run(["chown", "-R", f"{USER}:", str(path)], check=True)
        return path


@pytest.fixture
def rootless(busybox_store: Path) -> Iterator[Rootless]:
    if os.geteuid() != 0 or not shutil.which("useradd") or not Path(PYTHON).exists():
        pytest.skip("needs root (to create the user), useradd and a system python3")
    try:
        user = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "-M", "-s", "/bin/sh", USER], check=True)
        user = pwd.getpwnam(USER)
    base = Path(tempfile.mkdtemp(prefix="pybuild-cli-rootless-"))
    try:
        os.chmod(base, 0o755)
        shutil.copytree(REPO / "builder", base / "pkg" / "builder", symlinks=False,
                        ignore=shutil.ignore_patterns("__pycache__"))
        packages = Path(site.getsitepackages()[0])
        for name in DEPS:
            if (packages / name).exists():
                shutil.copytree(packages / name, base / "deps" / name,
                                ignore=shutil.ignore_patterns("__pycache__"))
        (base / "home").mkdir()
        shutil.copytree(busybox_store, base / "store", symlinks=True,
                        ignore=shutil.ignore_patterns("workspaces", "tmp", "lock", "gc.lock",
                                                      "layers"))
        subprocess.run(["chown", "-R", f"{USER}:", str(base)], check=True)
        yield Rootless(base, user)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _context(rootless: Rootless, name: str, containerfile: str, **files: str) -> Path:
    context = rootless.base / name
    context.mkdir()
    (context / "Containerfile").write_text(containerfile)
    for rel, text in files.items():
        (context / rel).write_text(text)
    return rootless.give(context)


def test_output_as_an_ordinary_user(rootless: Rootless) -> None:
    context = _context(rootless, "ctx", "FROM scratch\nCOPY --chmod=4755 --chown=7:8 . /bin/\n",
                       f="data")
    dest = rootless.base / "out"
    rootless("bud", "-q", "-t", "x", "--env", "E=1", "--identity-label=false",
             "-o", f"type=local,dest={dest}", str(context))
    st = os.lstat(dest / "bin" / "f")
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (rootless.user.pw_uid, 0o755)
    assert (dest / "bin" / "Containerfile").is_file()
    tar = rootless("bud", "-q", "-o", "-", str(context)).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        member = archive.getmember("bin/f")
    # owners in the tar are those of the assembled root, built in the user namespace
    assert (member.uid, member.gid, member.mode) == (7, 8, 0o755) and member.isfile()
    inspect = rootless("inspect", "--format", "{{.Config.Env}}", "x").stdout.decode()
    assert "E=1" in inspect


def test_git_stdin_and_named_contexts_as_an_ordinary_user(rootless: Rootless) -> None:
    repo = make_repo(rootless.base / "git")
    rootless.give(rootless.base / "git")
    rootless("bud", "-q", "-t", "g", f"file://{repo.path}#v1:app")
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as archive:
        text = b"FROM scratch\nCOPY --from=extra e /e\n"
        for name, content in (("Containerfile", text), ("a", b"a")):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    extra = _context(rootless, "extra", "", e="e")
    rootless("bud", "-q", "-t", "s", "--build-context", f"extra={extra}", "-",
             input=data.getvalue())
    listed = rootless("images", "--format", "{{.Name}}").stdout.decode().split()
    assert {"localhost/g", "localhost/s"} <= set(listed)
    tree = rootless("tree", "s").stdout.decode()
    assert "COPY --from=extra e /e" in tree


def test_run_and_output_as_an_ordinary_user(rootless: Rootless) -> None:
    context = _context(rootless, "run", "FROM localhost/busybox\n"
                                        "RUN mkdir /out && echo built > /out/artifact\n")
    dest = rootless.base / "artifacts"
    rootless("bud", "-q", "--stdin", "-o", str(dest), str(context), input=b"")
    assert (dest / "out" / "artifact").read_text() == "built\n"
    assert os.lstat(dest / "out" / "artifact").st_uid == rootless.user.pw_uid
