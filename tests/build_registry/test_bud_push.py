"""``bud --push``: the built image goes to the registry each ``-t`` tag names."""

from __future__ import annotations

import json
from pathlib import Path

from registry_fixtures import Registry, skopeo

from tests.build_registry.helpers import context, image, runner


def test_push_prints_the_digest_skopeo_sees(registry: Registry, tmp_path: Path) -> None:
    pybuild = runner(tmp_path, "store")
    ctx = context(tmp_path / "app", "FROM scratch\nCOPY app /app\n", {"app": "pushed"})
    tags = [f"{registry.host}/push/app:1.0", f"{registry.host}/push/other:latest"]
    digestfile = tmp_path / "digest"
    res = pybuild("bud", "--push", "--digestfile", digestfile, "-t", tags[0], "-t", tags[1], ctx)
    pushed = dict(line.removeprefix("Pushed ").rsplit("@", 1) for line in res.stdout.splitlines()
                  if line.startswith("Pushed "))
    assert list(pushed) == tags
    record = image(pybuild, tags[0])
    assert res.stdout.splitlines()[-1] == record.id.removeprefix("sha256:")
    for tag in tags:
        assert pushed[tag] == record.manifest_digest
        inspect = skopeo("inspect", "--tls-verify=false", f"docker://{tag}")
        assert inspect.returncode == 0, inspect.stderr
        assert json.loads(inspect.stdout)["Digest"] == record.manifest_digest
    assert digestfile.read_text() == record.manifest_digest
    # quiet: only the image ID on stdout
    res = pybuild("bud", "-q", "--push", "-t", tags[0], ctx)
    assert res.stdout.split() == [record.id.removeprefix("sha256:")]


def test_push_needs_a_name(tmp_path: Path) -> None:
    pybuild = runner(tmp_path, "store")
    ctx = context(tmp_path / "app", "FROM scratch\n")
    res = pybuild("bud", "--push", ctx, check=False)
    assert res.returncode != 0 and "checking --push: nothing to push" in res.stderr
    res = pybuild("bud", "--digestfile", tmp_path / "d", ctx, check=False)
    assert res.returncode != 0 and "--digestfile: only meaningful with --push" in res.stderr


def test_push_failure_is_reported(tmp_path: Path) -> None:
    pybuild = runner(tmp_path, "store")
    ctx = context(tmp_path / "app", "FROM scratch\n")
    res = pybuild("bud", "--push", "--retry", "0", "-t", "127.0.0.1:1/nowhere/app:1", ctx,
                  check=False)
    assert res.returncode != 0
    assert "pushing to 127.0.0.1:1/nowhere/app:1" in res.stderr
