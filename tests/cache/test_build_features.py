"""--squash, --squash-all and stages built concurrently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Pybuild

pytestmark = pytest.mark.rootless  # also run by the rootless lane


def _manifest_config(root: Path, name: str) -> tuple[dict, dict]:
    index = json.loads((root / "index.json").read_text())
    digest = next(d["digest"] for d in index["manifests"]
                  if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == name)
    blob = lambda d: json.loads((root / "blobs" / "sha256" / d.split(":")[1]).read_bytes())  # noqa: E731
    manifest = blob(digest)
    return manifest, blob(manifest["config"]["digest"])


SQUASH = """FROM localhost/busybox:latest
RUN echo one > /one
RUN echo two > /two && rm /one
COPY a /a
"""


def test_squash(tmp_path: Path, with_busybox: Pybuild) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Containerfile").write_text(SQUASH)
    (ctx / "a").write_text("a")
    base, _ = _manifest_config(with_busybox.root, "localhost/busybox:latest")
    with_busybox("bud", "-q", "--squash", "-t", "sq", ctx)
    manifest, config = _manifest_config(with_busybox.root, "localhost/sq:latest")
    assert len(manifest["layers"]) == len(base["layers"]) + 1
    assert len(config["rootfs"]["diff_ids"]) == len(manifest["layers"])
    assert sum(not h.get("empty_layer") for h in config["history"]) == len(manifest["layers"])
    out = with_busybox("run", "localhost/sq:latest", "sh", "-c", "ls /one; cat /two /a",
                       check=False)
    assert "two\na" in out.stdout and "/one" in out.stderr + out.stdout
    with_busybox("bud", "-q", "--squash-all", "-t", "all", ctx)
    manifest, config = _manifest_config(with_busybox.root, "localhost/all:latest")
    assert len(manifest["layers"]) == 1


PARALLEL = """FROM localhost/busybox:latest AS one
RUN echo one > /one
FROM localhost/busybox:latest AS two
RUN echo two > /two
FROM localhost/busybox:latest
COPY --from=one /one /one
COPY --from=two /two /two
"""


def test_parallel_stages_match_sequential(tmp_path: Path, with_busybox: Pybuild) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Containerfile").write_text(PARALLEL)
    parallel = with_busybox("bud", "-q", "--timestamp", "0", "--jobs", "3", "--no-cache",
                            "-t", "p", ctx).stdout.split()[-1]
    serial = with_busybox("bud", "-q", "--timestamp", "0", "--jobs", "1", "--no-cache",
                          "-t", "s", ctx).stdout.split()[-1]
    assert parallel == serial
    out = with_busybox("bud", "--jobs", "3", "--timestamp", "0", "-t", "c", ctx).stdout
    steps = [line for line in out.splitlines() if "STEP" in line]
    assert all(line.startswith("[") for line in steps)  # every line keeps its stage prefix
    assert out.count("--> Using cache") == 4
