"""No-change rebuilds: nothing is parsed, imported or written again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from builder.cache.parsed import parse_cached
from builder.context import ContainerfileSource
from builder.store import Store
from builder.store.transports import export_image, import_image

CONTAINERFILE = "FROM {base}\nCOPY hello.txt /hello.txt\nENV GREETING=hi\n"


def _context(tmp_path: Path, base: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Containerfile").write_text(CONTAINERFILE.format(base=base))
    (ctx / "hello.txt").write_text("hello\n")
    return ctx


def _index_stat(root: Path) -> tuple[int, int]:
    st = (root / "index.json").stat()
    return st.st_ino, st.st_mtime_ns


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a subprocess that reports which modules it imported."""
    code = ("import sys\nfrom builder.cli import main\nrc = main(sys.argv[1:])\n"
            "print('MODULES', ' '.join(sorted(sys.modules)))\nsys.exit(rc)")
    return subprocess.run([sys.executable, "-c", code, "--root", str(root), *args],
                          capture_output=True, text=True, check=True)


@pytest.fixture
def layout(tmp_path: Path) -> str:
    """A small image as an OCI layout: ``oci:DIR:latest``."""
    store = Store(tmp_path / "base-store")
    ctx = tmp_path / "base-ctx"
    ctx.mkdir()
    (ctx / "Containerfile").write_text("FROM scratch\nCOPY base.txt /base.txt\n")
    (ctx / "base.txt").write_text("base\n")
    subprocess.run([sys.executable, "-m", "builder", "--root", str(store.root), "bud", "-q",
                    "-t", "base", str(ctx)], check=True, capture_output=True)
    dest = f"oci:{tmp_path / 'layout'}:latest"
    export_image(store, "base", dest)
    return dest


@pytest.mark.parametrize("base", ["scratch", "layout"])
def test_rebuild_is_the_same_image_and_writes_no_index(tmp_path: Path, layout: str,
                                                       base: str) -> None:
    ctx = _context(tmp_path, layout if base == "layout" else "scratch")
    root = tmp_path / "store"
    first = _cli(root, "bud", "-t", "app", str(ctx))
    index_before = _index_stat(root)
    second = _cli(root, "bud", "-t", "app", str(ctx))
    assert first.stdout.splitlines()[-2] == second.stdout.splitlines()[-2]  # the image ID
    assert "Using cache" in second.stdout
    assert _index_stat(root) == index_before
    modules = second.stdout.splitlines()[-1].split()
    assert "lark" not in modules  # the parsed Containerfile came from the cache
    assert "builder.registry.client" not in modules


def test_import_of_a_stored_layout_reads_and_writes_nothing(tmp_path: Path,
                                                            layout: str) -> None:
    store = Store(tmp_path / "store")
    first = import_image(store, layout)
    index_before = _index_stat(store.root)
    layer = first.manifest.layers[0].digest
    layer_file = Path(layout.split(":")[1]) / "blobs" / "sha256" / layer.split(":")[1]
    layer_file.write_bytes(b"not the layer")  # a second import must not read it
    again = import_image(store, layout)
    assert again == first
    assert _index_stat(store.root) == index_before


def test_stored_needs_the_index_entry_and_every_blob(tmp_path: Path, layout: str) -> None:
    store = Store(tmp_path / "store")
    assert store.stored("sha256:" + "0" * 64) is None
    record = import_image(store, layout)
    assert store.stored(record.manifest_digest) == record
    store.layout.remove_blob(record.manifest.layers[0].digest)
    assert store.stored(record.manifest_digest) is None
    assert import_image(store, layout).manifest_digest == record.manifest_digest  # re-imported
    assert store.layout.has_blob(record.manifest.layers[0].digest)


def test_put_manifest_writes_the_index_only_when_it_changes(tmp_path: Path,
                                                            layout: str) -> None:
    store = Store(tmp_path / "store")
    record = import_image(store, layout, names=["one"])
    manifest = store.layout.read_blob(record.manifest_digest)
    before = _index_stat(store.root)
    assert store.put_manifest(manifest, ["one"]).names == ("localhost/one:latest",)
    assert _index_stat(store.root) == before
    assert store.put_manifest(manifest, ["two"]).names == ("localhost/one:latest",
                                                          "localhost/two:latest")
    assert _index_stat(store.root) != before


def test_parse_cache_hits_misses_and_survives_damage(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    source = ContainerfileSource(b"FROM scratch\nCOPY a /a\n", "Containerfile", None)
    parsed = parse_cached(store, source)
    entries = list((store.root / "cache" / "parsed").iterdir())
    assert len(entries) == 1
    assert parse_cached(store, source) == parsed
    entries[0].write_bytes(b"damaged")
    assert parse_cached(store, source) == parsed
    other = ContainerfileSource(b"FROM scratch\nCOPY b /b\n", "Containerfile", None)
    assert parse_cached(store, other) != parsed
    renamed = ContainerfileSource(source.text, "Dockerfile", None)
    assert parse_cached(store, renamed).path == "Dockerfile"
    assert len(os.listdir(store.root / "cache" / "parsed")) == 3
