"""The rootless lane: the same CLI tests run by an unprivileged user with subordinate ids.

Tests marked ``rootless`` that use the ``pybuild`` runner (or ``with_busybox``, ``bb``)
run twice in one session, ``[root]`` and ``[rootless]`` (see ``pytest_generate_tests``
in tests/conftest.py). The rootless runner starts ``/usr/bin/python3 -m builder`` as
``pbrootless`` through ``setpriv``, with a copy of the package and its dependencies
that every user can read (the checkout and the test interpreter may live where other
users cannot enter) and with the user's own HOME and XDG_RUNTIME_DIR. The user, its
home and its /etc/subuid and /etc/subgid ranges are made once and kept between runs.

The test process stays root: it writes contexts the user can read (the test's
directory is given to the user; its parents are made traversable) and reads the
store the user wrote.
"""

from __future__ import annotations

import importlib.metadata
import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

USER = "pbrootless"
SYSTEM_PYTHON = "/usr/bin/python3"  # readable by every user, unlike a per-user interpreter
SUBID_COUNT = 65536
# pybuild's runtime dependencies, whose files (and their dependencies') the user needs
_DISTRIBUTIONS = ("lark", "zstandard", "isal", "requests", "PyYAML", "rich")


@dataclass(frozen=True)
class RootlessUser:
    name: str
    uid: int
    gid: int
    home: Path
    pythonpath: Path  # the readable package copy
    runtime: Path  # XDG_RUNTIME_DIR

    def env(self) -> dict[str, str]:
        """What the user's processes get on top of the caller's environment."""
        return {"HOME": str(self.home), "USER": self.name, "LOGNAME": self.name,
                "PYTHONPATH": str(self.pythonpath), "XDG_RUNTIME_DIR": str(self.runtime)}

    def command(self, *argv: str, env: dict[str, str] | None = None) -> list[str]:
        """``argv`` run as the user (``env``: variables to set for it)."""
        settings = {**self.env(), **(env or {})}
        # setpriv execs the command itself (runuser would stay in between, and turn a
        # SIGTERM into its own death instead of the command's exit status)
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups",
                "--inh-caps=-all", "--", "env", "-u", "XDG_DATA_HOME",
                *(f"{k}={v}" for k, v in settings.items()), *argv]

    def own(self, path: Path) -> None:
        """Give ``path`` (and everything below it) to the user."""
        subprocess.run(["chown", "-R", f"{self.uid}:{self.gid}", str(path)], check=True)

    def reach(self, path: Path) -> None:
        """Let the user traverse every parent of ``path`` (adds o+x where it is missing)."""
        for parent in [*reversed(path.parents), path]:
            mode = os.stat(parent).st_mode
            if not mode & 0o001:
                os.chmod(parent, (mode & 0o7777) | 0o001)


def _free_range(path: Path) -> int:
    """The first id after every range in /etc/subuid or /etc/subgid (at least 100000)."""
    start = 100000
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return start
    for line in lines:
        parts = line.split(":")
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            start = max(start, int(parts[1]) + int(parts[2]))
    return start


