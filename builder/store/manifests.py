"""Manifest lists (OCI image indexes) kept in the store, and pushing them.

A list is an index blob named in the store's ``index.json`` like an image
(``org.opencontainers.image.ref.name``), so other OCI tools see it and garbage
collection keeps the images it references. Every edit writes a new index
blob and moves the name to it. Entries point at images by manifest digest,
with the platform taken from the image's config unless given.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from builder.errors import ImageError, ImageNotFound, ManifestListNotFound, PybuildError, UsageError
from builder.image.spec import (
    ANNOTATION_REF_NAME,
    INDEX_TYPES,
    MEDIA_OCI_INDEX,
    Descriptor,
    Index,
)
from builder.platform import Platform, parse_platform
from builder.reference import Reference, parse_reference
from builder.registry.blobinfo import BlobInfo
from builder.registry.client import (
    RegistryClient,
    RegistryOptions,
    in_context,
    retrying,
    send_image,
)
from builder.registry.config import load_registries_conf
from builder.store import Store, normalize_name

__all__ = [
    "ManifestList",
    "add_to_manifest",
    "annotate_manifest",
    "create_manifest_list",
    "find_manifest_list",
    "push_manifest_list",
    "remove_from_manifest",
    "remove_manifest_list",
]


@dataclass(frozen=True)
class ManifestList:
    name: str
    digest: str
    index: Index

    def to_json(self) -> bytes:
        return self.index.to_json()


def _list_name(name: str) -> str:

    return normalize_name(name)


def find_manifest_list(store: Store, name: str) -> ManifestList:
    """A stored list by name (short names are normalized like image names) or digest."""
    if not (store.root / "index.json").exists():
        raise ManifestListNotFound(f"looking up manifest list {name!r}: no such list")
    wanted = name if name.startswith("sha256:") else _list_name(name)
    for desc in store.layout.read_index().manifests:
        if desc.media_type not in INDEX_TYPES:
            continue
        ref = (desc.annotations or {}).get(ANNOTATION_REF_NAME)
        if wanted in (ref, desc.digest):
            index = Index.from_json(store.layout.read_blob(desc.digest))
            return ManifestList(ref or desc.digest, desc.digest, index)
    raise ManifestListNotFound(f"looking up manifest list {name!r}: no such list")


def _save(store: Store, name: str, index: Index) -> ManifestList:
    """Store the index blob and point ``name`` at it (taking the name from anything else)."""
    data = index.to_json()
    with store.pin():  # gc must not take the blob before the index names it
        digest, size = store.layout.put_blob(data)
        with store.lock():
            top = store.layout.read_index()
            kept = [d for d in top.manifests
                    if (d.annotations or {}).get(ANNOTATION_REF_NAME) != name]
            kept.append(Descriptor(index.media_type, digest, size,
                                   annotations={ANNOTATION_REF_NAME: name}))
            store.layout.write_index(Index(kept, top.annotations, top.media_type))
    return ManifestList(name, digest, index)


def _platform(text: str | Platform | None, config_platform: Platform) -> Platform:
    if text is None:
        return config_platform
    if isinstance(text, Platform):
        return text
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise UsageError(f"parsing platform {text!r}: expected os/arch[/variant]")
    return parse_platform(text)


def _entry(store: Store, image: str, platform: str | Platform | None) -> Descriptor:
    record = store.lookup(image)
    config = record.config
    own = Platform(config.os or "linux", config.architecture, config.variant or "",
                   config.os_version or "", tuple(config.os_features or ()))
    size = len(store.layout.read_blob(record.manifest_digest))
    return Descriptor(record.manifest.media_type, record.manifest_digest, size,
                      platform=_platform(platform, own))


def create_manifest_list(store: Store, name: str, images: Sequence[str] = (), *,
                         replace: bool = False) -> ManifestList:
    """A new list holding ``images``; an existing list of that name needs ``replace``."""
    name = _list_name(name)
    try:
        find_manifest_list(store, name)
    except ManifestListNotFound:
        pass
    else:
        if not replace:
            raise ImageError(f"creating manifest list {name!r}: a list with that name exists",
                             hint="use --amend to add to it, or rm it first")
    index = Index([_entry(store, image, None) for image in images], media_type=MEDIA_OCI_INDEX)
    return _save(store, name, index)


def add_to_manifest(store: Store, list_name: str, image_id: str,
                    platform: str | Platform | None = None, *,
                    annotations: dict[str, str] | None = None) -> ManifestList:
    """Add a stored image to a list (made if missing), replacing an entry for the same
    image or the same platform. This is what ``bud --manifest`` calls per platform."""
    name = _list_name(list_name)
    try:
        index = find_manifest_list(store, name).index
    except ManifestListNotFound:
        index = Index(media_type=MEDIA_OCI_INDEX)
    entry = _entry(store, image_id, platform)
    if annotations:
        entry.annotations = dict(annotations)
    key = _platform_key(entry.platform)
    index.manifests = [d for d in index.manifests
                       if d.digest != entry.digest and _platform_key(d.platform) != key]
    index.manifests.append(entry)
    return _save(store, name, index)


def _platform_key(p: Platform | None) -> tuple[str, str, str] | None:
    return None if p is None else (p.os, p.architecture, p.variant or "")


def _entry_index(found: ManifestList, digest: str) -> int:
    for position, desc in enumerate(found.index.manifests):
        if desc.digest == digest or (len(digest) >= 10 and desc.digest.startswith(digest)):
            return position
    raise ImageNotFound(f"editing manifest list {found.name!r}: it has no entry {digest!r}")


def annotate_manifest(
    store: Store, list_name: str, digest: str, *, os: str | None = None,
    arch: str | None = None, variant: str | None = None, os_version: str | None = None,
    os_features: Sequence[str] = (), annotations: dict[str, str] | None = None,
) -> ManifestList:
    """Change the platform or annotations of one entry (named by manifest digest)."""
    found = find_manifest_list(store, list_name)
    desc = found.index.manifests[_entry_index(found, digest)]
    platform = desc.platform or Platform("", "")
    changes: dict[str, Any] = {"os": os, "architecture": arch, "variant": variant,
                               "os_version": os_version,
                               "os_features": tuple(os_features) or None}
    desc.platform = dataclasses.replace(
        platform, **{k: v for k, v in changes.items() if v is not None})
    if annotations:
        desc.annotations = {**(desc.annotations or {}), **annotations}
    return _save(store, found.name, found.index)


def remove_from_manifest(store: Store, list_name: str, digest: str) -> ManifestList:
    found = find_manifest_list(store, list_name)
    del found.index.manifests[_entry_index(found, digest)]
    return _save(store, found.name, found.index)


def remove_manifest_list(store: Store, list_name: str) -> str:
    """Drop the list's name (the images stay); returns the list's digest."""
    found = find_manifest_list(store, list_name)
    with store.lock():
        top = store.layout.read_index()
        top.manifests = [d for d in top.manifests
                         if not (d.digest == found.digest and d.media_type in INDEX_TYPES)]
        store.layout.write_index(top)
        store.gc()
    return found.digest


def push_manifest_list(
    store: Store, list_name: str, dest: str, options: RegistryOptions | None = None, *,
    all: bool = True, report: Callable[[str], None] | None = None,
) -> str:
    """Push every image of the list by digest (unless ``all`` is False), then the list
    itself to ``dest`` (``[docker://]host/repo[:tag]``); returns the list's digest."""
    options = options or RegistryOptions()
    found = find_manifest_list(store, list_name)
    ref = parse_reference(dest.removeprefix("docker://"))
    conf = load_registries_conf(options.registries_conf)
    conf.check_blocked(ref)
    client = RegistryClient(ref.registry, options, repository=ref.repository,
                            insecure=conf.is_insecure(ref.registry))
    blob_info = BlobInfo(store.root / "registry-blobs.json")
    say = report or (lambda line: None)
    try:
        if all:
            for desc in found.index.manifests:
                say(f"Copying {desc.digest}")
                manifest = store.layout.read_blob(desc.digest)
                target = Reference(ref.registry, ref.repository, None, desc.digest)
                send_image(client, target, store.layout, manifest, blob_info=blob_info,
                           report=say)
        say(f"Writing manifest list to {ref}")
        data = store.layout.read_blob(found.digest)
        media_type = json.loads(data).get("mediaType") or MEDIA_OCI_INDEX
        tag = ref.digest or ref.tag or "latest"
        digest = retrying(options, lambda: client.put_manifest(ref.repository, tag, data,
                                                                media_type))
    except PybuildError as exc:
        raise in_context(f"pushing manifest list to {ref}", exc) from exc
    finally:
        client.close()
        blob_info.save()
    return digest
