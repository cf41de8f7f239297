"""``bud --sign-by FINGERPRINT``: signatures skopeo verifies.

A GPG key is made in the test. pybuild signs each tag as containers/image does
(simple signing), keeps the signature in its store, and writes it to the lookaside
storage ``registries.d`` names when it pushes. skopeo then copies the image under a
``signedBy`` policy: accepted for the signed name, refused for an unsigned image and
for another name (the signature names the reference it is valid for).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from registry_fixtures import Registry

from tests.build_registry.helpers import context
from tests.conftest import Pybuild

GPG = shutil.which("gpg")


@dataclass
class Keys:
    home: Path
    fingerprint: str
    public: Path


@pytest.fixture
def keys(tmp_path: Path) -> Iterator[Keys]:
    if GPG is None or shutil.which("skopeo") is None:
        pytest.skip("gpg and skopeo are needed")
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key",
                    "pybuild test <signer@example.invalid>", "default", "default", "never"],
                   env=env, check=True, capture_output=True)
    listing = subprocess.run(["gpg", "--batch", "--with-colons", "--list-secret-keys"],
                             env=env, check=True, capture_output=True, text=True).stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines()
                       if line.startswith("fpr:"))
    public = tmp_path / "signer.asc"
    public.write_bytes(subprocess.run(["gpg", "--batch", "--armor", "--export", fingerprint],
                                      env=env, check=True, capture_output=True).stdout)
    try:
        yield Keys(home, fingerprint, public)
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True)


@pytest.fixture
def signer(tmp_path: Path, keys: Keys, registry: Registry) -> Pybuild:
    """A runner whose GNUPGHOME holds the key and whose registries.d (under its HOME)
    sends the registry's signatures to a lookaside directory."""
    home = tmp_path / "home"
    (home / ".config/containers/registries.d").mkdir(parents=True)
    (home / ".config/containers/registries.d/test.yaml").write_text(
        f"docker:\n  {registry.host}:\n    lookaside: file://{tmp_path / 'sigstore'}\n")
    return Pybuild(tmp_path / "store", env={"GNUPGHOME": str(keys.home), "HOME": str(home)})


def _skopeo_copy(tmp_path: Path, keys: Keys, ref: str) -> subprocess.CompletedProcess[str]:
    policy = tmp_path / "policy.json"
    host = ref.split("/")[0]
    policy.write_text(json.dumps({
        "default": [{"type": "reject"}],
        "transports": {"docker": {host: [{"type": "signedBy", "keyType": "GPGKeys",
                                          "keyPath": str(keys.public)}]},
                       "oci": {"": [{"type": "insecureAcceptAnything"}]}}}))
    out = tmp_path / "copied"
    shutil.rmtree(out, ignore_errors=True)
    return subprocess.run(
        ["skopeo", "--policy", str(policy), "--registries.d",
         str(tmp_path / "home/.config/containers/registries.d"), "copy",
         "--remove-signatures", "--src-tls-verify=false", f"docker://{ref}", f"oci:{out}:x"],
        capture_output=True, text=True)


def test_signed_push_verifies_with_skopeo(tmp_path: Path, keys: Keys, signer: Pybuild,
                                          registry: Registry) -> None:
    app = context(tmp_path / "app", "FROM scratch\nCOPY f /f\n", {"f": "signed"})
    ref = f"{registry.host}/signed/app:1"
    res = signer("bud", "--sign-by", keys.fingerprint, "-t", ref, "--push", app)
    assert f"Signed {ref}@sha256:" in res.stdout and "Stored signatures in" in res.stdout
    stored = list((tmp_path / "sigstore" / "signed").glob("app@sha256=*/signature-1"))
    assert len(stored) == 1
    copied = _skopeo_copy(tmp_path, keys, ref)
    assert copied.returncode == 0, copied.stderr
    digest = "sha256:" + stored[0].parent.name.split("=", 1)[1]
    manifest = tmp_path / "manifest.json"
    manifest.write_bytes(subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
        check=True, capture_output=True).stdout)
    verified = subprocess.run(["skopeo", "standalone-verify", str(manifest), ref,
                               keys.fingerprint, str(stored[0])],
                              capture_output=True, text=True,
                              env={**os.environ, "GNUPGHOME": str(keys.home)})
    assert verified.returncode == 0 and digest in verified.stdout, verified.stderr


def test_pybuild_push_carries_signatures(tmp_path: Path, keys: Keys, signer: Pybuild,
                                         registry: Registry) -> None:
    app = context(tmp_path / "app", "FROM scratch\nCOPY f /f\n", {"f": "later"})
    ref = f"{registry.host}/later/app:1"
    signer("bud", "-q", "--sign-by", keys.fingerprint, "-t", ref, app)
    signer("push", "--tls-verify=false", ref)
    assert _skopeo_copy(tmp_path, keys, ref).returncode == 0
    other = f"{registry.host}/later/other:1"  # the same image under a name not signed
    signer("push", "--tls-verify=false", ref, f"docker://{other}")
    refused = _skopeo_copy(tmp_path, keys, other)
    assert refused.returncode != 0 and "Signature for identity" in refused.stderr


def test_unsigned_image_is_refused(tmp_path: Path, keys: Keys, signer: Pybuild,
                                   registry: Registry) -> None:
    app = context(tmp_path / "app", "FROM scratch\nCOPY f /f\n", {"f": "plain"})
    ref = f"{registry.host}/plain/app:1"
    signer("bud", "-q", "-t", ref, "--push", app)
    refused = _skopeo_copy(tmp_path, keys, ref)
    assert refused.returncode != 0 and "signature" in refused.stderr.lower()


SIGN_ERRORS = [
    (("--sign-by", "0" * 40, "-t", "x"), "signing with key " + "0" * 40 + ": gpg failed"),
    (("--sign-by", "{fpr}"), "name the image with -t"),
    (("--sign-by", "{fpr}", "--platform", "linux/amd64,linux/arm64", "--manifest", "l"),
     "several platforms"),
]


@pytest.mark.parametrize("flags,message", SIGN_ERRORS, ids=lambda v: str(v)[:40])
def test_sign_errors_come_before_the_build(flags: tuple[str, ...], message: str,
                                           tmp_path: Path, keys: Keys,
                                           signer: Pybuild) -> None:
    app = context(tmp_path / "app", "FROM scratch\nCOPY f /f\n", {"f": "x"})
    res = signer("bud", *[f.format(fpr=keys.fingerprint) for f in flags], app, check=False)
    assert res.returncode == 125 and message in res.stderr, res.output
    assert "STEP" not in res.stdout
