"""``images --format/--filter/--sort/--all``, ``inspect --format json``, ``history`` and
``tree``, on images built by ``bud`` with known creation times.

Rules named here: ``--format json`` is ``--json`` (Podman's spelling; Buildah 1.28
prints the word "json"); JSON objects have Buildah's fields; several values of one
filter key are alternatives, different keys and several labels must all match
(libimage); ``--all`` changes nothing (pybuild keeps no intermediate images).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import Pybuild


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Pybuild:
    """a (t=100, team=x, 1 file), b (t=200, team=y, 2 files, two names), c (t=300, no
    label), and a dangling image (c's earlier build)."""
    base = tmp_path_factory.mktemp("images")
    pybuild = Pybuild(base / "store")
    specs = [("a", 100, "LABEL team=x\n", 1, ("app:1",)),
             ("b", 200, "LABEL team=y tier=web\n", 2, ("app:2", "quay.example/other:b")),
             ("old", 250, "", 3, ("final:c",)),
             ("c", 300, "", 1, ("final:c",))]
    for name, when, label, files, tags in specs:
        context = base / name
        context.mkdir()
        (context / "Containerfile").write_text(f"FROM scratch\n{label}COPY . /data/\n")
        for n in range(files):
            (context / f"f{n}").write_text(f"{name}{n}" * 200)
        flags = [arg for tag in tags for arg in ("-t", tag)]
        pybuild("bud", "-q", "--timestamp", str(when), *flags, context)
    return pybuild


def _names(store: Pybuild, *args: str) -> list[str]:
    out = store("images", "--format", "{{.Name}}:{{.Tag}}", *args).stdout
    return out.split()


FILTERS = [
    ((), ["localhost/final:c", "<none>:<none>", "localhost/app:2", "quay.example/other:b",
          "localhost/app:1"]),
    (("--filter", "label=team"), ["localhost/app:2", "quay.example/other:b", "localhost/app:1"]),
    (("--filter", "label=team=x"), ["localhost/app:1"]),
    (("--filter", "label=team", "--filter", "label=tier=web"),
     ["localhost/app:2", "quay.example/other:b"]),
    # an image that matches is listed under all its names, as Buildah lists it
    (("--filter", "reference=app"), ["localhost/app:2", "quay.example/other:b",
                                     "localhost/app:1"]),
    (("--filter", "reference=*/other:*"), ["localhost/app:2", "quay.example/other:b"]),
    (("--filter", "reference=app:1,reference=final"), ["localhost/final:c", "localhost/app:1"]),
    (("--filter", "dangling=true"), ["<none>:<none>"]),
    (("--filter", "dangling=false", "--filter", "label=team=y"),
     ["localhost/app:2", "quay.example/other:b"]),
    (("--filter", "before=app:2"), ["localhost/app:1"]),
    (("--filter", "since=app:2"), ["localhost/final:c", "<none>:<none>"]),
    (("--filter", "until=1970-01-01T00:03:00Z"), ["localhost/app:1"]),
    (("--filter", "intermediate=true"), []),
    (("--filter", "readonly=false", "--filter", "reference=final:c"), ["localhost/final:c"]),
    (("app:1",), ["localhost/app:1"]),
    (("--all",), ["localhost/final:c", "<none>:<none>", "localhost/app:2",
                  "quay.example/other:b", "localhost/app:1"]),
    (("--sort", "repository"), ["<none>:<none>", "localhost/app:1", "localhost/app:2",
                                "localhost/final:c", "quay.example/other:b"]),
    (("--sort", "size", "--filter", "dangling=false", "--filter", "label=team"),
     ["localhost/app:2", "quay.example/other:b", "localhost/app:1"]),
]


@pytest.mark.parametrize("args,expected", FILTERS, ids=lambda v: " ".join(v) or "none")
def test_images_filters_and_sort(args: tuple[str, ...], expected: list[str],
                                 store: Pybuild) -> None:
    assert _names(store, *args) == expected


def test_images_filter_errors(store: Pybuild) -> None:
    res = store("images", "--filter", "colour=red", check=False)
    assert res.returncode == 125 and "KEY one of after, before" in res.stderr
    res = store("images", "--filter", "before=nothing-like-it", check=False)
    assert res.returncode == 125 and "no image 'nothing-like-it'" in res.stderr
    res = store("images", "-q", "--format", "{{.ID}}", check=False)
    assert res.returncode == 125


def test_images_table_format(store: Pybuild) -> None:
    lines = store("images", "--format", "table {{.ID}}\t{{.Name}}\t{{.Size}}",
                  "--filter", "reference=app:1").stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["IMAGE ID", "REPOSITORY", "SIZE"]
    assert re.fullmatch(r"[0-9a-f]{12}\s+localhost/app\s+\d[\d.]* kB", lines[1]), lines[1]
    default = store("images", "--noheading").stdout.splitlines()
    assert len(default) == 5 and not default[0].startswith("REPOSITORY")


def test_images_json(store: Pybuild) -> None:
    by_flag = json.loads(store("images", "--json").stdout)
    by_format = json.loads(store("images", "--format", "json").stdout)
    assert by_flag == by_format
    first = by_flag[0]
    assert set(first) == {"id", "names", "digest", "createdat", "size", "created",
                          "createdatraw", "readonly", "history"}
    assert first["names"] == ["localhost/final:c"] and first["created"] == 300
    assert re.fullmatch(r"[0-9a-f]{12}", first["id"])
    assert json.loads(store("images", "--json", "--no-trunc").stdout)[0]["id"].startswith(
        first["id"])


def test_inspect_format_json(store: Pybuild) -> None:
    plain = json.loads(store("inspect", "app:1").stdout)
    assert json.loads(store("inspect", "--format", "json", "app:1").stdout) == plain
    assert store("inspect", "--format", "{{.Config.Labels.team}}", "app:1").stdout == "x\n"


def test_history(store: Pybuild) -> None:
    lines = store("history", "app:2").stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0].strip()) == ["IMAGE ID", "CREATED", "CREATED BY",
                                                    "SIZE", "COMMENT"]
    assert lines[1].split()[0] == json.loads(store("images", "--json", "app:2").stdout)[0][
        "id"]
    assert "COPY . /data/" in lines[1] and lines[2].startswith("<missing>")
    assert "LABEL team=y tier=web" in lines[2] and re.search(r"\s0 B\s*$", lines[2])
    rows = json.loads(store("history", "--format", "json", "--human=false", "app:2").stdout)
    assert [r["Size"] > 0 for r in rows] == [True, False]
    assert rows[0]["Size"] % 512 == 0  # a tar's size: the layer uncompressed
    assert store("history", "-q", "app:2").stdout.split()[1] == "<missing>"
    custom = store("history", "--format", "{{.CreatedBy}}|{{.Size}}", "app:1").stdout
    assert custom.splitlines()[0].endswith("kB") and "COPY . /data/|" in custom


