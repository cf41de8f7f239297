"""Real registries on loopback for the registry tests, and test images.

The fixtures are re-exported by ``conftest.py``; helpers are imported from here.

* ``registry``: Debian's ``docker-registry``, plain HTTP, anonymous.
* ``secure_registry``: the same server behind TLS (a self-signed certificate made
  here) with htpasswd (bcrypt) authentication.
* ``token_registry``: the server with ``auth: token``, and a token server thread
  that signs JWTs with a key made here.
* ``fault_proxy``: an HTTP proxy thread in front of ``registry`` that injects
  500s, connection resets mid-body and flipped bytes on request.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from builder.image.layout import Layout
from builder.image.spec import MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST

DOCKER_REGISTRY = shutil.which("docker-registry")
USER, PASSWORD = "tester", "s3cret-pa55"

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Registry:
    """A running registry: ``host`` is ``127.0.0.1:PORT``."""

    host: str
    scheme: str
    storage: Path
    cert_dir: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"


def _start_registry(tmp: Path, auth: dict[str, object] | None, tls: tuple[Path, Path] | None
                    ) -> Registry:
    if DOCKER_REGISTRY is None:
        pytest.skip("docker-registry is not installed")
    port = free_port()
    storage = tmp / "storage"
    storage.mkdir(parents=True)
    http: dict[str, object] = {"addr": f"127.0.0.1:{port}", "secret": "test-secret"}
    if tls:
        http["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}
    config: dict[str, object] = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        "http": http,
    }
    if auth:
        config["auth"] = auth
    path = tmp / "config.yml"
    path.write_text(json.dumps(config))  # JSON is YAML
    log = open(tmp / "registry.log", "wb")
    process = subprocess.Popen([DOCKER_REGISTRY, "serve", str(path)], stdout=log, stderr=log)
    log.close()
    scheme = "https" if tls else "http"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {(tmp / 'registry.log').read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    return Registry(f"127.0.0.1:{port}", scheme, storage, process=process)


def _stop(registry: Registry) -> None:
    if registry.process is not None:
        registry.process.terminate()
        try:
            registry.process.wait(10)
        except subprocess.TimeoutExpired:
            registry.process.kill()
            registry.process.wait()


def make_certificate(directory: Path, name: str = "registry") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cert, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = _start_registry(tmp_path_factory.mktemp("registry"), None, None)
    yield reg
    _stop(reg)


@pytest.fixture(scope="session")
def secure_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    tmp = tmp_path_factory.mktemp("secure-registry")
    cert, key = make_certificate(tmp / "tls")
    htpasswd = tmp / "htpasswd"
    line = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True,
                          capture_output=True, text=True).stdout.strip()
    htpasswd.write_text(line + "\n")
    reg = _start_registry(
        tmp, {"htpasswd": {"realm": "pybuild-test", "path": str(htpasswd)}}, (cert, key)
    )
    reg.cert_dir = tmp / "certs"
    reg.cert_dir.mkdir()
    shutil.copy(cert, reg.cert_dir / "ca.crt")  # the CA half only: a cert dir for clients
    yield reg
    _stop(reg)


# -- a token server ----------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    url: str
    issued: list[str] = field(default_factory=list)  # scopes asked for
    server: ThreadingHTTPServer | None = None


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[tuple[Registry, TokenServer]]:
    """A registry with ``auth: token`` and the token server that signs its JWTs."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    tmp = tmp_path_factory.mktemp("token-registry")
    cert, key_path = make_certificate(tmp / "signing", "token-signer")
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    from cryptography import x509

    der = x509.load_pem_x509_certificate(cert.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    port = free_port()
    tokens = TokenServer(f"http://127.0.0.1:{port}/token")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            from urllib.parse import parse_qs, urlsplit

            query = parse_qs(urlsplit(self.path).query)
            auth = self.headers.get("Authorization", "")
            expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            if auth != expected:
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            access = []
            for scope in query.get("scope", []):
                tokens.issued.append(scope)
                kind, _, rest = scope.partition(":")
                name, _, actions = rest.rpartition(":")
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
            now = int(time.time())
            header = {"alg": "RS256", "typ": "JWT", "x5c": [base64.b64encode(der).decode()]}
            claims = {"iss": "pybuild-test-issuer", "sub": USER,
                      "aud": query.get("service", [""])[0], "exp": now + 300,
                      "nbf": now - 10, "iat": now, "jti": os.urandom(8).hex(),
                      "access": access}
            signing = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
            signature = key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
            body = json.dumps({"token": signing + "." + _b64(signature)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    tokens.server = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    reg = _start_registry(tmp, {"token": {
        "realm": tokens.url, "service": "pybuild-test", "issuer": "pybuild-test-issuer",
        "rootcertbundle": str(cert),
    }}, None)
    yield reg, tokens
    _stop(reg)
    server.shutdown()
    server.server_close()


# -- a fault-injecting proxy ---------------------------------------------------------------


@dataclass
class Fault:
    kind: str  # "500", "reset" (close mid-body) or "flip" (change one byte)
    method: str
    path: str  # a regular expression searched in the request path
    times: int = 1


class FaultProxy:
    """Forwards to a registry; each request matching a queued fault gets it instead."""

    def __init__(self, target: Registry) -> None:
        self.target = target
        self.faults: list[Fault] = []
        self.hits: list[str] = []
        self.lock = threading.Lock()
        port = free_port()
        self.host = f"127.0.0.1:{port}"
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def inject(self, kind: str, method: str, path: str, times: int = 1) -> None:
        with self.lock:
            self.faults.append(Fault(kind, method, path, times))

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()
            self.hits.clear()

    def _take(self, method: str, path: str) -> str | None:
        with self.lock:
            for fault in self.faults:
                if fault.method == method and re.search(fault.path, path) and fault.times > 0:
                    fault.times -= 1
                    self.hits.append(f"{fault.kind} {method} {path}")
                    return fault.kind
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                import http.client

                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                fault = proxy._take(self.command, self.path)
                if fault == "500":
                    data = b'{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}'
                    self.send_response(500)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                conn = http.client.HTTPConnection(proxy.target.host, timeout=60)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("connection", "keep-alive")}
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                conn.close()
                if fault == "flip" and data:
                    middle = len(data) // 2
                    data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("connection", "keep-alive", "transfer-encoding",
                                           "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command == "HEAD":
                    return
                if fault == "reset":
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                    self.close_connection = True
                    self.connection.close()
                    return
                self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fault_proxy(registry: Registry) -> Iterator[FaultProxy]:
    proxy = FaultProxy(registry)
    yield proxy
    proxy.close()


# -- test images ---------------------------------------------------------------------------


def layer_tar(files: dict[str, bytes], level: int = 6) -> bytes:
    """A gzip-compressed tar of ``files`` (deterministic)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=level, mtime=0)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_blobs(layout: Layout, layers: list[bytes], *, arch: str = "amd64",
                label: str = "test") -> tuple[bytes, bytes]:
    """Store an OCI image's config and gzip layers in ``layout``; (manifest, config)."""
    diff_ids = [sha256(gzip.decompress(layer)) for layer in layers]
    config = json.dumps({
        "architecture": arch, "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/bin"], "Labels": {"test": label}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "test"}] * len(layers),
    }, sort_keys=True).encode()
    layout.put_blob(config)
    for layer in layers:
        layout.put_blob(layer)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MEDIA_OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha256(layer), "size": len(layer)} for layer in layers],
    }, sort_keys=True).encode()
    layout.put_blob(manifest)
    return manifest, config


