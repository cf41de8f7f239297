"""The first Containerfile container courses teach, on the Debian base made by mmdebstrap:
``apt-get install`` in RUN with the default flags, then the package runs in the image.
And pip behind the TLS-inspecting proxy, with the host's CA bundle as a build secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Pybuild
from tests.network.conftest import image_parts, layer_names

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def test_apt_get_install_with_default_flags_and_the_package_runs(
        tmp_path: Path, pybuild: Pybuild, debian_base: str) -> None:
    (tmp_path / "Containerfile").write_text(
        f"FROM {debian_base}\n"
        "RUN apt-get update && apt-get install -y --no-install-recommends hello "
        "&& rm -rf /var/lib/apt/lists/*\n"
        'CMD ["hello", "-g", "hello from the course"]\n')
    pybuild("bud", "-t", "hello:1.0", tmp_path)
    assert pybuild("run", "hello:1.0").stdout == "hello from the course\n"
    _, layers = image_parts(pybuild.root, "localhost/hello:1.0")
    names = layer_names(layers[-1])
    assert "usr/bin/hello" in names
    assert "etc/resolv.conf" not in names and "etc/hosts" not in names


def test_pip_behind_the_tls_inspecting_proxy_with_the_ca_as_a_secret(
        tmp_path: Path, pybuild: Pybuild, debian_base: str) -> None:
    if not CA_BUNDLE.exists():
        pytest.skip("no CA bundle on this host")
    (tmp_path / "Containerfile").write_text(
        f"FROM {debian_base}\n"
        "RUN apt-get update && apt-get install -y --no-install-recommends python3-pip "
        "&& rm -rf /var/lib/apt/lists/*\n"
        f"RUN --mount=type=secret,id=ca,target={CA_BUNDLE} PIP_CERT={CA_BUNDLE} "
        "pip install --break-system-packages --no-cache-dir six\n"
        "CMD [\"python3\", \"-c\", \"import six; print('six', six.__version__)\"]\n")
    pybuild("bud", "--secret", f"id=ca,src={CA_BUNDLE}", "-t", "pip:1", tmp_path)
    assert pybuild("run", "pip:1").stdout.startswith("six 1.")
    _, layers = image_parts(pybuild.root, "localhost/pip:1")
    assert all(CA_BUNDLE.read_bytes()[-200:] not in layer for layer in layers[-1:])
    assert "etc/ssl/certs/ca-certificates.crt" not in layer_names(layers[-1])
