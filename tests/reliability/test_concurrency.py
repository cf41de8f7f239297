"""Many `pybuild` processes on one store at once: every one succeeds and the
store stays sound."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import Pybuild

from .conftest import build_context


def _start(runner: Pybuild, *args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "builder", *map(str, args)], env=runner.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(procs: dict[str, subprocess.Popen[str]]) -> None:
    failed = []
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            failed.append(f"{name}: exit {proc.returncode}\n{out}{err}")
    assert not failed, "\n".join(failed)


def test_eight_builds_and_a_prune(store_ab: Pybuild, tmp_path: Path) -> None:
    procs: dict[str, subprocess.Popen[str]] = {}
    for i in range(8):
        # pairs of builds share their content, so they race on the same blobs
        ctx = build_context(tmp_path / f"c{i}", f"content {i // 2}".encode() * 20000,
                            extra=f"COPY data /copy{i}\n")
        procs[f"bud {i}"] = _start(store_ab, "bud", "-q", "-t", f"img{i}", ctx)
    procs["prune"] = _start(store_ab, "prune")
    _finish(procs)
    listed = store_ab("images").stdout
    for i in range(8):
        assert f"localhost/img{i} " in listed
    assert store_ab("check").returncode == 0
    store_ab("push", "img7", f"oci:{tmp_path}/out:img7")  # every blob is really there


def test_tags_removals_imports_exports_and_prunes(store_ab: Pybuild, tmp_path: Path) -> None:
    store_ab("push", "b", f"oci-archive:{tmp_path}/b.tar")
    store_ab("push", "a", f"docker-archive:{tmp_path}/a.tar")
    procs: dict[str, subprocess.Popen[str]] = {}
    for i in range(4):
        procs[f"tag {i}"] = _start(store_ab, "tag", "a", *(f"t{i}-{j}" for j in range(5)))
        procs[f"import {i}"] = _start(store_ab, "pull", f"oci-archive:{tmp_path}/b.tar")
        procs[f"export {i}"] = _start(store_ab, "push", "a", f"oci:{tmp_path}/o{i}:x")
    procs["import docker"] = _start(store_ab, "pull", f"docker-archive:{tmp_path}/a.tar")
    procs["rmi"] = _start(store_ab, "rmi", "b")
    procs["prune 1"] = _start(store_ab, "prune")
    procs["prune 2"] = _start(store_ab, "prune", "--all")
    _finish(procs)
    listed = store_ab("images").stdout
    assert all(f"localhost/t{i}" in listed for i in range(4))
    assert store_ab("check").returncode == 0
