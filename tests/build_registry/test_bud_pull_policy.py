"""``bud --pull`` policies for FROM and COPY --from images held by a real registry."""

from __future__ import annotations

from pathlib import Path

import pytest
from registry_fixtures import Registry

from tests.build_registry.helpers import context, image, push_base, runner

APP = "FROM {base}\nCOPY app /app\n"


def _label(pybuild, name: str = "localhost/app:latest") -> str:
    return image(pybuild, name).config.config.labels["v"]


def test_pull_policies(registry: Registry, tmp_path: Path) -> None:
    base = f"{registry.host}/policy/base:1"
    first = push_base(tmp_path, base, "1")
    pybuild = runner(tmp_path, "store")
    ctx = context(tmp_path / "app", APP.format(base=base), {"app": "app"})

    # missing (the default): pulls what is not here, then keeps using it
    res = pybuild("bud", "-t", "app", ctx)
    assert f"Resolving '{base}'" in res.stdout
    assert _label(pybuild) == "1"
    assert image(pybuild, base).manifest_digest == first

    second = push_base(tmp_path, base, "2")  # the same tag now names another image
    assert second != first
    for flags in ([], ["--pull=false"], ["--pull=missing"], ["--pull=never"], ["--pull-never"]):
        res = pybuild("bud", *flags, "-t", "app", ctx)
        assert "Resolving" not in res.stdout, flags
        assert _label(pybuild) == "1", flags

    # newer (a bare --pull, as in Buildah 1.28): the registry's digest differs, so pull
    res = pybuild("bud", "--pull", "-t", "app", ctx)
    assert f"Resolving '{base}'" in res.stdout
    assert _label(pybuild) == "2"
    assert image(pybuild, base).manifest_digest == second
    # ... and once it is the same, the local image is used without a pull
    res = pybuild("bud", "--pull=newer", "-t", "app", ctx)
    assert "Resolving" not in res.stdout
    # always: pulls even so
    for flags in (["--pull=always"], ["--pull-always"]):
        res = pybuild("bud", *flags, "-t", "app", ctx)
        assert f"Resolving '{base}'" in res.stdout, flags
        assert _label(pybuild) == "2"


def test_pull_never_with_an_empty_store_fails(registry: Registry, tmp_path: Path) -> None:
    base = f"{registry.host}/policy/never:1"
    push_base(tmp_path, base, "1")
    pybuild = runner(tmp_path, "store")
    for text in (APP.format(base=base), f"FROM scratch\nCOPY --from={base} /v /v\n"):
        ctx = context(tmp_path / "app", text, {"app": "app"})
        res = pybuild("bud", "--pull=never", "-t", "app", ctx, check=False)
        assert res.returncode != 0
        assert f'pulling image "{base}": image not known locally and --pull=never' in res.stderr
    # the default policy pulls the COPY --from image
    pybuild("bud", "-t", "app", ctx)
    assert image(pybuild, base).config.config.labels["v"] == "1"


def test_newer_keeps_the_local_image_when_the_registry_fails(tmp_path: Path) -> None:
    pybuild = runner(tmp_path, "store")
    base = "127.0.0.1:1/unreachable/base:1"  # nothing listens on port 1
    pybuild("bud", "-t", base, context(tmp_path / "base", "FROM scratch\nLABEL v=local\n"))
    ctx = context(tmp_path / "app", APP.format(base=base), {"app": "app"})
    res = pybuild("bud", "--pull=newer", "--retry", "0", "--tls-verify=false", "-t", "app", ctx)
    assert f"checking '{base}' for a newer image" in res.stderr
    assert _label(pybuild) == "local"
    res = pybuild("bud", "--pull=always", "--retry", "0", "-t", "app", ctx, check=False)
    assert res.returncode != 0 and f'pulling image "{base}"' in res.stderr


@pytest.mark.parametrize("value", ["sometimes", "yes"])
def test_unknown_pull_policy(tmp_path: Path, value: str) -> None:
    pybuild = runner(tmp_path, "store")
    ctx = context(tmp_path / "app", "FROM scratch\n")
    res = pybuild("bud", f"--pull={value}", ctx, check=False)
    assert res.returncode != 0
    assert f"parsing --pull '{value}': expected true, false, always, never" in res.stderr
