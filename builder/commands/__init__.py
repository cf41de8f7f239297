"""One module per subcommand: ``add_arguments(parser, name)`` and ``run(args, options)``."""

from __future__ import annotations

from typing import TYPE_CHECKING


def key_values(values: list[str], flag: str) -> dict[str, str]:
    """``KEY=VALUE`` arguments of a repeatable flag, e.g. ``--label``, as a dict."""
    from builder.errors import UsageError

    out: dict[str, str] = {}
    for raw in values:
        key, sep, value = raw.partition("=")
        if not key or not sep:
            raise UsageError(f"parsing {flag} {raw!r}: expected KEY=VALUE")
        out[key] = value
    return out


if TYPE_CHECKING:
    from pathlib import Path

    from builder.store import Store
    from builder.store.store import GcRoots


class _RootsOf:
    """The ``GcRoots`` of a module (its ``GC_ROOTS``), imported only when garbage
    collection asks: working containers bring the sandbox and the build cache the
    executor, which commands such as ``images`` or ``tag`` never need at start-up."""

    def __init__(self, directory: str, module: str) -> None:
        self.directory = directory
        self.module = module

    def _roots(self) -> GcRoots:
        import importlib

        roots: GcRoots = importlib.import_module(self.module).GC_ROOTS
        return roots

    def blobs(self, store: Store) -> set[str]:
        return self._roots().blobs(store)

    def layers(self, store: Store) -> set[str]:
        return self._roots().layers(store)


def open_store(root: Path, *, recover: bool = True) -> Store:
    """The store at ``root``, with what keeps blobs and layers alive in it (working
    containers, the build cache) registered, so garbage collection knows them."""
    from builder.store.store import Store, register_gc_roots

    for directory, module in (("containers", "builder.store.containers"),
                              ("cache", "builder.cache.index")):
        register_gc_roots(_RootsOf(directory, module), replace=False)
    return Store(root, recover=recover)


IDENTITY_LABEL = "io.pybuild.version"  # Buildah's is io.buildah.version


def identity_labels(wanted: bool | None, timestamp: int | None) -> dict[str, str]:
    """The identity label ``bud`` and ``commit`` add, as Buildah adds io.buildah.version:
    always with ``--identity-label=true``, never with ``false``; by default unless the
    image is made reproducible with a timestamp (Buildah 1.33 and later; 1.28 adds it
    even then)."""
    from builder.cli import VERSION

    if wanted is None:
        wanted = timestamp is None
    return {IDENTITY_LABEL: VERSION} if wanted else {}
