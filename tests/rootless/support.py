"""Helpers of the rootless tests: readable base images, layer listings with xattrs, and
Buildah run by the rootless user."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from tests.build.conftest import run_buildah
from tests.build.imagetree import _blob, _manifest, _untar
from tests.lanes import RootlessUser


def readable(path: Path, user: RootlessUser) -> Path:
    """Let every user read ``path`` (a tree the test made as root) and reach it."""
    for directory, _, files in os.walk(path):
        os.chmod(directory, 0o755)
        for name in files:
            full = os.path.join(directory, name)
            if not os.path.islink(full):
                os.chmod(full, os.stat(full).st_mode | 0o444)
    user.reach(path)
    return path


def layout_path(reference: str) -> Path:
    """The directory of an ``oci:DIR:REF`` reference."""
    return Path(reference.removeprefix("oci:").rsplit(":", 1)[0])


def extend_layout(source: Path, ref: str, dest: Path, layer: bytes) -> str:
    """A copy of the image ``ref`` of OCI layout ``source`` with one more (uncompressed
    ``layer`` tar, gzipped) on top, as ``oci:dest:latest``."""
    shutil.copytree(source, dest)
    manifest = _manifest(source, ref)
    config = json.loads(_blob(source, manifest["config"]["digest"]))

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (dest / "blobs" / "sha256" / digest).write_bytes(data)
        return f"sha256:{digest}"

    blob = gzip.compress(layer, mtime=0)
    config["rootfs"]["diff_ids"].append("sha256:" + hashlib.sha256(layer).hexdigest())
    config["history"].append({"created_by": "extra layer"})
    config_bytes = json.dumps(config).encode()
    manifest["config"] = {**manifest["config"], "digest": put(config_bytes),
                          "size": len(config_bytes)}
    manifest["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                               "digest": put(blob), "size": len(blob)})
    manifest_bytes = json.dumps(manifest).encode()
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": put(manifest_bytes), "size": len(manifest_bytes),
        "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}
    (dest / "index.json").write_text(json.dumps(index))
    return f"oci:{dest}:latest"


Listing = dict[str, tuple[object, ...]]  # path -> (type, mode, uid, gid, size, link, xattrs)


def layer_listings(layout: Path, ref: str) -> list[Listing]:
    """Every layer of an image as {path: (type, mode, uid, gid, size, link, xattrs)},
    whiteouts included and mtimes left out."""
    manifest = _manifest(layout, ref)
    out = []
    for layer in manifest["layers"]:
        listing: Listing = {}
        with _untar(_blob(layout, layer["digest"])) as tar:
            for member in tar:
                xattrs = tuple(sorted(
                    (key.removeprefix("SCHILY.xattr."),
                     value.encode("utf-8", "surrogateescape"))
                    for key, value in member.pax_headers.items()
                    if key.startswith("SCHILY.xattr.")))
                listing[member.name.removeprefix("./").rstrip("/")] = (
                    member.type, member.mode, member.uid, member.gid, member.size,
                    member.linkname, xattrs)
        out.append(listing)
    return out


def devices(listing: Listing) -> set[str]:
    return {path for path, entry in listing.items()
            if entry[0] in (tarfile.CHRTYPE, tarfile.BLKTYPE)}


class RootlessBuildah:
    """The system's buildah run by the rootless user, with its own store under ``base``
    (``--isolation chroot``); images are read back through an ``oci:`` layout."""

    def __init__(self, user: RootlessUser, base: Path, driver: str = "overlay") -> None:
        self.user = user
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        user.reach(base)
        user.own(base)
        self.flags = ["--root", str(base / "root"), "--runroot", str(base / "run"),
                      "--storage-driver", driver]
        self.count = 0

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = run_buildah(
            self.user.command("buildah", *self.flags, *args, env={"BUILDAH_FORMAT": "oci"}),
            cwd=self.base, timeout=900)
        assert proc.returncode == 0, f"buildah {' '.join(args)}:\n{proc.stderr}"
        return proc

    def build(self, context: Path, *args: str) -> Path:
        """Build ``context`` and return the OCI layout holding the image as ``img``."""
        self.count += 1
        tag = f"localhost/cmp{self.count}:latest"
        self("bud", "-q", "--isolation", "chroot", "--layers", "-t", tag, *args, str(context))
        out = self.base / f"oci{self.count}"
        self("push", "-q", tag, f"oci:{out}:img")
        return out
