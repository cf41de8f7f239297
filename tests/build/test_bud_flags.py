"""bud's Buildah flags, one row (or test) each, through the real CLI.

Rules named here:

* ``--env``/``--unsetenv``/``--unsetlabel``/``--os-version``/``--os-feature`` change
  the committed config only, after every step (Buildah's ``StageExecutor.commit``):
  RUN steps never see ``--env``.
* The identity label is pybuild's own (``io.pybuild.version``), added as Buildah adds
  ``io.buildah.version``: by default, unless ``--timestamp``/``SOURCE_DATE_EPOCH``
  asks for a reproducible image (Buildah 1.33+; 1.28 adds it even then), always with
  ``--identity-label=true``, never with ``=false``; ``--label`` overrides it.
* ``--omit-history`` leaves no history at all, the base image's included.
* Usage errors exit 125, as Buildah's (cobra's) do; argparse's own status is 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from builder.cli import VERSION
from tests.build.imagetree import read_image
from tests.conftest import REPO, Pybuild

IDENTITY = "io.pybuild.version"


def _context(tmp_path: Path, containerfile: str, name: str = "Containerfile",
             **files: str) -> Path:
    context = tmp_path / "ctx"
    context.mkdir(exist_ok=True)
    (context / name).write_text(containerfile)
    for rel, text in files.items():
        (context / rel).parent.mkdir(parents=True, exist_ok=True)
        (context / rel).write_text(text)
    return context


def _config(pybuild: Pybuild, name: str = "localhost/x:latest") -> dict[str, Any]:
    return read_image(pybuild.root, name)[0]


def _env(config: dict[str, Any]) -> dict[str, str]:
    return dict(e.split("=", 1) for e in config["config"].get("Env", []))


def _labels(config: dict[str, Any]) -> dict[str, str]:
    return dict(config["config"].get("Labels") or {})


BASE = "FROM scratch\nENV A=1 B=2\nLABEL keep=yes drop=no\nCOPY f /f\n"

# id -> (flags, environment, check of the image config)
CONFIG_CASES: dict[str, tuple[tuple[str, ...], dict[str, str],
                              Callable[[dict[str, Any]], bool]]] = {
    "env-sets-and-expands": (
        ("--env", "C=$A-x", "--env", "D=${B}y", "--env", "A=changed"), {},
        lambda c: {k: _env(c)[k] for k in "ABCD"} == {"A": "changed", "B": "2", "C": "1-x",
                                                      "D": "2y"}),
    "env-key-alone-takes-pybuild's": (
        ("--env", "FROM_ENV",), {"FROM_ENV": "outside"},
        lambda c: _env(c)["FROM_ENV"] == "outside"),
    "env-missing-variable-is-its-name": (
        ("--env", "E=$NOPE",), {}, lambda c: _env(c)["E"] == "NOPE"),
    "unsetenv": (
        ("--unsetenv", "B", "--unsetenv", "PATH,NOPE"), {},
        lambda c: set(_env(c)) == {"A"}),
    "unsetlabel": (
        ("--unsetlabel", "drop", "--unsetlabel", IDENTITY), {},
        lambda c: _labels(c) == {"keep": "yes"}),
    "unsetlabel-after-label": (
        ("--label", "drop=again", "--unsetlabel", "drop"), {},
        lambda c: "drop" not in _labels(c)),
    "identity-label-by-default": (
        (), {}, lambda c: _labels(c)[IDENTITY] == VERSION),
    "identity-label-false": (
        ("--identity-label=false",), {}, lambda c: IDENTITY not in _labels(c)),
    "identity-label-not-with-timestamp": (
        ("--timestamp", "0"), {}, lambda c: IDENTITY not in _labels(c)),
    "identity-label-not-with-source-date-epoch": (
        (), {"SOURCE_DATE_EPOCH": "10"}, lambda c: IDENTITY not in _labels(c)),
    "identity-label-true-with-timestamp": (
        ("--timestamp", "0", "--identity-label"), {}, lambda c: IDENTITY in _labels(c)),
    "identity-label-overridden-by-label": (
        ("--label", f"{IDENTITY}=mine"), {}, lambda c: _labels(c)[IDENTITY] == "mine"),
    "omit-history": (
        ("--omit-history",), {}, lambda c: "history" not in c),
    "history-by-default": (
        (), {}, lambda c: len(c["history"]) == 3),
    "os-version-and-features": (
        ("--os-version", "10.0.17763", "--os-feature", "win32k", "--os-feature", "x",
         "--os-feature", "x-"), {},
        lambda c: (c["os.version"], c["os.features"]) == ("10.0.17763", ["win32k"])),
    "os-arch-variant": (
        ("--os", "linux", "--arch", "arm", "--variant", "v6"), {},
        lambda c: (c["os"], c["architecture"], c["variant"]) == ("linux", "arm", "v6")),
    "arch-alone-keeps-host-os": (
        ("--arch", "arm64",), {},
        lambda c: (c["os"], c["architecture"], c.get("variant")) == ("linux", "arm64", None)),
    "from-is-not-seen-without-stages": (
        ("--from", "scratch"), {}, lambda c: _env(c)["A"] == "1"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_config_flags(case: str, tmp_path: Path, pybuild: Pybuild) -> None:
    flags, env, check = CONFIG_CASES[case]
    context = _context(tmp_path, BASE, f="f")
    pybuild.env.update(env)
    pybuild("bud", "-q", "-t", "x", *flags, context)
    config = _config(pybuild)
    assert check(config), json.dumps(config, indent=1)


def test_env_missing_variable_warns(tmp_path: Path, pybuild: Pybuild) -> None:
    res = pybuild("bud", "-q", "--env", "E=$NOPE", _context(tmp_path, BASE, f="f"))
    assert "error expanding variable 'NOPE': no value set in image" in res.stderr


def test_unsetlabel_removes_a_base_image_label(tmp_path: Path, pybuild: Pybuild) -> None:
    base = _context(tmp_path, "FROM scratch\nLABEL from.base=1 other=2\n")
    pybuild("bud", "-q", "-t", "base", base)
    child = tmp_path / "child"
    child.mkdir()
    (child / "Containerfile").write_text("FROM localhost/base\nLABEL mine=3\n")
    pybuild("bud", "-q", "-t", "x", "--unsetlabel", "from.base", child)
    assert _labels(_config(pybuild)) == {"other": "2", "mine": "3", IDENTITY: VERSION}


def test_omit_history_drops_the_base_history(tmp_path: Path, pybuild: Pybuild) -> None:
    pybuild("bud", "-q", "-t", "base", _context(tmp_path, BASE, f="f"))
    child = tmp_path / "child"
    child.mkdir()
    (child / "Containerfile").write_text("FROM localhost/base\nLABEL mine=3\n")
    pybuild("bud", "-q", "-t", "x", "--omit-history", child)
    config = _config(pybuild)
    assert "history" not in config and len(config["rootfs"]["diff_ids"]) == 1
    assert _config(pybuild, "localhost/base:latest")["history"]  # the base keeps its own


# platform flags

PLATFORM_ERRORS = [
    (("--platform", "linux/arm64", "--os", "linux"), "cannot be used with --os"),
    (("--all-platforms", "--platform", "linux/arm64"), "cannot be used with --platform"),
    (("--all-platforms",), "uses no base image but scratch"),
    (("--logsplit",), "cannot be used without --logfile"),
    (("-D", "--compression", "zstd"), "conflicts with --compression zstd"),
    (("--output", "type=zip,dest=x"), "unknown type 'zip'"),
    (("--output", "type=local,dest=-"), "type=local cannot write to stdout"),
    (("--output", "type=tar"), "type= and dest= are both required"),
    (("--build-context", "nameonly"), "expected NAME=VALUE"),
    (("--build-context", "x=docker-image://"), "no image named"),
]


@pytest.mark.parametrize("flags,message", PLATFORM_ERRORS, ids=lambda v: str(v))
def test_flag_errors_exit_125(flags: tuple[str, ...], message: str, tmp_path: Path,
                              pybuild: Pybuild) -> None:
    res = pybuild("bud", *flags, _context(tmp_path, BASE, f="f"), check=False)
    assert res.returncode == 125, res.output
    assert message in res.stderr


USAGE_ERRORS = [
    ("bud", "--no-such-flag"),
    ("bud", "--identity-label=maybe"),
    ("bud", "--jobs", "many"),
    ("no-such-command",),
    ("images", "--sort", "colour"),
]


@pytest.mark.parametrize("argv", USAGE_ERRORS, ids=" ".join)
def test_usage_errors_exit_125_as_buildah(argv: tuple[str, ...], pybuild: Pybuild) -> None:
    res = pybuild(*argv, check=False)
    assert res.returncode == 125, res.output
    assert res.stderr.startswith("Error: pybuild")


# compatibility flags: same image as without them

NO_OPS = [("--rm",), ("--rm=false",), ("--force-rm",), ("--force-rm=true",), ("--compress",),
          ("--disable-content-trust",), ("--disable-compression=false",), ("-D=false",)]


@pytest.mark.parametrize("flags", NO_OPS, ids=" ".join)
def test_compatibility_flags_change_nothing(flags: tuple[str, ...], tmp_path: Path,
                                           pybuild: Pybuild) -> None:
    context = _context(tmp_path, BASE, f="f")
    plain = pybuild("bud", "-q", "--timestamp", "0", context).stdout
    assert pybuild("bud", "-q", "--timestamp", "0", *flags, context).stdout == plain
    assert "no effect" in pybuild("bud", "--help").stdout


@pytest.mark.parametrize("flags", [("-D",), ("--disable-compression",),
                                   ("--disable-compression=true", "--compression", "none")],
                         ids=" ".join)
def test_disable_compression_is_compression_none(flags: tuple[str, ...], tmp_path: Path,
                                                 pybuild: Pybuild) -> None:
    pybuild("bud", "-q", "-t", "x", *flags, _context(tmp_path, BASE, f="f"))
    index = json.loads((pybuild.root / "index.json").read_text())
    digest = index["manifests"][-1]["digest"].split(":")[1]
    manifest = json.loads((pybuild.root / "blobs" / "sha256" / digest).read_text())
    assert manifest["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar"


# --from and --skip-unused-stages


def test_from_replaces_the_first_base(tmp_path: Path, pybuild: Pybuild) -> None:
    pybuild("bud", "-q", "-t", "base", _context(tmp_path, "FROM scratch\nLABEL base=yes\n"))
    other = tmp_path / "other"
    other.mkdir()
    (other / "Containerfile").write_text(
        "FROM localhost/not-there AS first\nLABEL stage=first\n"
        "FROM localhost/also-not-there\nCOPY --from=first /x /x\n")
    res = pybuild("bud", "-t", "x", "--from", "scratch", "--target", "first", other)
    assert "STEP 1/2: FROM scratch AS first" in res.stdout
    pybuild("bud", "-q", "-t", "x", "--from", "localhost/base", "--target", "first", other)
    assert _labels(_config(pybuild))["base"] == "yes"
    res = pybuild("bud", "-q", "--from", "scratch", other, check=False)
    assert res.returncode == 125 and "also-not-there" in res.stderr  # only the first FROM


def test_skip_unused_stages(tmp_path: Path, pybuild: Pybuild) -> None:
    context = _context(tmp_path, "FROM scratch AS unused\nLABEL u=1\nFROM scratch AS used\n"
                                 "LABEL a=1\nFROM scratch AS after\nLABEL b=1\n"
                                 "FROM used\nLABEL c=1\n")
    default = pybuild("bud", context).stdout
    assert "AS unused" not in default and "AS after" not in default
    assert "AS unused" not in pybuild("bud", "--skip-unused-stages", context).stdout
    every = pybuild("bud", "--skip-unused-stages=false", "--target", "after", context).stdout
    assert "[1/3] STEP 1/2: FROM scratch AS unused" in every
    assert "[2/3] STEP 1/2: FROM scratch AS used" in every
    assert "[3/3] STEP 1/2: FROM scratch AS after" in every
    every = pybuild("bud", "--skip-unused-stages=false", context).stdout
    assert every.count("STEP 1/2: FROM") == 4


# Containerfile.in and cpp


def test_containerfile_in_goes_through_cpp(tmp_path: Path, pybuild: Pybuild) -> None:
    context = _context(tmp_path, '#include "common.in"\n#ifdef WITH_LABEL\nLABEL flag=set\n'
                                 "#endif\nCOPY f /f\n", name="Containerfile.in",
                       **{"common.in": "FROM scratch\nLABEL common=yes\n", "f": "f"})
    pybuild("bud", "-q", "-t", "x", "-f", "Containerfile.in", context)
    assert _labels(_config(pybuild)).keys() >= {"common"}
    assert "flag" not in _labels(_config(pybuild))
    pybuild("bud", "-q", "-t", "x", "-f", "Containerfile.in", "--cpp-flag=-DWITH_LABEL",
            context)
    assert _labels(_config(pybuild))["flag"] == "set"
    pybuild.env["BUILDAH_CPPFLAGS"] = "-DWITH_LABEL"
    pybuild("bud", "-q", "-t", "y", "-f", "Containerfile.in", context)
    assert _labels(_config(pybuild, "localhost/y:latest"))["flag"] == "set"


def test_cpp_failure_is_reported(tmp_path: Path, pybuild: Pybuild) -> None:
    """As Buildah: cpp's complaint is shown as a warning and its output is used; here
    that output holds no instruction, so the build fails."""
    context = _context(tmp_path, '#include "missing.in"\n', name="Containerfile.in")
    res = pybuild("bud", "-f", "Containerfile.in", context, check=False)
    assert res.returncode != 0
    assert "WARN[0000] Ignoring <stdin>" in res.stderr and "fatal error: missing.in" in res.stderr
    assert "Containerfile.in (preprocessed)" in res.stderr


# --decryption-key


def test_encrypted_layers_are_refused(tmp_path: Path, pybuild: Pybuild) -> None:
    """A base whose layer is encrypted (ocicrypt media type) is refused before any
    extraction, naming the layer; --decryption-key does not change that."""
    from builder.image.layout import Layout
    from builder.image.spec import (
        MEDIA_OCI_CONFIG,
        MEDIA_OCI_MANIFEST,
        Descriptor,
        ImageConfig,
        Index,
        Manifest,
    )

    layout = Layout(tmp_path / "enc", create=True)
    layer = b"\x00" * 64  # opaque ciphertext
    layer_digest, layer_size = layout.put_blob(layer)
    config = ImageConfig("amd64", "linux", diff_ids=["sha256:" + "0" * 64])
    config_digest, config_size = layout.put_blob(config.to_json())
    media = "application/vnd.oci.image.layer.v1.tar+gzip+encrypted"
    manifest = Manifest(Descriptor(MEDIA_OCI_CONFIG, config_digest, config_size),
                        [Descriptor(media, layer_digest, layer_size)])
    data = manifest.to_json()
    digest, size = layout.put_blob(data)
    layout.write_index(Index([Descriptor(MEDIA_OCI_MANIFEST, digest, size,
                                         annotations={"org.opencontainers.image.ref.name":
                                                      "enc"})]))
    key = tmp_path / "key.pem"
    key.write_text("not used")
    context = _context(tmp_path, f"FROM oci:{tmp_path / 'enc'}:enc\nLABEL x=1\n")
    for flags in ((), ("--decryption-key", str(key))):
        res = pybuild("bud", *flags, context, check=False)
        assert res.returncode == 125, res.output
        assert f"layer {layer_digest} is encrypted" in res.stderr
        assert "ocicrypt is not implemented" in res.stderr


# --logfile and --logsplit


def test_logfile_takes_all_output(tmp_path: Path, pybuild: Pybuild) -> None:
    log = tmp_path / "build.log"
    res = pybuild("bud", "-t", "x", "--logfile", log, "--env", "E=$NOPE",
                  _context(tmp_path, BASE, f="f"))
    assert res.stdout == "" and res.stderr == ""
    text = log.read_text()
    assert "STEP 1/4: FROM scratch" in text and "Successfully tagged localhost/x:latest" in text
    assert "no value set in image" in text
    assert oct(log.stat().st_mode & 0o777) == "0o600"


def test_logsplit_writes_one_file_per_platform(tmp_path: Path, pybuild: Pybuild) -> None:
    log = tmp_path / "build.log"
    pybuild("bud", "--logfile", log, "--logsplit", "--platform", "linux/amd64,linux/arm64",
            "--manifest", "list", _context(tmp_path, BASE, f="f"))
    for arch in ("amd64", "arm64"):
        text = (tmp_path / f"build.log_linux_{arch}").read_text()
        assert "STEP 4/4: COPY f /f" in text, text
    assert "Building for linux/arm64" not in (tmp_path / "build.log_linux_amd64").read_text()


# RUN steps: --stdin, and --env is not seen by RUN


@pytest.mark.sandbox
def test_stdin_reaches_run_steps(tmp_path: Path, with_busybox: Pybuild) -> None:
    context = _context(tmp_path, "FROM localhost/busybox\nRUN cat > /got; wc -c < /got\n")
    with_busybox("bud", "-q", "-t", "x", "--stdin", "--no-cache", context, input="typed\n")
    _, tree = read_image(with_busybox.root, "localhost/x:latest")
    assert tree["got"][4] == len("typed\n")
    with_busybox("bud", "-q", "-t", "x", "--no-cache", context, input="typed\n")
    _, tree = read_image(with_busybox.root, "localhost/x:latest")
    assert tree["got"][4] == 0  # without --stdin a step reads nothing


@pytest.mark.sandbox
def test_env_flag_is_not_seen_by_run(tmp_path: Path, with_busybox: Pybuild) -> None:
    context = _context(tmp_path, "FROM localhost/busybox\nRUN echo \"[$FLAG]\" > /seen\n")
    with_busybox("bud", "-q", "-t", "x", "--env", "FLAG=set", context)
    _, tree = read_image(with_busybox.root, "localhost/x:latest")
    assert tree["seen"][4] == len("[]\n")
    assert _env(_config(with_busybox))["FLAG"] == "set"


def test_quiet_flag_outputs_only_the_id_with_new_flags(tmp_path: Path, pybuild: Pybuild) -> None:
    """Every new flag together, through the installed entry point as a user types it."""
    context = _context(tmp_path, BASE, f="f")
    env = {**os.environ, "PYBUILD_ROOT": str(pybuild.root)}
    proc = subprocess.run(
        [sys.executable, "-m", "builder", "bud", "-q", "--env", "X=1", "--unsetenv", "B",
         "--unsetlabel", "drop", "--identity-label=false", "--omit-history", "--os-version",
         "1", "--os-feature", "f", "--skip-unused-stages=true", "--rm", "--force-rm",
         "--compress", "--disable-content-trust", "-t", "x", str(context)],
        capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.split()) == 1
