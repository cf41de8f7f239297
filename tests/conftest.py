"""Fixtures shared by every test package: paths and a real `pybuild` subprocess.

Tests marked ``rootless`` that use the ``pybuild`` runner run in two lanes, ``[root]``
and ``[rootless]`` (an unprivileged user with subordinate ids; tests/lanes.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.lanes import RootlessUser, make_rootless_user

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
EXAMPLES = REPO / "Containerfile.examples"
CORPUS = FIXTURES / "corpus"


@pytest.fixture(scope="session")
def corpus() -> Path:
    return CORPUS


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Pybuild:
    """Runs the real CLI in a subprocess against one store root."""

    lane = "root"

    def __init__(self, root: Path, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.env = {**os.environ, "PYBUILD_ROOT": str(root), **(env or {})}

    def argv(self) -> list[str]:
        """The command that starts pybuild (for tests that run it themselves, with ``env``)."""
        return [sys.executable, "-m", "builder"]

    def own(self, path: Path) -> None:
        """Make ``path`` (written by the test) the lane user's; nothing to do as root."""

    def python(self, *argv: str) -> list[str]:
        """A Python command run as the lane's user (with ``env``)."""
        return [sys.executable, *argv]

    def command(self, *argv: str) -> list[str]:
        """Any command run as the lane's user (with ``env``)."""
        return list(argv)

    def bin_dir(self) -> Path:
        """A directory with a ``pybuild`` executable, for scripts (to put on PATH)."""
        return Path(sys.executable).parent

    def __call__(
        self,
        *args: str | os.PathLike[str],
        check: bool = True,
        cwd: Path | None = None,
        input: str | None = None,
        timeout: float = 600,
    ) -> Result:
        proc = subprocess.run(
            [*self.argv(), *map(str, args)],
            capture_output=True,
            text=True,
            cwd=cwd,
            input=input,
            env=self.env,
            timeout=timeout,
        )
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"pybuild {' '.join(map(str, args))} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return result


