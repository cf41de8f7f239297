"""Tables for what needs no registry: references, registries.conf, auth.json, challenges."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from builder.errors import AuthenticationError, RegistryError, UsageError
from builder.reference import parse_reference
from builder.registry.auth import parse_challenge
from builder.registry.config import load_registries_conf
from builder.registry.credentials import (
    Credentials,
    auth_file_path,
    find_credentials,
    remove_credentials,
    store_credentials,
)

DIGEST = "sha256:" + "ab" * 32

REFERENCES = [
    ("busybox", "docker.io/library/busybox:latest"),
    ("docker://busybox:1.36", "docker.io/library/busybox:1.36"),
    ("index.docker.io/foo/bar", "docker.io/foo/bar:latest"),
    ("quay.io/a/b/c:v1", "quay.io/a/b/c:v1"),
    ("127.0.0.1:5000/app:1", "127.0.0.1:5000/app:1"),
    ("localhost/app", "localhost/app:latest"),
    (f"host.io/app@{DIGEST}", f"host.io/app@{DIGEST}"),
    (f"host.io/app:v2@{DIGEST}", f"host.io/app:v2@{DIGEST}"),
]


@pytest.mark.parametrize(("text", "expected"), REFERENCES, ids=[r[0] for r in REFERENCES])
def test_reference(text: str, expected: str) -> None:
    assert str(parse_reference(text)) == expected


@pytest.mark.parametrize("text", ["UPPER/case", "host.io/app:bad tag", "a@sha256:short", ""])
def test_bad_reference(text: str) -> None:
    with pytest.raises(UsageError, match="parsing reference"):
        parse_reference(text)


CONF = """
unqualified-search-registries = ["first.example", "docker.io"]

[aliases]
"web" = "quay.io/team/web"

[[registry]]
prefix = "docker.io/library"
location = "mirror-of-hub.example/lib"

[[registry]]
location = "blocked.example"
blocked = true

[[registry]]
location = "plain.example:5000"
insecure = true

