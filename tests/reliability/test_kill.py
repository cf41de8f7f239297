"""A reduced kill test: builds SIGKILLed at random moments leave a store that
`check` passes after one normal command, and the next build succeeds."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_killed_builds_leave_a_sound_store(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("killtest", REPO / "bench" / "killtest.py")
    assert spec and spec.loader
    killtest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(killtest)
    counts = killtest.run(5, seed=1234, megabytes=2, next_build="end", work=tmp_path)
    assert counts["rounds"] == counts["checks_passed"] == 5
    assert counts["killed"] >= 1
    assert counts["next_builds_ok"] == 1
    assert counts["leaked_mounts"] == 0
