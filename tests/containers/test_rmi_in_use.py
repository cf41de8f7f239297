"""rmi refuses an image a working container was made from, unless forced (as Buildah does)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Pybuild


def test_rmi_refuses_image_in_use(pybuild: Pybuild, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "f").write_text("x\n")
    (context / "Containerfile").write_text("FROM scratch\nCOPY f /f\n")
    pybuild("bud", "-q", "-t", "base", context)
    ctr = pybuild("from", "base").stdout.strip()
    refused = pybuild("rmi", "base", check=False)
    assert refused.returncode == 125
    assert f"image is in use by container(s): {ctr}" in refused.stderr
    assert "localhost/base " in pybuild("images").stdout
    pybuild("rm", ctr)
    pybuild("rmi", "base")
    assert "localhost/base" not in pybuild("images").stdout


def test_rmi_force_removes_image_in_use(pybuild: Pybuild, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Containerfile").write_text("FROM scratch\nLABEL a=b\n")
    pybuild("bud", "-q", "-t", "base", context)
    ctr = pybuild("from", "base").stdout.strip()
    pybuild("rmi", "-f", "base")
    assert "localhost/base" not in pybuild("images").stdout
    assert ctr in pybuild("containers").stdout
