"""A build cache shared through a registry, as Buildah and kaniko cache repositories.

Each step is one small image manifest in the cache repository, tagged with the
step's key: its config blob is the cache entry (history, layer descriptor,
diff_id, when it ran) and its one layer, if any, is the step's layer blob.
With cache mounts on, the contents of each ``RUN --mount=type=cache``
directory travel as one tar layer tagged ``mount-<cache directory name>``;
they are restored before the first RUN that uses them and never become part
of an image.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from builder.cache.index import CacheEntry, CacheIndex
from builder.errors import PybuildError, RegistryError, RegistryNotFound, VerificationError
from builder.executor.output import Progress
from builder.image.layer import tree_entries, write_layer
from builder.image.layout import Layout
from builder.image.spec import MEDIA_OCI_MANIFEST
from builder.reference import parse_reference
from builder.registry.client import RegistryClient, RegistryOptions
from builder.registry.config import load_registries_conf
from builder.rootfs.extract import extract_layer
from builder.rootfs.verify import ImageImport
from builder.store import Store

ENTRY_MEDIA_TYPE = "application/vnd.pybuild.cache.step.v1+json"
MOUNT_MEDIA_TYPE = "application/vnd.pybuild.cache.mount.v1+json"
_PARALLEL = 4


def mount_tag(path: Path) -> str:
    """The tag of a cache mount directory's contents."""
    return f"mount-{path.name}"


class _Repo:
    """One cache repository and its client."""
    def __init__(self, text: str) -> None:

        ref = parse_reference(text.removeprefix("docker://"))
        self.text = text
        self.repository = ref.repository
        conf = load_registries_conf(None)
        self.client = RegistryClient(ref.registry, RegistryOptions(), repository=ref.repository,
                                     insecure=conf.is_insecure(ref.registry))

    def manifest(self, tag: str) -> dict[str, Any] | None:
        try:
            data, _, _ = self.client.get_manifest(self.repository, tag)
        except RegistryNotFound:
            return None
        parsed = json.loads(data)
        return parsed if isinstance(parsed, dict) else None

    def put_blob(self, layout: Layout, digest: str, size: int) -> None:
        if not self.client.has_blob(self.repository, digest):
            self.client.upload_blob(self.repository, digest, size,
                                    lambda: layout.open_blob(digest), lambda n: None)

    def put_bytes(self, data: bytes) -> tuple[str, int]:

        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if not self.client.has_blob(self.repository, digest):
            self.client.upload_blob(self.repository, digest, len(data),
                                    lambda: io.BytesIO(data), lambda n: None)
        return digest, len(data)

    def put_manifest(self, tag: str, config: tuple[str, int], config_type: str,
                     layers: list[dict[str, Any]]) -> None:

        manifest = {
            "schemaVersion": 2, "mediaType": MEDIA_OCI_MANIFEST,
            "config": {"mediaType": config_type, "digest": config[0], "size": config[1]},
            "layers": layers,
        }
        data = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        self.client.put_manifest(self.repository, tag, data, MEDIA_OCI_MANIFEST)


