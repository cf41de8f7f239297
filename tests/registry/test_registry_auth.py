"""Authentication and TLS against real registries: htpasswd behind TLS, and Bearer tokens."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from registry_fixtures import (
    PASSWORD,
    USER,
    Registry,
    TokenServer,
    image_blobs,
    layer_tar,
    seed_store,
    sha256,
)

from builder.errors import AuthenticationError
from builder.image.layout import Layout
from builder.reference import parse_reference
from builder.registry.client import RegistryClient, RegistryOptions, fetch_image, send_image
from builder.registry.credentials import Credentials


@pytest.fixture
def stored(pybuild) -> str:
    seed_store(pybuild.root, "localhost/app:1", [layer_tar({"f": os.urandom(500)})])
    return "app:1"


def test_push_without_login_is_401(pybuild, secure_registry: Registry, stored: str) -> None:
    dest = f"{secure_registry.host}/auth/app:1"
    res = pybuild("push", "--cert-dir", secure_registry.cert_dir, stored, dest, check=False)
    assert res.returncode == 125
    assert f"Error: pushing to {dest}: authentication required (HTTP 401)" in res.stderr


def test_self_signed_certificate(pybuild, secure_registry: Registry, stored: str) -> None:
    dest = f"{secure_registry.host}/auth/app:1"
    res = pybuild("push", stored, dest, check=False)
    assert res.returncode == 125
    assert "certificate signed by unknown authority" in res.stderr
    assert "--cert-dir" in res.stderr  # the hint
    insecure = pybuild("push", "--tls-verify=false", stored, dest, check=False)
    assert "authentication required (HTTP 401)" in insecure.stderr


def test_login_push_logout(pybuild, secure_registry: Registry, stored: str, tmp_path: Path
                          ) -> None:
    authfile = tmp_path / "auth.json"
    host = secure_registry.host
    tls = ("--cert-dir", secure_registry.cert_dir, "--authfile", authfile)
    wrong = pybuild("login", *tls, "-u", USER, "--password-stdin", host,
                    input="not-the-password\n", check=False)
    assert wrong.returncode == 125
    assert f"logging in to {host}: invalid username or password" in wrong.stderr
    assert not authfile.exists()
    ok = pybuild("login", *tls, "-u", USER, "--password-stdin", host, input=PASSWORD + "\n")
    assert "Login Succeeded!" in ok.stdout
    assert stat.S_IMODE(authfile.stat().st_mode) == 0o600
    assert pybuild("login", "--get-login", "--authfile", authfile, host).stdout.strip() == USER
    res = pybuild("push", *tls, stored, f"{host}/auth/app:1")
    assert res.stdout.startswith("sha256:")
    pulled = pybuild("pull", "-q", *tls, f"{host}/auth/app:1")
    assert pulled.returncode == 0
    for result in (wrong, ok, res, pulled):
        assert PASSWORD not in result.output
    assert "Removed login credentials" in pybuild("logout", "--authfile", authfile, host).stdout
    again = pybuild("logout", "--authfile", authfile, host, check=False)
    assert again.returncode == 125 and "not logged in" in again.stderr


def test_creds_flag(pybuild, secure_registry: Registry, stored: str) -> None:
    dest = f"{secure_registry.host}/auth/creds:1"
    res = pybuild("push", "--tls-verify=false", "--creds", f"{USER}:{PASSWORD}", stored, dest)
    assert PASSWORD not in res.output
    bad = pybuild("push", "--tls-verify=false", "--creds", f"{USER}:nope", stored, dest,
                  check=False)
    assert "authentication required (HTTP 401)" in bad.stderr and "nope" not in bad.output


def test_bearer_token_flow(token_registry: tuple[Registry, TokenServer], tmp_path: Path) -> None:
    registry, tokens = token_registry
    layout = Layout(tmp_path / "src")
    manifest, _ = image_blobs(layout, [layer_tar({"t": os.urandom(300)})])
    ref = parse_reference(f"{registry.host}/tokens/app:1")
    anonymous = RegistryClient(registry.host, RegistryOptions(authfile=tmp_path / "none.json"))
    with pytest.raises(AuthenticationError, match="token refused"):
        send_image(anonymous, ref, layout, manifest)
    client = RegistryClient(registry.host, RegistryOptions(),
                            credentials=Credentials(USER, PASSWORD))
    assert send_image(client, ref, layout, manifest) == sha256(manifest)
    assert "repository:tokens/app:pull,push" in tokens.issued
    asked = len(tokens.issued)
    fetch_image(client, ref, Layout(tmp_path / "dest"))
    assert tokens.issued[asked:] == ["repository:tokens/app:pull"]  # one token per scope, cached
    wrong = RegistryClient(registry.host, RegistryOptions(), credentials=Credentials(USER, "x"))
    with pytest.raises(AuthenticationError, match="invalid username or password"):
        fetch_image(wrong, ref, Layout(tmp_path / "dest2"))