[[registry]]
location = "origin.example"
[[registry.mirror]]
location = "fast.example"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "any.example"
"""


@pytest.fixture
def conf_file(tmp_path: Path) -> Path:
    path = tmp_path / "registries.conf"
    path.write_text(CONF)
    return path


def endpoints(conf_file: Path, ref: str) -> list[str]:
    conf = load_registries_conf(conf_file)
    return [f"{e.reference}{' insecure' if e.insecure else ''}"
            for e in conf.endpoints(parse_reference(ref))]


def test_search_and_aliases(conf_file: Path) -> None:
    conf = load_registries_conf(conf_file)
    assert [str(r) for r in conf.resolve_short_name("app:1")] == [
        "first.example/app:1", "docker.io/library/app:1"]
    assert [str(r) for r in conf.resolve_short_name("web:2")] == ["quay.io/team/web:2"]
    assert [str(r) for r in conf.resolve_short_name("quay.io/x/y")] == ["quay.io/x/y:latest"]


def test_prefix_rewrite_mirrors_insecure(conf_file: Path) -> None:
    assert endpoints(conf_file, "docker.io/library/busybox:1") == [
        "mirror-of-hub.example/lib/busybox:1"]
    assert endpoints(conf_file, "docker.io/other/x") == ["docker.io/other/x:latest"]
    assert endpoints(conf_file, "plain.example:5000/x") == ["plain.example:5000/x:latest insecure"]
    assert endpoints(conf_file, "origin.example/x:1") == [
        "any.example/x:1", "origin.example/x:1"]
    assert endpoints(conf_file, f"origin.example/x@{DIGEST}") == [
        f"fast.example/x@{DIGEST}", f"any.example/x@{DIGEST}", f"origin.example/x@{DIGEST}"]


def test_blocked(conf_file: Path) -> None:
    with pytest.raises(RegistryError, match="blocked.example is blocked in registries.conf"):
        endpoints(conf_file, "blocked.example/x")


def test_env_and_v1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "v1.conf"
    path.write_text('[registries.search]\nregistries = ["one.example"]\n'
                    '[registries.insecure]\nregistries = ["one.example"]\n')
    monkeypatch.setenv("CONTAINERS_REGISTRIES_CONF", str(path))
    conf = load_registries_conf()
    assert conf.unqualified_search == ["one.example"]
    assert conf.is_insecure("one.example")


def test_no_search_registries(tmp_path: Path) -> None:
    path = tmp_path / "empty.conf"
    path.write_text("")
    with pytest.raises(UsageError, match="no unqualified-search-registries"):
        load_registries_conf(path).resolve_short_name("app")


def test_credentials_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    path = store_credentials("reg.example", Credentials("me", "pw:with:colons"))
    assert path == tmp_path / "run" / "containers" / "auth.json" == auth_file_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    store_credentials("reg.example/team", Credentials("teamer", "x"))
    assert find_credentials("reg.example", "team/app") == Credentials("teamer", "x")
    found = find_credentials("reg.example", "other/app")
    assert found is not None and found.password == "pw:with:colons"
    assert "pw" not in repr(found)
    # Docker's file is read too, with its index.docker.io key
    docker = tmp_path / "home" / ".docker" / "config.json"
    docker.parent.mkdir(parents=True)
    auth = base64.b64encode(b"hubuser:hubpw").decode()
    docker.write_text(json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": auth}}}))
    assert find_credentials("docker.io", "library/busybox") == Credentials("hubuser", "hubpw")
    assert remove_credentials("reg.example")
    assert not remove_credentials("reg.example")
    assert find_credentials("reg.example", "other/app") is None
    assert remove_credentials(None)
    assert json.loads(path.read_text()) == {"auths": {}}


def test_explicit_authfile_only(tmp_path: Path) -> None:
    authfile = tmp_path / "mine.json"
    store_credentials("r.example", Credentials("a", "b"), authfile=authfile)
    assert find_credentials("r.example", authfile=authfile) == Credentials("a", "b")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(AuthenticationError, match="reading auth file"):
        find_credentials("r.example", authfile=bad)
    assert os.stat(authfile).st_mode & 0o077 == 0


CHALLENGES = [
    ('Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull"',
     ("bearer", {"realm": "https://auth.example/token", "service": "reg",
                 "scope": "repository:a/b:pull"})),
    ('Basic realm="pybuild-test"', ("basic", {"realm": "pybuild-test"})),
    ('Bearer realm=https://x/t, service=s', ("bearer", {"realm": "https://x/t", "service": "s"})),
    ('Bearer realm="a\\"b",error="invalid_token"',
     ("bearer", {"realm": 'a"b', "error": "invalid_token"})),
]


@pytest.mark.parametrize(("header", "expected"), CHALLENGES)
def test_parse_challenge(header: str, expected: tuple[str, dict[str, str]]) -> None:
    assert parse_challenge(header) == expected


def _manifest(media_type: str, layer_type: str) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": media_type,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": DIGEST, "size": 1},
        "layers": [{"mediaType": layer_type, "digest": DIGEST, "size": 2}],
    }).encode()


def test_convert_manifest() -> None:
    from builder.errors import ImageError
    from builder.registry.client import convert_manifest

    oci = _manifest("application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.oci.image.layer.v1.tar+gzip")
    assert convert_manifest(oci, None) is oci and convert_manifest(oci, "oci") is oci
    docker = json.loads(convert_manifest(oci, "docker"))
    assert docker["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert docker["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    assert docker["layers"][0]["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    back = json.loads(convert_manifest(json.dumps(docker).encode(), "oci"))
    assert back == json.loads(oci)
    zstd = _manifest("application/vnd.oci.image.manifest.v1+json",
                     "application/vnd.oci.image.layer.v1.tar+zstd")
    with pytest.raises(ImageError, match="cannot express layer type"):
        convert_manifest(zstd, "docker")


INDEX = {"manifests": [
    {"digest": "a", "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
    {"digest": "b", "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
    {"digest": "c", "platform": {"os": "linux", "architecture": "amd64"}},
]}


@pytest.mark.parametrize(("wanted", "digest"), [
    # containerd's rule: a missing variant is the architecture's default (arm: v7)
    ("linux/arm/v7", "b"), ("linux/arm", "b"), ("linux/arm/v6", "a"), ("linux/amd64", "c"),
    ("linux/amd64/v3", "c"),
])
def test_choose_manifest(wanted: str, digest: str) -> None:
    from builder.platform import parse_platform
    from builder.registry.client import choose_manifest

    assert choose_manifest(INDEX, parse_platform(wanted))["digest"] == digest


def test_choose_manifest_missing() -> None:
    from builder.errors import ImageError
    from builder.platform import parse_platform
    from builder.registry.client import choose_manifest

    with pytest.raises(ImageError, match="it has linux/amd64, linux/arm/v6, linux/arm/v7"):
        choose_manifest(INDEX, parse_platform("linux/s390x"))
