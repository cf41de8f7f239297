"""The one place pybuild talks HTTP: a thin layer over a ``requests`` session.

``Transport.send`` is the single method everything goes through, so tests can
wrap it to inject faults. ``TLSConfig`` says how to reach one registry:
verified TLS by default, a CA bundle and client certificate from a cert
directory, and plain HTTP only for insecure registries, ``--tls-verify=false``
and loopback addresses.
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.errors import CertificateError, RegistryTransportError

if TYPE_CHECKING:
    import requests

__all__ = [
    "BlobReader",
    "CertificateError",
    "TLSConfig",
    "Transport",
    "is_loopback",
    "tls_config",
]

CERTS_DIRS = (Path("/etc/containers/certs.d"), Path("/etc/docker/certs.d"))
TIMEOUT = (30.0, 300.0)  # connect, read


@dataclass(frozen=True)
class TLSConfig:
    verify: bool | str = True  # False, True or a CA bundle path
    cert: tuple[str, str] | None = None
    allow_http: bool = False


def is_loopback(registry: str) -> bool:
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tls_config(
    registry: str, *, tls_verify: bool | None, cert_dir: Path | None, insecure: bool = False
) -> TLSConfig:
    """How to reach ``registry`` given the command-line and registries.conf settings."""
    directory = cert_dir
    if directory is None:
        directory = next((d / registry for d in CERTS_DIRS if (d / registry).is_dir()), None)
    verify: bool | str = not (tls_verify is False or insecure)
    cert = None
    if directory is not None:
        if not directory.is_dir():
            raise RegistryTransportError(
                f"reading certificates: {directory} is not a directory", registry=registry
            )
        cas = sorted(directory.glob("*.crt"))
        if cas and verify:
            verify = _ca_bundle(cas)
        for client_cert in sorted(directory.glob("*.cert")):
            key = client_cert.with_suffix(".key")
            if not key.exists():
                raise RegistryTransportError(
                    f"reading certificates: {client_cert.name} has no matching {key.name}",
                    registry=registry,
                )
            cert = (str(client_cert), str(key))
    if not verify:
        import urllib3

        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    allow_http = tls_verify is False or insecure or is_loopback(registry)
    return TLSConfig(verify, cert, allow_http)


_bundles: dict[tuple[Path, ...], str] = {}


def _ca_bundle(files: list[Path]) -> str:
    """One PEM file with every CA in ``files`` (requests takes a single bundle)."""
    key = tuple(files)
    if len(files) == 1:
        return str(files[0])
    if key not in _bundles:
        fd, path = tempfile.mkstemp(prefix="pybuild-ca-", suffix=".pem")
        with os.fdopen(fd, "wb") as out:
            for f in files:
                out.write(f.read_bytes().rstrip(b"\n") + b"\n")
        _bundles[key] = path
    return _bundles[key]


class Transport:
    """Sends requests through one pooled session; wrap ``send`` to inject faults."""

    def __init__(self, pool_size: int = 16) -> None:
        import requests
        import requests.adapters

        self.session = requests.Session()
        self.session.trust_env = False
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers["User-Agent"] = "pybuild/0.1"

    def send(
        self, method: str, url: str, *, tls: TLSConfig, **kwargs: Any
    ) -> requests.Response:
        """One HTTP exchange; network failures become ``RegistryTransportError``."""
        import requests

        kwargs.setdefault("timeout", TIMEOUT)
        kwargs.setdefault("allow_redirects", True)
        try:
            return self.session.request(method, url, verify=tls.verify, cert=tls.cert, **kwargs)
        except requests.exceptions.SSLError as exc:
            raise _tls_error(url, exc) from exc
        except requests.exceptions.RequestException as exc:
            raise RegistryTransportError(
                f"{method} {_host(url)}: {_reason(exc)}", registry=_host(url)
            ) from exc

    def close(self) -> None:
        self.session.close()


class BlobReader:
    """A streamed response body as a file; its failures are ``RegistryTransportError``."""

    def __init__(self, response: requests.Response, registry: str, on_read: Any = None) -> None:
        self._response = response
        self._registry = registry
        self._on_read = on_read

    def read(self, size: int = -1) -> bytes:
        import requests
        import urllib3

        try:
            data = self._response.raw.read(None if size < 0 else size, decode_content=False)
        except (urllib3.exceptions.HTTPError, requests.exceptions.RequestException, OSError) as exc:
            raise RegistryTransportError(
                f"reading blob from {self._registry}: {_reason(exc)}", registry=self._registry
            ) from exc
        if self._on_read is not None and data:
            self._on_read(len(data))
        return data or b""

    def close(self) -> None:
        self._response.close()

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _host(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]


def _reason(exc: BaseException) -> str:
    """The innermost readable cause of a network error, without URLs."""
    text = str(exc)
    for marker in ("Connection refused", "Connection reset", "timed out", "Name or service",
                   "IncompleteRead", "Connection aborted", "RemoteDisconnected",
                   "Connection broken"):
        if marker in text:
            return marker.lower().replace("incompleteread", "connection closed mid-body")
    return text.split("(Caused by ")[-1].rstrip(")") if "Caused by" in text else text


def _tls_error(url: str, exc: BaseException) -> RegistryTransportError:
    host = _host(url)
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return CertificateError(
            f"connecting to {host}: tls: certificate signed by unknown authority",
            registry=host,
            hint="pass --cert-dir with the registry's CA certificate, or --tls-verify=false",
        )
    return RegistryTransportError(f"connecting to {host}: tls: {_reason(exc)}", registry=host)
