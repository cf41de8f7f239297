"""Image signatures as containers/image makes them ("simple signing"), kept in the store.

``bud --sign-by FINGERPRINT`` signs each tag of the image it built, as Buildah's
commit does: the payload is containers/image's JSON claim that the manifest with
this digest is the image named by this reference (``"critical": {"identity":
{"docker-reference": ...}, "image": {"docker-manifest-digest": ...}, "type":
"atomic container signature"}``, ``"optional": {"creator", "timestamp"}``),
signed by the ``gpg`` binary into an OpenPGP message (not detached, as gpgme's
normal mode makes it). The signatures of a manifest are kept in the store under
``signatures/sha256=HEX/``, one per reference and key (signing again replaces it),
and go with the image when it is pushed to a
registry (``builder.registry.lookaside``), where skopeo, podman and CRI-O verify
them against ``policy.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from builder.errors import ImageError

__all__ = ["CREATOR", "gpg_sign", "save_signature", "signature_payload", "stored_signatures"]

CREATOR = "pybuild"
SIGNATURE_TYPE = "atomic container signature"


def signature_payload(reference: str, manifest_digest: str, *, creator: str = CREATOR,
                      timestamp: int | None = None) -> bytes:
    """The JSON a signature signs, with Go's map key order (sorted)."""
    claim = {
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": manifest_digest},
            "type": SIGNATURE_TYPE,
        },
        "optional": {"creator": creator,
                     "timestamp": int(time.time()) if timestamp is None else timestamp},
    }
    return json.dumps(claim, sort_keys=True, separators=(",", ":")).encode()


def gpg_sign(payload: bytes, fingerprint: str) -> bytes:
    """``payload`` signed with the secret key ``fingerprint`` (``$GNUPGHOME`` or the
    default keyring); the key must be usable without a prompt (no passphrase, or one
    gpg-agent already holds)."""
    gpg = shutil.which("gpg")
    what = f"signing with key {fingerprint}"
    if gpg is None:
        raise ImageError(f"{what}: the gpg binary is not installed",
                         hint="install the Debian package gpg")
    proc = subprocess.run(
        [gpg, "--batch", "--no-tty", "--pinentry-mode", "error", "--local-user", fingerprint,
         "--sign", "--output", "-"],
        input=payload, capture_output=True)
    if proc.returncode != 0 or not proc.stdout:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        raise ImageError(f"{what}: gpg failed: {detail[-1] if detail else proc.returncode}",
                         hint="the key must be in the keyring (gpg --list-secret-keys) and "
                              "usable without a passphrase prompt")
    return proc.stdout


def _directory(store_root: Path, manifest_digest: str) -> Path:
    algorithm, _, encoded = manifest_digest.partition(":")
    return Path(store_root) / "signatures" / f"{algorithm}={encoded}"


def stored_signatures(store_root: Path, manifest_digest: str) -> list[bytes]:
    """The signatures kept for a manifest, in a stable order."""
    directory = _directory(store_root, manifest_digest)
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".sig"))
    except FileNotFoundError:
        return []
    return [(directory / name).read_bytes() for name in names]


def save_signature(store_root: Path, manifest_digest: str, reference: str, fingerprint: str,
                   signature: bytes) -> None:
    """Keep ``signature`` with the manifest, replacing an earlier one by the same key
    for the same reference (written whole, then named)."""
    directory = _directory(store_root, manifest_digest)
    directory.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(f"{reference}\0{fingerprint}".encode()).hexdigest()[:16]
    target = directory / f"{name}.sig"
    tmp = directory / f".{name}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(signature)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