class RemoteCache:
    """``--cache-from`` repositories to look steps up in, a ``--cache-to`` to send them to."""
    def __init__(self, store: Store, sources: Iterable[str], dest: str | None, *,
                 ttl: float | None = None, mounts: bool = False) -> None:
        self.store = store
        self.sources = [_Repo(text) for text in sources]
        self.dest = _Repo(dest) if dest else None
        self.ttl = ttl
        self.mounts = mounts
        self._lock = threading.Lock()
        self.warned: set[str] = set()

    def _warn(self, repo: _Repo, exc: PybuildError) -> None:

        with self._lock:
            if repo.text in self.warned:
                return
            self.warned.add(repo.text)
        print(f"WARN[0000] using cache {repo.text}: {exc}", file=sys.stderr, flush=True)

    def fetch(self, key: str) -> CacheEntry | None:
        """The entry for ``key`` from the first source that has it (layer blob fetched
        into the store), or None."""
        for repo in self.sources:
            try:
                manifest = repo.manifest(key)
                if manifest is None or manifest.get("config", {}).get("mediaType") != \
                        ENTRY_MEDIA_TYPE:
                    continue
                entry = CacheEntry.from_json(
                    repo.client.get_blob(repo.repository, manifest["config"]["digest"]))
                if self.ttl is not None and entry.stored < time.time() - self.ttl:
                    continue
                if entry.layer is not None:
                    self._fetch_layer(repo, key, entry)
                return entry
            except (PybuildError, ValueError, KeyError, TypeError) as exc:
                if isinstance(exc, PybuildError):
                    self._warn(repo, exc)
                continue
        return None

    def _fetch_layer(self, repo: _Repo, key: str, entry: CacheEntry) -> None:
        """Bring a cache entry's layer into the store, verified as an image layer is
        (size, digest, diff_id, tar); a refusal is a ``VerificationError``."""
        layer = entry.layer
        assert layer is not None
        with ImageImport(self.store, f"{repo.text}:{key}") as imp:
            if not layer.diff_id:
                raise VerificationError(
                    f'verifying image "{imp.image}": layer {layer.digest}: the cache entry '
                    "has no diff_id", image=imp.image, digest=layer.digest, problem="diff_id")
            imp.layer(layer.descriptor(), layer.diff_id,
                      lambda: repo.client.open_blob(repo.repository, layer.digest))
            imp.commit_blobs()

    def restore_mount(self, path: Path) -> None:
        """Fill the cache mount directory ``path`` from the first source that has it,
        unless it already holds something."""
        if path.is_dir() and any(path.iterdir()):
            return

        for repo in self.sources:
            try:
                manifest = repo.manifest(mount_tag(path))
                if manifest is None or not manifest.get("layers"):
                    continue
                layer = manifest["layers"][0]
                data = repo.client.get_blob(repo.repository, layer["digest"])
            except (PybuildError, ValueError, KeyError, TypeError) as exc:
                if isinstance(exc, PybuildError):
                    self._warn(repo, exc)
                continue

            tmp = path.parent / f".tmp-{uuid.uuid4().hex}"
            tmp.mkdir(parents=True)
            try:
                extract_layer(io.BytesIO(data), layer["mediaType"], tmp,
                              layer_digest=layer["digest"], whiteouts="apply")
                shutil.rmtree(path, ignore_errors=True)
                os.rename(tmp, path)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            return

    def send(self, keys: Iterable[str], mounts: Iterable[Path], progress: Progress) -> None:
        """Send the steps ``keys`` (and, with cache mounts, the ``mounts`` directories)."""
        if self.dest is None:
            return
        dest = self.dest
        index = CacheIndex(self.store)
        layout = self.store.layout

        def send_step(key: str) -> None:
            entry = index.get(key)
            if entry is None:
                return
            layers = []
            if entry.layer is not None:
                dest.put_blob(layout, entry.layer.digest, entry.layer.size)
                layers.append(entry.layer.to_json())
            config = dest.put_bytes(entry.to_json())
            dest.put_manifest(key, config, ENTRY_MEDIA_TYPE, layers)

        jobs = list(dict.fromkeys(keys))
        try:
            with ThreadPoolExecutor(max_workers=_PARALLEL) as pool:
                list(pool.map(send_step, jobs))
            if self.mounts:
                for path in sorted(set(mounts)):
                    if path.is_dir():
                        self._send_mount(path)
        except PybuildError as exc:
            raise RegistryError(f"sending the build cache to {dest.text}: {exc}") from exc
        progress.info(f"Sent {len(jobs)} cached steps to {dest.text}")

    def _send_mount(self, path: Path) -> None:

        assert self.dest is not None
        layout = self.store.layout
        before = set(layout.blob_digests())
        layer = write_layer(tree_entries(path), layout, compression="gzip", timestamp=0)
        try:
            self.dest.put_blob(layout, layer.digest, layer.size)
            config = self.dest.put_bytes(json.dumps({"path": path.name}).encode())
            self.dest.put_manifest(mount_tag(path), config, MOUNT_MEDIA_TYPE, [{
                "mediaType": layer.media_type, "digest": layer.digest, "size": layer.size}])
        finally:
            if layer.digest not in before:
                with contextlib.suppress(OSError, PybuildError):
                    layout.remove_blob(layer.digest)

    def close(self) -> None:
        for repo in [*self.sources, *([self.dest] if self.dest else [])]:
            repo.client.close()