class RootlessPybuild(Pybuild):
    """Runs the CLI as the rootless lane's user (the store is the user's)."""

    lane = "rootless"

    def __init__(self, root: Path, user: RootlessUser, env: dict[str, str] | None = None) -> None:
        super().__init__(root, {**user.env(), **(env or {})})
        self.user = user

    def argv(self) -> list[str]:
        from tests.lanes import SYSTEM_PYTHON

        return self.user.command(SYSTEM_PYTHON, "-m", "builder")

    def own(self, path: Path) -> None:
        self.user.own(path)

    def python(self, *argv: str) -> list[str]:
        from tests.lanes import SYSTEM_PYTHON

        return self.user.command(SYSTEM_PYTHON, *argv)

    def command(self, *argv: str) -> list[str]:
        return self.user.command(*argv)

    def bin_dir(self) -> Path:
        return self.user.pythonpath / "bin"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "lane" in metafunc.fixturenames and metafunc.definition.get_closest_marker("rootless"):
        metafunc.parametrize("lane", ["root", "rootless"], indirect=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:  # the rootless lane alone: pytest -m rootless_lane
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("lane") == "rootless":
            item.add_marker(pytest.mark.rootless_lane)


@pytest.fixture
def lane(request: pytest.FixtureRequest) -> str:
    """``root``, or ``rootless`` for the second run of a test marked ``rootless``."""
    return str(getattr(request, "param", "root"))


@pytest.fixture(scope="session")
def rootless_user(tmp_path_factory: pytest.TempPathFactory) -> RootlessUser:
    """The unprivileged user of the rootless lane (made once, kept between runs), with a
    readable copy of the package."""
    return make_rootless_user(tmp_path_factory.mktemp("rootless-user"), REPO)


def lane_runner(lane: str, directory: Path, request: pytest.FixtureRequest) -> Pybuild:
    """A runner for ``lane`` with a fresh store in ``directory``, which the rootless lane's
    user is given (its parents made traversable)."""
    if lane != "rootless":
        return Pybuild(directory / "store")
    user: RootlessUser = request.getfixturevalue("rootless_user")
    user.reach(directory)
    os.chown(directory, user.uid, user.gid)
    return RootlessPybuild(directory / "store", user)


@pytest.fixture
def pybuild(tmp_path: Path, lane: str, request: pytest.FixtureRequest) -> Pybuild:
    """A `pybuild` runner with a fresh store under tmp_path (run by the lane's user)."""
    return lane_runner(lane, tmp_path, request)


def build_busybox_store(parent: Path) -> Path:
    """A store under ``parent`` holding localhost/busybox:latest, built by pybuild itself
    from Containerfile.examples/busybox (Debian's busybox-static, which setup installs)."""
    context = parent / "busybox-context"
    shutil.copytree(EXAMPLES / "busybox", context)
    prepared = subprocess.run(["sh", str(context / "prepare.sh")], capture_output=True, text=True)
    if prepared.returncode != 0:
        pytest.fail(f"preparing the busybox context failed: {prepared.stderr}")
    root = parent / "store"
    proc = subprocess.run(
        [sys.executable, "-m", "builder", "bud", "-q", "--timestamp", "0",
         "-t", "localhost/busybox:latest", str(context)],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYBUILD_ROOT": str(root)},
    )
    if proc.returncode != 0:
        pytest.fail(f"building the busybox base image failed: {proc.stderr}")
    return root


def copy_store(source: Path, pybuild: Pybuild, *skip: str) -> Pybuild:
    """Copy the store at ``source`` into ``pybuild``'s root (not its locks, temporary
    files, workspaces and extracted layers, which a copy could not trust, nor the names
    in ``skip``)."""
    shutil.copytree(source, pybuild.root, symlinks=True, ignore=shutil.ignore_patterns(
        "workspaces", "tmp", "lock", "gc.lock", "layers", *skip))
    pybuild.own(pybuild.root)
    return pybuild


@pytest.fixture(scope="session")
def busybox_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding ``localhost/busybox:latest``, built once per session by pybuild;
    tests copy it (``with_busybox``, ``copy_store``) into their own store root."""
    return build_busybox_store(tmp_path_factory.mktemp("busybox"))


@pytest.fixture
def with_busybox(pybuild: Pybuild, busybox_store: Path) -> Pybuild:
    """The ``pybuild`` runner with a store that already holds localhost/busybox:latest."""
    return copy_store(busybox_store, pybuild)


DEBIAN_CACHE = Path(os.environ.get("PYBUILD_TEST_DEBIAN_DIR", "/var/tmp/pybuild-debian-base"))


@pytest.fixture(scope="session")
def debian_base() -> str:
    """A Debian bookworm minbase image as ``oci:DIR:bookworm``, bootstrapped by mmdebstrap
    through ``bench/make-debian-base.sh`` and kept between test runs (and shared with the
    benchmarks) in ``/var/tmp/pybuild-debian-base``; every user can read it."""
    import fcntl

    DEBIAN_CACHE.mkdir(parents=True, exist_ok=True)
    with open(DEBIAN_CACHE.parent / f".{DEBIAN_CACHE.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one bootstrap at a time, across processes
        proc = subprocess.run(
            ["bash", str(REPO / "bench" / "make-debian-base.sh"), str(DEBIAN_CACHE)],
            capture_output=True, text=True, cwd=REPO,
            env={**os.environ, "PYTHON": sys.executable}, timeout=1200,
        )
    if proc.returncode != 0:
        pytest.fail(f"bootstrapping the Debian base failed:\n{proc.stderr[-4000:]}")
    for directory, _, files in os.walk(DEBIAN_CACHE):
        os.chmod(directory, 0o755)
        for name in files:
            os.chmod(os.path.join(directory, name), 0o644)
    return proc.stdout.strip().splitlines()[-1]
