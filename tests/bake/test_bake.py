"""``pybuild bake`` on the example Compose file: three services, one shared stage."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO, Pybuild

EXAMPLE = REPO / "Containerfile.examples" / "bake"


@pytest.mark.rootless
def test_bake_builds_every_service_and_the_shared_stage_once(tmp_path: Path,
                                                              with_busybox: Pybuild) -> None:
    shutil.copytree(EXAMPLE, tmp_path / "bake")
    res = with_busybox("bake", "-f", tmp_path / "bake" / "compose.yaml", "--jobs", "3")
    lines = res.stdout.splitlines()
    assert [line.split()[0] for line in lines[-3:]] == ["api", "worker", "docs"]
    ran = [line for line in lines if line.strip() == "shared-base-step"]
    assert len(ran) == 1, res.stdout
    assert any(line.startswith(("[api] ", "[worker] ")) for line in lines
               if "Using cache" in line)
    images = with_busybox("images").stdout
    for name in ("bake-api", "bake-worker", "bake-docs"):
        assert f"localhost/{name}" in images


def test_bake_selected_service_and_errors(tmp_path: Path, with_busybox: Pybuild) -> None:
    shutil.copytree(EXAMPLE, tmp_path / "bake")
    compose = tmp_path / "bake" / "compose.yaml"
    res = with_busybox("bake", "-f", compose, "docs")
    assert res.stdout.splitlines()[-1].startswith("docs ")
    res = with_busybox("bake", "-f", compose, "nope", check=False)
    assert res.returncode == 125 and "no service with a build section named 'nope'" in res.stderr
