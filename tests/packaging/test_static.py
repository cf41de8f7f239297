"""The static checks stay clean: ``mypy --strict`` on the package and ruff on all the code.

Both run as they would by hand, from the repository root, so they read their
settings from pyproject.toml (``[tool.mypy]``, ``[tool.ruff]``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _check(*argv: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *argv], cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, (
        f"{' '.join(argv)} exited with status {result.returncode}:\n"
        f"{result.stdout}{result.stderr}"
    )


def test_mypy_strict_is_clean() -> None:
    _check("mypy", "builder")


def test_ruff_is_clean() -> None:
    _check("ruff", "check", "builder", "tests", "bench")


def test_no_import_cycle_or_backward_edge() -> None:
    """scripts/imports.py counts every import (in functions and under TYPE_CHECKING too)."""
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "imports.py")], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cycles: 0" in result.stdout and "backward edges: 0" in result.stdout


# what a command loads is most of its start-up time: commands that only read the store
# must not load the sandbox, the executor or the registry client (garbage collection
# loads what keeps blobs alive only when it runs)
_LOADED = """
import sys
from builder.cli import main
status = main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.startswith(("builder.executor", "builder.registry",
                                                       "builder.store.containers")))
print(status, " ".join(heavy))
"""


@pytest.mark.parametrize("command", [["images"], ["tag", "missing", "x"]])
def test_store_commands_load_no_executor(tmp_path: Path, command: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-c", _LOADED, "--root", str(tmp_path / "store"),
                           *command], capture_output=True, text=True, cwd=REPO)
    status, _, heavy = proc.stdout.strip().rpartition("\n")[2].partition(" ")
    assert heavy == "", f"{command[0]} loaded {heavy}"
