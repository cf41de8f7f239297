"""Small helpers for the bud-with-a-registry tests: contexts, stores and images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import Pybuild


def context(directory: Path, containerfile: str, files: dict[str, str] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Containerfile").write_text(containerfile)
    for name, text in (files or {}).items():
        (directory / name).write_text(text)
    return directory


def runner(tmp_path: Path, name: str) -> Pybuild:
    """A ``pybuild`` runner with its own empty store."""
    return Pybuild(tmp_path / name)


def image(pybuild: Pybuild, name: str) -> Any:
    """The stored record (config, manifest, names) of ``name`` in the runner's store."""
    from builder.store import Store

    return Store(pybuild.root).lookup(name)


def push_base(tmp_path: Path, dest: str, version: str) -> str:
    """Build a small RUN-free image labelled ``v=version`` and push it as ``dest`` with
    ``bud --push``; returns the pushed digest."""
    pybuild = runner(tmp_path, f"base-{version}-store")
    ctx = context(tmp_path / f"base-{version}", f"FROM scratch\nCOPY v /v\nLABEL v={version}\n",
                  {"v": version})
    res = pybuild("bud", "--push", "-t", dest, ctx)
    pushed = [line for line in res.stdout.splitlines() if line.startswith("Pushed ")]
    assert len(pushed) == 1, res.output
    return pushed[0].rpartition("@")[2]