def make_oci_dir(directory: Path, tag: str, images: list[tuple[str, list[bytes]]]
                 ) -> list[tuple[bytes, bytes]]:
    """An OCI layout holding one image per (arch, layers), named ``tag``; with two or
    more images the name points at an index of them."""
    from builder.image.spec import ANNOTATION_REF_NAME, Descriptor, Index
    from builder.platform import Platform

    layout = Layout(directory)
    made = [image_blobs(layout, layers, arch=arch, label=arch) for arch, layers in images]
    entries = [Descriptor(MEDIA_OCI_MANIFEST, sha256(m), len(m), platform=Platform("linux", arch))
               for (m, _), (arch, _) in zip(made, images)]
    if len(entries) == 1:
        top = entries[0]
    else:
        data = Index(entries).to_json()
        digest, size = layout.put_blob(data)
        top = Descriptor(MEDIA_OCI_INDEX, digest, size)
    top.annotations = {ANNOTATION_REF_NAME: tag}
    layout.write_index(Index([top]))
    return made


def seed_store(root: Path, name: str, layers: list[bytes]) -> tuple[bytes, bytes]:
    """Put an image named ``name`` into the pybuild store at ``root``."""
    from builder.store import Store

    store = Store(root)
    manifest, config = image_blobs(store.layout, layers)
    store.put_manifest(manifest, [name])
    return manifest, config


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    """Run skopeo without touching the user's policy or caches."""
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed")
    return subprocess.run(
        ["skopeo", "--insecure-policy", *args], capture_output=True, text=True, timeout=120,
    )
