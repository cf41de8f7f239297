"""The wheel carries the grammar: install it into a fresh venv and parse from there."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_in_fresh_venv_parses(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(REPO)],
        check=True, capture_output=True,
    )
    [wheel] = dist.glob("pybuild-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", str(wheel)], check=True,
                   capture_output=True)
    containerfile = tmp_path / "Containerfile"
    containerfile.write_text("FROM scratch\nCOPY --chown=1:1 a /b\nCMD [\"/b\"]\n")
    out = subprocess.run(
        [python, "-c",
         "import builder, importlib.resources as r, sys;"
         "print(builder.__file__);"
         "print(r.files('builder').joinpath('grammar/containerfile.lark').is_file())"],
        check=True, capture_output=True, text=True, cwd=tmp_path,
    ).stdout.split()
    assert out[0].startswith(str(env_dir)), out
    assert out[1] == "True"
    dump = subprocess.run(
        [env_dir / "bin" / "pybuild", "parse", "--dump", "-f", str(containerfile)],
        check=True, capture_output=True, text=True, cwd=tmp_path,
    )
    assert dump.stdout == '(from "scratch")\n(copy ["--chown=1:1"] "a" "/b")\n(cmd "/b")\n'