def ensure_user(name: str = USER,
                ranges: tuple[int, ...] = (SUBID_COUNT,)) -> pwd.struct_passwd:
    """The user, with a home and subordinate ranges of these sizes in /etc/subuid and
    /etc/subgid (none: ``ranges=()``), apart from each other and from other users'; made
    or completed when missing (idempotent, kept between runs)."""
    if os.geteuid() != 0 or not shutil.which("useradd") or not Path(SYSTEM_PYTHON).exists():
        pytest.skip("the rootless lane needs root (to make the user), useradd and a system "
                    "python3")
    if not (shutil.which("newuidmap") and shutil.which("newgidmap")):
        pytest.skip("the rootless lane needs newuidmap and newgidmap (Debian package uidmap)")
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True, capture_output=True)
        entry = pwd.getpwnam(name)
    home = Path(entry.pw_dir)
    if not home.is_dir():
        home.mkdir(parents=True, mode=0o755)
        os.chown(home, entry.pw_uid, entry.pw_gid)
    for kind in ("subuid", "subgid"):
        path = Path("/etc") / kind
        text = path.read_text() if path.exists() else ""
        mine = re.findall(rf"(?m)^(?:{re.escape(name)}|{entry.pw_uid}):(\d+):(\d+)$", text)
        if tuple(int(count) for _, count in mine) == ranges:
            continue
        for start, count in mine:  # useradd may have given some
            subprocess.run(["usermod", f"--del-{kind}s",
                            f"{start}-{int(start) + int(count) - 1}", name],
                           check=True, capture_output=True)
        for index, count in enumerate(ranges):
            start = _free_range(path) + (1000 if index else 0)  # a gap: ranges stay apart
            subprocess.run(["usermod", f"--add-{kind}s", f"{start}-{start + count - 1}",
                            name], check=True, capture_output=True)
    return entry


def _top_levels(dist: importlib.metadata.Distribution) -> set[str]:
    tops = set()
    for file in dist.files or []:
        first = file.parts[0]
        if first in ("..", "__pycache__") or first.endswith((".dist-info", ".pth")):
            continue
        tops.add(first)
    return tops


def readable_package(dest: Path, repo: Path) -> Path:
    """``dest`` holding ``builder`` and the distributions it needs, readable by all."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(repo / "builder", dest / "builder",
                    ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    pending, seen = list(_DISTRIBUTIONS), set()
    while pending:
        name = pending.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        seen.add(key)
        dist = importlib.metadata.distribution(name)
        for top in _top_levels(dist):
            source = Path(str(dist.locate_file(top)))
            if source.is_dir():
                shutil.copytree(source, dest / top, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__"))
            elif source.exists():
                shutil.copy2(source, dest / top)
        for requirement in dist.requires or []:
            if "extra ==" not in requirement:
                match = re.match(r"[A-Za-z0-9._-]+", requirement)
                if match:
                    pending.append(match.group(0))
    # compiled once here: the users cannot write __pycache__, and compiling every module
    # at every start costs more than the work of most commands
    subprocess.run([SYSTEM_PYTHON, "-m", "compileall", "-q", str(dest)], check=True,
                   stdout=subprocess.DEVNULL)
    for directory, _dirs, files in os.walk(dest):
        os.chmod(directory, 0o755)
        for file in files:
            os.chmod(os.path.join(directory, file), 0o644)
    return dest


def make_rootless_user(base: Path, repo: Path, name: str = USER,
                       ranges: tuple[int, ...] = (SUBID_COUNT,)) -> RootlessUser:
    """A user (the lane's by default), with a package copy (shared by the users made
    under one ``base``) and a runtime directory under ``base``."""
    entry = ensure_user(name, ranges)
    base.mkdir(parents=True, exist_ok=True)
    package = base / "pkg"
    if not (package / "builder").is_dir():
        readable_package(package, repo)
        (package / "bin").mkdir()
        script = package / "bin" / "pybuild"  # for scripts that run `pybuild`
        script.write_text(f'#!/bin/sh\nexec {SYSTEM_PYTHON} -m builder "$@"\n')
        script.chmod(0o755)
    user = RootlessUser(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir),
                        package, base / f"run-{name}")
    user.reach(package)
    user.runtime.mkdir(mode=0o700, exist_ok=True)
    os.chown(user.runtime, user.uid, user.gid)
    probe = subprocess.run(
        user.command(SYSTEM_PYTHON, "-c", "import builder.cli, builder.commands.build, "
                     "builder.executor.build, builder.registry.client, rich, yaml"),
        capture_output=True, text=True, cwd="/")
    if probe.returncode != 0:
        pytest.fail(f"the rootless user cannot import pybuild:\n{probe.stderr}")
    return user
