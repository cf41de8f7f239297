"""Signatures next to a registry: the "lookaside" storage ``registries.d`` configures.

As containers/image (``docker/registries_d.go``): the configuration directory is
``$HOME/.config/containers/registries.d`` when it exists, else
``/etc/containers/registries.d`` (``CONTAINERS_REGISTRIES_D`` names another); its
``*.yaml`` files have a ``default-docker`` section and a ``docker`` mapping of
namespaces (``host/repo:tag``, ``host/repo``, ``host/parent``, ``host``), the most
specific match winning. A namespace's ``lookaside-staging`` (or ``sigstore-staging``)
is where signatures are written, else its ``lookaside`` (or ``sigstore``); with
nothing configured, ``/var/lib/containers/sigstore`` for root and
``~/.local/share/containers/sigstore`` for others. Signature N of manifest
``sha256:HEX`` pushed to ``host/repo`` is the file
``BASE/repo@sha256=HEX/signature-N``; only ``file://`` bases can be written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from builder.errors import RegistryError
from builder.image.signature import stored_signatures
from builder.reference import Reference, parse_reference

__all__ = ["push_signatures", "registries_d", "signature_base", "write_signatures"]

_KEYS_WRITE = ("lookaside-staging", "sigstore-staging", "lookaside", "sigstore")


def registries_d() -> Path:
    override = os.environ.get("CONTAINERS_REGISTRIES_D")
    if override:
        return Path(override)
    user = Path(os.path.expanduser("~")) / ".config" / "containers" / "registries.d"
    return user if user.is_dir() else Path("/etc/containers/registries.d")


def _load(directory: Path) -> dict[str, Any]:
    import yaml

    merged: dict[str, Any] = {"default-docker": None, "docker": {}}
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".yaml"))
    except FileNotFoundError:
        return merged
    for name in names:
        path = directory / name
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise RegistryError(f"reading {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise RegistryError(f"reading {path}: not a mapping")
        if data.get("default-docker") is not None:
            merged["default-docker"] = data["default-docker"]
        merged["docker"].update(data.get("docker") or {})
    return merged


def _namespaces(ref: Reference) -> list[str]:
    """From the most specific scope to the registry, as containers/image looks them up."""
    scopes = [f"{ref.name}:{ref.tag}"] if ref.tag else []
    parts = ref.repository.split("/")
    for depth in range(len(parts), 0, -1):
        scopes.append(f"{ref.registry}/{'/'.join(parts[:depth])}")
    scopes.append(ref.registry)
    return scopes


def signature_base(ref: Reference, directory: Path | None = None) -> Path:
    """The directory signatures for ``ref``'s repository are written under."""
    config = _load(directory or registries_d())
    sections = [config["docker"].get(scope) for scope in _namespaces(ref)]
    sections.append(config["default-docker"])
    url = ""
    for section in sections:
        if isinstance(section, dict):
            url = next((str(section[k]) for k in _KEYS_WRITE if section.get(k)), "")
            if url:
                break
    if not url:
        home = Path(os.path.expanduser("~"))
        base = Path("/var/lib/containers/sigstore") if os.geteuid() == 0 else \
            home / ".local" / "share" / "containers" / "sigstore"
    else:
        parts = urlsplit(url)
        if parts.scheme != "file":
            raise RegistryError(f"writing signatures for {ref.name} to {url}: only file:// "
                                "lookaside locations can be written",
                                hint="set lookaside-staging: file:///DIR in registries.d and "
                                     "publish DIR at the lookaside URL")
        base = Path(parts.path)
    return base / ref.repository


def write_signatures(ref: Reference, manifest_digest: str, signatures: list[bytes],
                     directory: Path | None = None) -> Path | None:
    """Write ``signatures`` as signature-1..N of the manifest, removing higher-numbered
    ones left from before; None when there is nothing to write."""
    if not signatures:
        return None
    algorithm, _, encoded = manifest_digest.partition(":")
    target = signature_base(ref, directory).with_name(
        f"{signature_base(ref, directory).name}@{algorithm}={encoded}")
    try:
        target.mkdir(parents=True, exist_ok=True)
        for index, data in enumerate(signatures, 1):
            tmp = target / f".signature-{index}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, target / f"signature-{index}")
        index = len(signatures) + 1
        while (target / f"signature-{index}").exists():
            (target / f"signature-{index}").unlink()
            index += 1
    except OSError as exc:
        raise RegistryError(f"writing signatures for {ref.name} to {target}: "
                            f"{exc.strerror}") from exc
    return target


def push_signatures(store: Any, image: str, dest: str, pushed_digest: str) -> Path | None:
    """After ``image`` was pushed to ``dest`` as ``pushed_digest``: write the signatures
    the store keeps for it to the lookaside storage; a manifest changed on the way
    (another format) would invalidate them, so then none are written."""
    record = store.lookup(image)
    signatures = stored_signatures(store.root, record.manifest_digest)
    if not signatures or pushed_digest != record.manifest_digest:
        return None
    return write_signatures(parse_reference(dest), pushed_digest, signatures)
