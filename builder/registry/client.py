"""Pull from and push to registries speaking the OCI distribution API (Docker Registry v2).

``RegistryClient`` is one registry's endpoints (manifests, blobs, uploads,
mounts) over a ``Transport`` with an ``Authenticator``. ``fetch_image`` and
``send_image`` move one image between a ``Layout`` and a repository, with
retries and parallel blobs; ``resolve_candidates`` applies registries.conf to a
name, and ``inspect_remote`` reads an image without storing it. Pulling into and
pushing from the local store are ``builder.store.transports``' business.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterator, TypeVar
from urllib.parse import urljoin

from builder.errors import (
    AuthenticationError,
    CertificateError,
    DigestMismatch,
    ImageError,
    PybuildError,
    RegistryError,
    RegistryNotFound,
    RegistryTransportError,
    UsageError,
    VerificationError,
)
from builder.image.layout import Layout
from builder.image.spec import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    MEDIA_DOCKER_CONFIG,
    MEDIA_DOCKER_LAYER,
    MEDIA_DOCKER_LAYER_GZIP,
    MEDIA_DOCKER_MANIFEST,
    MEDIA_DOCKER_MANIFEST_LIST,
    MEDIA_OCI_CONFIG,
    MEDIA_OCI_INDEX,
    MEDIA_OCI_LAYER,
    MEDIA_OCI_LAYER_GZIP,
    MEDIA_OCI_MANIFEST,
    Descriptor,
)
from builder.platform import Platform, choose, parse_platform
from builder.reference import DOCKER_HUB, Reference
from builder.registry.auth import Authenticator
from builder.registry.blobinfo import BlobInfo
from builder.registry.config import load_registries_conf
from builder.registry.credentials import Credentials, find_credentials, parse_creds
from builder.registry.http import (
    BlobReader,
    Transport,
    tls_config,
)
from builder.registry.progress import TransferProgress, make_progress
from builder.rootfs.verify import ImageImport

if TYPE_CHECKING:
    import requests

__all__ = [
    "RegistryClient",
    "RegistryOptions",
    "convert_manifest",
    "fetch_image",
    "in_context",
    "inspect_remote",
    "resolve_candidates",
    "remote_digest",
    "send_image",
]

ACCEPT_MANIFEST = ", ".join(
    [MEDIA_OCI_INDEX, MEDIA_DOCKER_MANIFEST_LIST, MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST]
)
CHUNK_THRESHOLD = 64 << 20  # blobs above this are uploaded in chunks
CHUNK_SIZE = 32 << 20
PARALLEL_BLOBS = 6
_CONFIG_LIMIT = 16 << 20  # bytes: a larger image config is refused before it is fetched

T = TypeVar("T")


@dataclass(frozen=True)
class RegistryOptions:
    tls_verify: bool | None = None
    cert_dir: Path | None = None
    authfile: Path | None = None
    creds: str | None = None
    registries_conf: Path | None = None
    retry: int = 3
    retry_delay: float = 1.0
    platform: str | None = None
    format: str | None = None


class RegistryClient:
    """The v2 API of one registry; safe to share between threads."""

    def __init__(
        self,
        registry: str,
        options: RegistryOptions = RegistryOptions(),
        *,
        repository: str | None = None,
        insecure: bool = False,
        transport: Transport | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        self.registry = registry
        self.options = options
        self.tls = tls_config(
            registry, tls_verify=options.tls_verify, cert_dir=options.cert_dir, insecure=insecure
        )
        self.transport = transport or Transport()
        if credentials is None:
            if options.creds:
                credentials = parse_creds(options.creds)
            else:
                credentials = find_credentials(registry, repository, authfile=options.authfile)
        self.auth = Authenticator(registry, credentials, self.transport, self.tls)
        self._base: str | None = None
        self._base_lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------

    def base_url(self) -> str:
        """``scheme://host``, found by pinging ``/v2/`` (HTTPS, then HTTP where allowed)."""
        with self._base_lock:
            if self._base is None:
                self._base = self._ping()
            return self._base

    def _ping(self) -> str:
        # Docker Hub's API is served by another host than its name
        host = "registry-1.docker.io" if self.registry == DOCKER_HUB else self.registry
        for scheme in ("https", "http"):
            try:
                response = self.transport.send("GET", f"{scheme}://{host}/v2/", tls=self.tls)
            except CertificateError:
                raise
            except RegistryTransportError:
                if scheme == "https" and self.tls.allow_http:
                    continue
                raise
            response.close()
            if response.status_code in (200, 401):
                return f"{scheme}://{host}"
            if scheme == "https" and self.tls.allow_http and response.status_code == 400:
                continue
            raise self._status_error(response)
        raise RegistryTransportError(f"connecting to {self.registry}: no answer", registry=host)

    def request(
        self,
        method: str,
        path: str,
        *,
        scope: str,
        ok: tuple[int, ...] = (200,),
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send with authentication, answering one 401 challenge; raise unless status in ``ok``."""
        url = urljoin(self.base_url() + "/", path)
        flow = self.auth.flow(scope)
        auth_headers = next(flow)
        while True:
            response = self.transport.send(
                method, url, tls=self.tls, headers={**(headers or {}), **auth_headers}, **kwargs
            )
            try:
                auth_headers = flow.send(response)
            except StopIteration:
                break
            response.close()
            body = kwargs.get("data")
            if body is not None and hasattr(body, "seek"):
                body.seek(0)
        if response.status_code not in ok:
            response.close()
            raise self._status_error(response)
        return response

    def _status_error(self, response: requests.Response) -> RegistryError:
        status = response.status_code
        if status == 401:
            return AuthenticationError(
                f"authentication required (HTTP {status})", registry=self.registry, status=status,
                hint="log in with: pybuild login " + self.registry,
            )
        if status == 403:
            return AuthenticationError(
                f"access denied (HTTP {status})", registry=self.registry, status=status
            )
        detail = _error_detail(response)
        cls = RegistryNotFound if status == 404 else RegistryError
        return cls(f"{detail} (HTTP {status})", registry=self.registry, status=status)

    # -- endpoints ----------------------------------------------------------------

    def get_manifest(self, repository: str, target: str) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) of a manifest or index, by tag or digest."""
        response = self.request(
            "GET", f"/v2/{repository}/manifests/{target}", scope=_pull(repository),
            headers={"Accept": ACCEPT_MANIFEST},
        )
        data = response.content
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if target.startswith("sha256:") and digest != target:
            raise DigestMismatch(f"fetching manifest {target}: the registry sent {digest}")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        try:
            media_type = json.loads(data).get("mediaType") or media_type
        except ValueError as exc:
            raise ImageError(f"reading manifest {target}: not JSON") from exc
        return data, media_type, digest

    def list_tags(self, repository: str) -> list[str]:
        response = self.request("GET", f"/v2/{repository}/tags/list", scope=_pull(repository))
        tags = response.json().get("tags") or []
        return [str(t) for t in tags]

    def catalog(self, limit: int = 1000) -> list[str]:
        """Repository names from ``/v2/_catalog``, following ``Link`` pagination."""
        names: list[str] = []
        path: str | None = f"/v2/_catalog?n={limit}"
        while path:
            response = self.request("GET", path, scope="registry:catalog:*")
            names.extend(str(n) for n in response.json().get("repositories") or [])
            path = response.links.get("next", {}).get("url")
        return names

    def get_blob(self, repository: str, digest: str) -> bytes:
        response = self.request(
            "GET", f"/v2/{repository}/blobs/{digest}", scope=_pull(repository)
        )
        data = response.content
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise DigestMismatch(f"fetching blob {digest}: content does not match its digest")
        return data

    def open_blob(self, repository: str, digest: str,
                  on_read: Callable[[int], None] | None = None) -> BlobReader:
        """A blob's bytes as a stream, unverified (``builder.rootfs.verify`` checks them)."""
        response = self.request(
            "GET", f"/v2/{repository}/blobs/{digest}", scope=_pull(repository), stream=True
        )
        return BlobReader(response, self.registry, on_read)

    def fetch_blob(
        self, repository: str, digest: str, layout: Layout, on_read: Callable[[int], None]
    ) -> None:
        """Stream a blob into ``layout``; nothing is stored unless the digest matches."""
        response = self.request(
            "GET", f"/v2/{repository}/blobs/{digest}", scope=_pull(repository), stream=True
        )
        with BlobReader(response, self.registry, on_read) as reader:
            layout.put_blob(reader, expected=digest)  # type: ignore[arg-type]

    def has_blob(self, repository: str, digest: str) -> bool:
        response = self.request(
            "HEAD", f"/v2/{repository}/blobs/{digest}", scope=_push(repository), ok=(200, 404)
        )
        return response.status_code == 200

    def start_upload(self, repository: str, mount: tuple[str, str] | None = None) -> str | None:
        """Open an upload session (its URL), or None when ``mount=(digest, from)`` succeeded."""
        scope = _push(repository)
        params = None
        if mount is not None:
            params = {"mount": mount[0], "from": mount[1]}
            scope += " " + _pull(mount[1])
        response = self.request(
            "POST", f"/v2/{repository}/blobs/uploads/", scope=scope, ok=(201, 202),
            params=params, headers={"Content-Length": "0"},
        )
        response.close()
        if response.status_code == 201:
            return None
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(
                "starting upload: the registry sent no Location", registry=self.registry
            )
        return urljoin(self.base_url() + "/", location)

    def upload_blob(
        self, repository: str, digest: str, size: int, opener: Callable[[], BinaryIO],
        on_read: Callable[[int], None], location: str | None = None,
    ) -> None:
        """Upload a blob: one PUT when small, PATCH chunks then PUT when large."""
        scope = _push(repository)
        location = location or self.start_upload(repository)
        assert location is not None
        with opener() as source:
            if size > CHUNK_THRESHOLD:
                offset = 0
                while chunk := source.read(CHUNK_SIZE):
                    response = self.request(
                        "PATCH", location, scope=scope, ok=(202,), data=chunk,
                        headers={
                            "Content-Type": "application/octet-stream",
                            "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                            "Content-Length": str(len(chunk)),
                        },
                    )
                    response.close()
                    offset += len(chunk)
                    on_read(len(chunk))
                    location = urljoin(location, response.headers.get("Location", location))
                body: bytes | _CountingReader = b""
            else:
                body = _CountingReader(source, size, on_read)
            response = self.request(
                "PUT", _with_query(location, "digest", digest), scope=scope, ok=(201,),
                data=body, headers={"Content-Type": "application/octet-stream"},
            )
            response.close()

    def put_manifest(self, repository: str, target: str, data: bytes, media_type: str) -> str:
        response = self.request(
            "PUT", f"/v2/{repository}/manifests/{target}", scope=_push(repository), ok=(201, 200),
            data=data, headers={"Content-Type": media_type},
        )
        response.close()
        return "sha256:" + hashlib.sha256(data).hexdigest()

    def login(self) -> None:
        """Check the credentials against the registry's ``/v2/`` endpoint."""
        self.request("GET", "/v2/", scope="")

    def close(self) -> None:
        self.transport.close()


class _CountingReader:
    """A file wrapper for request bodies that reports bytes read."""
    def __init__(self, source: BinaryIO, size: int, on_read: Callable[[int], None]) -> None:
        self._source = source
        self._size = size
        self._on_read = on_read

    def __len__(self) -> int:
        return self._size

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._on_read(len(data))
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._source.seek(offset, whence)

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(1 << 20):
            yield chunk


def _pull(repository: str) -> str:
    return f"repository:{repository}:pull"


def _push(repository: str) -> str:
    return f"repository:{repository}:pull,push"


def _with_query(url: str, key: str, value: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{key}={value}"


def _error_detail(response: requests.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        first = errors[0]
        code = str(first.get("code", "")).lower().replace("_", " ")
        message = str(first.get("message", ""))
        return f"{code}: {message}" if message and message != code else code or message
    except (ValueError, AttributeError, IndexError, TypeError):
        return response.reason.lower() if response.reason else "request failed"


def _retryable(exc: PybuildError, *, digests: bool) -> bool:
    if isinstance(exc, CertificateError):
        return False
    if isinstance(exc, RegistryTransportError):
        return True
    if isinstance(exc, RegistryError) and exc.status is not None:
        return exc.status >= 500 or exc.status == 429
    if isinstance(exc, VerificationError):  # other content than the manifest's: damaged
        return digests and exc.problem == "digest"  # on the way; anything else is the image
    return digests and isinstance(exc, DigestMismatch)


def retrying(
    options: RegistryOptions, action: Callable[[], T], *, digests: bool = False
) -> T:
    """Run ``action``, again after 5xx answers and dropped connections, with backoff."""
    attempt = 0
    while True:
        try:
            return action()
        except PybuildError as exc:
            if attempt >= options.retry or not _retryable(exc, digests=digests):
                raise
        time.sleep(options.retry_delay * (2 ** attempt))
        attempt += 1


def in_context(prefix: str, exc: PybuildError) -> PybuildError:
    """The same error with ``prefix: `` in front of its message."""
    message = f"{prefix}: {exc.message}"
    new: PybuildError
    if isinstance(exc, RegistryError):
        new = type(exc)(message, registry=exc.registry, status=exc.status, hint=exc.hint)
    else:
        try:
            new = type(exc)(message, hint=exc.hint)
        except TypeError:
            return exc
    return new


# -- platforms ---------------------------------------------------------------------


def choose_manifest(index: dict[str, Any], wanted: Platform) -> dict[str, Any]:
    """The entry of an image index (parsed JSON) for ``wanted``."""
    entries = [m for m in index.get("manifests") or [] if isinstance(m, dict)]
    return choose(((_entry_platform(m), m) for m in entries), wanted, "the index")


def _entry_platform(entry: dict[str, Any]) -> Platform | None:
    found = entry.get("platform")
    if not isinstance(found, dict):
        return None
    return Platform(str(found.get("os") or ""), str(found.get("architecture") or ""),
                    str(found.get("variant") or ""))


# -- moving images ---------------------------------------------------------------------


@dataclass(frozen=True)
class FetchResult:
    manifest: bytes
    digest: str
    media_type: str
    config: bytes


def fetch_image(
    client: RegistryClient, ref: Reference, dest: Layout | ImageImport, *,
    progress: TransferProgress | None = None, blob_info: BlobInfo | None = None,
) -> FetchResult:
    """Copy ``ref``'s manifest, config and layers into ``dest``, skipping stored blobs.

    ``dest`` is an ``ImageImport`` (``builder.rootfs.verify``) for a pull into the store:
    every blob is verified against its descriptor and each layer against the config
    while it streams in, and nothing is stored until the caller commits. A plain
    ``Layout`` gets the blobs as they are, each checked against its digest only."""
    options = client.options
    repo = ref.repository
    data, media_type, digest = retrying(options, lambda: client.get_manifest(repo, ref.target))
    chosen: Descriptor | None = None
    if media_type in INDEX_TYPES:
        entry = choose_manifest(json.loads(data), parse_platform(options.platform))
        chosen = Descriptor.from_json(entry)
        data, media_type, digest = retrying(
            options, lambda: client.get_manifest(repo, entry["digest"])
        )
    if media_type not in MANIFEST_TYPES:
        raise ImageError(f"reading manifest {digest}: unsupported media type {media_type!r}")
    manifest = json.loads(data)
    config_desc = Descriptor.from_json(manifest["config"])
    if config_desc.size > _CONFIG_LIMIT:
        raise ImageError(f"reading config {config_desc.digest}: {config_desc.size} bytes is more "
                         f"than the {_CONFIG_LIMIT} allowed")
    config = retrying(options, lambda: client.get_blob(repo, config_desc.digest), digests=True)
    layers = [Descriptor.from_json(layer) for layer in manifest.get("layers") or []]
    progress = progress or make_progress("Copying", quiet=True)
    if isinstance(dest, ImageImport):
        if chosen is not None:
            dest.check("manifest", chosen, data)
        fetch = _verifying_fetch(client, repo, dest, dest.config(config_desc, config).diff_ids,
                                 layers, progress)
    else:
        dest.put_blob(config, expected=config_desc.digest)
        fetch = _plain_fetch(client, repo, dest, progress)

    def fetch_and_record(layer: Descriptor) -> None:
        fetch(layer)
        if blob_info is not None:
            blob_info.record(client.registry, repo, layer.digest)

    _parallel(fetch_and_record, layers)
    if not isinstance(dest, ImageImport):
        dest.put_blob(data, expected=digest)
    return FetchResult(data, digest, media_type, config)


def _verifying_fetch(client: RegistryClient, repo: str, imp: ImageImport, diff_ids: list[str],
                     layers: list[Any], progress: TransferProgress) -> Callable[[Any], None]:
    """Fetching one layer through ``imp`` (its diff_id from the config), retried when the
    blob arrives damaged."""
    if len(diff_ids) != len(layers):
        raise VerificationError(
            f'verifying image "{imp.image}": the manifest lists {len(layers)} layers, '
            f"the config {len(diff_ids)} diff_ids", image=imp.image, problem="diff_id")
    by_digest = {layer.digest: diff_id for layer, diff_id in zip(layers, diff_ids)}

    def fetch(layer: Any) -> None:
        advance = progress.add(layer.digest, layer.size)
        retrying(client.options, lambda: imp.layer(
            layer, by_digest[layer.digest],
            lambda: client.open_blob(repo, layer.digest, advance)), digests=True)
        progress.done(layer.digest)

    return fetch


def _plain_fetch(client: RegistryClient, repo: str, layout: Layout, progress: TransferProgress
                 ) -> Callable[[Any], None]:
    def fetch(layer: Any) -> None:
        if not layout.has_blob(layer.digest):
            advance = progress.add(layer.digest, layer.size)
            retrying(client.options,
                     lambda: client.fetch_blob(repo, layer.digest, layout, advance), digests=True)
            progress.done(layer.digest)

    return fetch


def send_image(
    client: RegistryClient, ref: Reference, layout: Layout, manifest: bytes, *,
    blob_info: BlobInfo | None = None, report: Callable[[str], None] = lambda line: None,
    progress: TransferProgress | None = None,
) -> str:
    """Upload the blobs ``manifest`` names from ``layout``, then the manifest; its digest."""
    options = client.options
    repo = ref.repository
    parsed = json.loads(manifest)
    blobs = [*(parsed.get("layers") or []), parsed["config"]]
    progress = progress or make_progress("Copying", quiet=True)
    report("Getting image source signatures")

    def send(blob: dict[str, Any]) -> None:
        digest = str(blob["digest"])
        kind = "config" if blob is parsed["config"] else "blob"
        if retrying(options, lambda: client.has_blob(repo, digest)):
            report(f"Copying {kind} {digest} skipped: already exists")
            return
        for source in (blob_info.repositories(client.registry, digest) if blob_info else []):
            if source != repo and retrying(
                options, partial(client.start_upload, repo, (digest, source))
            ) is None:
                report(f"Copying {kind} {digest} mounted from {source}")
                return
        report(f"Copying {kind} {digest}")
        advance = progress.add(digest, int(blob["size"]))
        retrying(options, lambda: client.upload_blob(
            repo, digest, int(blob["size"]), lambda: layout.open_blob(digest), advance,
        ))
        progress.done(digest)
        if blob_info is not None:
            blob_info.record(client.registry, repo, digest)

    _parallel(send, blobs)
    report("Writing manifest to image destination")
    media_type = parsed.get("mediaType") or MEDIA_OCI_MANIFEST
    digest = retrying(
        options, lambda: client.put_manifest(repo, ref.target, manifest, media_type)
    )
    report("Storing signatures")
    return digest


def _parallel(action: Callable[[T], None], items: list[T]) -> None:
    if len(items) <= 1:
        for item in items:
            action(item)
        return
    with ThreadPoolExecutor(max_workers=min(PARALLEL_BLOBS, len(items))) as pool:
        for future in [pool.submit(action, item) for item in items]:
            future.result()


_TO_DOCKER = {
    MEDIA_OCI_MANIFEST: MEDIA_DOCKER_MANIFEST,
    MEDIA_OCI_CONFIG: MEDIA_DOCKER_CONFIG,
    MEDIA_OCI_LAYER_GZIP: MEDIA_DOCKER_LAYER_GZIP,
    MEDIA_OCI_LAYER: MEDIA_DOCKER_LAYER,
}
_TO_OCI = {v: k for k, v in _TO_DOCKER.items()}


def convert_manifest(manifest: bytes, format: str | None) -> bytes:
    """``manifest`` with media types for ``format`` ("oci" or "docker"; None keeps it)."""
    if format is None:
        return manifest
    if format not in ("oci", "docker"):
        raise UsageError(f"converting manifest: unknown format {format!r} (want oci or docker)")
    table = _TO_DOCKER if format == "docker" else _TO_OCI
    parsed = json.loads(manifest)
    target = MEDIA_DOCKER_MANIFEST if format == "docker" else MEDIA_OCI_MANIFEST
    if parsed.get("mediaType", MEDIA_OCI_MANIFEST) == target:
        return manifest
    for descriptor in [parsed["config"], *(parsed.get("layers") or [])]:
        media_type = descriptor.get("mediaType", "")
        if media_type not in table and media_type not in table.values():
            raise ImageError(
                f"converting manifest to {format}: cannot express layer type {media_type!r}",
                hint="docker manifests need gzip or uncompressed layers" if format == "docker"
                else None,
            )
        descriptor["mediaType"] = table.get(media_type, media_type)
    parsed["mediaType"] = target
    return json.dumps(parsed, separators=(",", ":")).encode()


# -- the public entry points -------------------------------------------------------------


def resolve_candidates(ref: str, options: RegistryOptions
                       ) -> list[tuple[Reference, Reference, bool]]:
    """(name to store, reference to fetch, insecure) candidates for ``ref``, in order."""
    conf = load_registries_conf(options.registries_conf)
    candidates = []
    for name in conf.resolve_short_name(ref):
        for endpoint in conf.endpoints(name):
            candidates.append((name, endpoint.reference, endpoint.insecure))
    return candidates


def search_registry(
    registry: str, term: str, options: RegistryOptions = RegistryOptions()
) -> list[str]:
    """``registry/name`` for each repository of the catalog whose name contains ``term``."""
    conf = load_registries_conf(options.registries_conf)
    entry = conf.find(registry)
    if entry and entry.blocked:
        raise RegistryError(f"registry {registry} is blocked in registries.conf", registry=registry)
    client = RegistryClient(registry, options, insecure=conf.is_insecure(registry))
    try:
        names = client.catalog()
    except PybuildError as exc:
        raise in_context(f"searching {registry}", exc) from exc
    finally:
        client.close()
    return [f"{registry}/{name}" for name in sorted(names) if term in name]


def inspect_remote(ref: str, options: RegistryOptions = RegistryOptions(), *,
                   raw: bool = False) -> dict[str, Any] | bytes:
    """A remote image's manifest (``raw``) or a skopeo-inspect-like summary."""
    name, source, insecure = resolve_candidates(ref, options)[0]
    client = RegistryClient(
        source.registry, options, repository=source.repository, insecure=insecure
    )
    try:
        data, media_type, digest = retrying(
            options, lambda: client.get_manifest(source.repository, source.target)
        )
        if raw:
            return data
        if media_type in INDEX_TYPES:
            entry = choose_manifest(json.loads(data), parse_platform(options.platform))
            data, media_type, digest = client.get_manifest(source.repository, entry["digest"])
        manifest = json.loads(data)
        config = json.loads(client.get_blob(source.repository, manifest["config"]["digest"]))
        tags = client.list_tags(source.repository)
    except PybuildError as exc:
        raise in_context(f"inspecting {source}", exc) from exc
    finally:
        client.close()
    inner = config.get("config") or {}
    return {
        "Name": name.name,
        "Digest": digest,
        "RepoTags": tags,
        "Created": config.get("created"),
        "Architecture": config.get("architecture"),
        "Os": config.get("os"),
        "Variant": config.get("variant"),
        "Labels": inner.get("Labels"),
        "Env": inner.get("Env"),
        "Layers": [layer["digest"] for layer in manifest.get("layers") or []],
        "MediaType": media_type,
    }


def remote_digest(ref: str, options: RegistryOptions) -> str:
    """The digest of the manifest a pull of ``ref`` would fetch for ``options.platform``
    (one HEAD request, plus a GET when the name points at an index)."""
    _, source, insecure = resolve_candidates(ref, options)[0]
    client = RegistryClient(source.registry, options, repository=source.repository,
                            insecure=insecure)
    path = f"/v2/{source.repository}/manifests/{source.target}"
    scope = f"repository:{source.repository}:pull"
    try:
        response = retrying(options, lambda: client.request(
            "HEAD", path, scope=scope, headers={"Accept": ACCEPT_MANIFEST}))
        response.close()
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        digest = response.headers.get("Docker-Content-Digest", "")
        if media_type in INDEX_TYPES or not digest:
            data, media_type, digest = retrying(
                options, lambda: client.get_manifest(source.repository, source.target))
            if media_type in INDEX_TYPES:
                entry = choose_manifest(json.loads(data), parse_platform(options.platform))
                digest = str(entry["digest"])
    except PybuildError as exc:
        raise in_context(f"checking {source}", exc) from exc
    finally:
        client.close()
    return digest