def test_tree(store: Pybuild) -> None:
    lines = store("tree", "app:2").stdout.splitlines()
    assert lines[0].startswith("Image ID: ")
    assert lines[1] == "Tags:     [localhost/app:2, quay.example/other:b]"
    assert re.fullmatch(r"Size:\s+[\d.]+ kB in 1 layer \([\d.]+ k?B stored\)", lines[2])
    assert lines[3] == "Image Layers"
    assert re.fullmatch(r"└──\s+[\d.]+ kB  [0-9a-f]{12}  .*COPY \. /data/", lines[4]), lines[4]


def test_tree_of_a_multi_layer_image(tmp_path: Path, pybuild: Pybuild) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "big").write_bytes(b"x" * 300_000)
    (context / "small").write_text("s")
    (context / "Containerfile").write_text("FROM scratch\nCOPY big /big\nENV A=1\n"
                                           "COPY small /small\n")
    pybuild("bud", "-q", "-t", "layers", context)
    lines = pybuild("tree", "layers").stdout.splitlines()
    assert "2 layers" in lines[2]
    assert lines[4].startswith("├──") and re.search(r"\s30\d kB  [0-9a-f]{12}  .*COPY big /big",
                                                    lines[4]), lines[4]
    assert lines[5].startswith("└──") and "COPY small /small" in lines[5]
