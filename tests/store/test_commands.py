"""images, inspect, tag and rmi through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder.commands.images import human_size
from builder.commands.inspect import render
from builder.store import Store
from builder.store.transports import export_image

from .helpers import make_image


@pytest.fixture
def image(pybuild, tmp_path: Path):
    return make_image(Store(pybuild.root), tmp_path, "a", ("app:1.0",))


def test_images_table_and_variants(pybuild, image) -> None:
    lines = pybuild("images").stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    row = lines[1].split()
    assert row[:3] == ["localhost/app", "1.0", image.id[7:19]]
    assert pybuild("images", "-q").stdout.split() == [image.id[7:19]]
    assert pybuild("images", "-q", "--no-trunc").stdout.split() == [image.id]
    assert image.manifest_digest in pybuild("images", "--digests").stdout
    data = json.loads(pybuild("images", "--json").stdout)
    assert data[0]["names"] == ["localhost/app:1.0"] and data[0]["size"] == human_size(image.size)


def test_empty_store_lists_header_only(pybuild) -> None:
    assert len(pybuild("images").stdout.splitlines()) == 1
    assert json.loads(pybuild("images", "--json").stdout) == []


def test_inspect(pybuild, image, tmp_path: Path) -> None:
    data = json.loads(pybuild("inspect", "app:1.0").stdout)
    assert data["FromImageID"] == image.id[7:] and data["Config"]["Cmd"] == ["/bin/sh"]
    assert data["Manifest"]["layers"][0]["digest"] == image.manifest.layers[0].digest
    out = pybuild("inspect", "--format", "{{.Config.Cmd}} {{json .Config.Env}}", image.id[7:15])
    assert out.stdout == '[/bin/sh] ["PATH=/bin"]\n'
    export_image(Store(pybuild.root), "app:1.0", f"oci-archive:{tmp_path / 'o.tar'}")
    out = pybuild("inspect", "--format", ".OCIv1.architecture", f"oci-archive:{tmp_path / 'o.tar'}")
    assert out.stdout == "amd64\n"


def test_inspect_missing_image(pybuild) -> None:
    res = pybuild("inspect", "nope", check=False)
    assert res.returncode == 125 and "Error: looking up image 'nope'" in res.stderr


@pytest.mark.parametrize("template, expected", [
    ("{{.A}}", "x"),
    ("{{.L}} {{len}}", None),
    ("{{len .L}} {{.L | len}}", "2 2"),
    ("{{json .M}}", '{"k": "v"}'),
    ("{{.M | json}}", '{"k": "v"}'),
    ("{{index .M \"k\"}}!", "v!"),
    ("{{.M}}", "map[k:v]"),
    ("{{.Missing}}", "<no value>"),
    ("{{.L}}", "[1 2]"),
    (".L", "[1, 2]"),
    ("a", "x"),
])
def test_render(template: str, expected: str | None) -> None:
    data = {"A": "x", "L": [1, 2], "M": {"k": "v"}}
    if expected is None:
        from builder.errors import UsageError

        with pytest.raises(UsageError):
            render(template, data)
    else:
        assert render(template, data) == expected


def test_tag_and_rmi(pybuild, image) -> None:
    pybuild("tag", "app:1.0", "second", "quay.io/x/y:2")
    out = pybuild("images").stdout
    assert "localhost/second" in out and "quay.io/x/y" in out
    res = pybuild("rmi", image.id[7:19], check=False)
    assert res.returncode == 125 and "several names" in res.stderr
    assert pybuild("rmi", "second").stdout == "untagged: localhost/second:latest\n"
    out = pybuild("rmi", "-f", "app:1.0").stdout.splitlines()
    assert out[-1] == image.id[7:] and "untagged: quay.io/x/y:2" in out
    assert pybuild("images", "-q").stdout == ""
    assert Store(pybuild.root).layout.blob_digests() == []


def test_rmi_all_and_errors(pybuild, image, tmp_path: Path) -> None:
    make_image(Store(pybuild.root), tmp_path, "b")
    assert pybuild("rmi", "missing", check=False).returncode == 125
    assert pybuild("rmi", check=False).returncode == 125
    pybuild("rmi", "-a")
    assert pybuild("images", "-q").stdout == ""
