"""``pybuild bud`` through the real CLI: flags, output shape, stages, ARG scope, COPY/ADD."""

from __future__ import annotations

import http.server
import json
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.build.imagetree import read_image
from tests.conftest import CORPUS, Pybuild

BUD = CORPUS / "buildah-bud" / "bud"
IMAGE_ID = re.compile(r"^[0-9a-f]{64}$")


def _context(tmp_path: Path, containerfile: str, name: str = "Containerfile",
             **files: str) -> Path:
    context = tmp_path / "ctx"
    context.mkdir(exist_ok=True)
    (context / name).write_text(containerfile)
    for rel, text in files.items():
        (context / rel).parent.mkdir(parents=True, exist_ok=True)
        (context / rel).write_text(text)
    return context


def _image(pybuild: Pybuild, name: str = "localhost/x:latest") -> tuple[dict, dict]:
    return read_image(pybuild.root, name)


def _manifest(pybuild: Pybuild, name: str = "localhost/x:latest") -> dict:
    index = json.loads((pybuild.root / "index.json").read_text())
    for desc in index["manifests"]:
        if (desc.get("annotations") or {}).get("org.opencontainers.image.ref.name") == name:
            digest = desc["digest"].split(":")[1]
            return json.loads((pybuild.root / "blobs" / "sha256" / digest).read_text())
    raise KeyError(name)


def _labels(config: dict) -> dict[str, str]:
    """The image's labels without pybuild's identity label (see test_bud_flags)."""
    return {k: v for k, v in (config["config"].get("Labels") or {}).items()
            if k != "io.pybuild.version"}


def _env(config: dict) -> dict[str, str]:
    return dict(e.split("=", 1) for e in config["config"].get("Env", []))


# output


def test_output_single_stage(tmp_path: Path, pybuild: Pybuild) -> None:
    context = _context(tmp_path, "FROM scratch\nCOPY a /a\nENV X=1\n", a="a")
    res = pybuild("bud", "-t", "app:1.0", context)
    lines = res.stdout.splitlines()
    assert lines[:3] == ["STEP 1/3: FROM scratch", "STEP 2/3: COPY a /a", "STEP 3/3: ENV X=1"]
    assert lines[3] == "COMMIT localhost/app:1.0"
    assert re.fullmatch(r"--> [0-9a-f]{12}", lines[4])
    assert lines[5] == "Successfully tagged localhost/app:1.0"
    assert IMAGE_ID.match(lines[-1]) and lines[4][4:] == lines[-1][:12]


@pytest.mark.rootless
def test_output_multi_stage_and_quiet(tmp_path: Path, pybuild: Pybuild) -> None:
    context = _context(tmp_path, "FROM scratch AS a\nCOPY a /a\nFROM scratch\n"
                                 "COPY --from=a /a /b\n", a="a")
    res = pybuild("bud", context)
    assert res.stdout.startswith("[1/2] STEP 1/2: FROM scratch AS a\n[1/2] STEP 2/2: COPY")
    assert "[2/2] STEP 2/2: COPY --from=a /a /b" in res.stdout
    quiet = pybuild("bud", "-q", context)
    assert len(quiet.stdout.splitlines()) == 1 and IMAGE_ID.match(quiet.stdout.strip())


@pytest.mark.rootless
def test_build_alias_tags_and_iidfile(tmp_path: Path, pybuild: Pybuild) -> None:
    context = _context(tmp_path, "FROM scratch\nLABEL a=b\n")
    iid = tmp_path / "iid"
    res = pybuild("build", "-q", "-t", "one", "-t", "quay.example/two:2", "--iidfile", iid,
                  context)
    assert iid.read_text() == "sha256:" + res.stdout.strip()
    names = {d["annotations"]["org.opencontainers.image.ref.name"]
             for d in json.loads((pybuild.root / "index.json").read_text())["manifests"]}
    assert names == {"localhost/one:latest", "quay.example/two:2"}


# choosing the Containerfile


def test_containerfile_choice(tmp_path: Path, pybuild: Pybuild) -> None:
    context = _context(tmp_path, "FROM scratch\nLABEL from=dockerfile\n", name="Dockerfile")
    pybuild("bud", "-q", "-t", "x", context)
    assert _labels(_image(pybuild)[0]) == {"from": "dockerfile"}
    (context / "Containerfile").write_text("FROM scratch\nLABEL from=containerfile\n")
    pybuild("bud", "-q", "-t", "x", context)
    assert _labels(_image(pybuild)[0]) == {"from": "containerfile"}
    pybuild("bud", "-q", "-t", "x", "-f", "-", context, input="FROM scratch\nLABEL from=stdin\n")
    assert _labels(_image(pybuild)[0]) == {"from": "stdin"}
    (context / "Other").write_text("FROM scratch\nLABEL from=other\n")
    pybuild("bud", "-q", "-t", "x", "-f", "Other", context)
    assert _labels(_image(pybuild)[0]) == {"from": "other"}


# build args


def test_build_args_sources_and_precedence(tmp_path: Path, pybuild: Pybuild) -> None:
    context = _context(tmp_path, "FROM scratch\nARG A B C D=default\nENV A=$A B=$B C=$C D=$D\n")
    first = tmp_path / "first.args"
    first.write_text("# comment\nA=file1\nB=file1\n")
    second = tmp_path / "second.args"
    second.write_text("B=file2\n")
    pybuild.env["FROM_ENV"] = "environment"
    res = pybuild("bud", "-q", "-t", "x", "--build-arg-file", first, "--build-arg-file", second,
                  "--build-arg", "A=flag", "--build-arg", "C", "--build-arg", "UNUSED=1",
                  context)
    assert _env(_image(pybuild)[0]) | {"PATH": ""} == {
        "PATH": "", "A": "flag", "B": "file2", "C": "", "D": "default"}
    assert "[Warning] one or more build args were not consumed: [UNUSED]" in res.stderr
    pybuild.env["C"] = "from-env"
    pybuild("bud", "-q", "-t", "x", "--build-arg", "C", context)
    assert _env(_image(pybuild)[0])["C"] == "from-env"


def test_meta_args_in_from_and_platform_args(tmp_path: Path, pybuild: Pybuild) -> None:
    context = _context(
        tmp_path,
        "ARG BASE=first\nFROM scratch AS first\nLABEL stage=first\nFROM scratch AS second\n"
        "LABEL stage=second\nFROM $BASE\nARG BASE\nARG TARGETARCH TARGETPLATFORM\n"
        "ENV BASE=$BASE ARCH=$TARGETARCH PLATFORM=$TARGETPLATFORM\n")
    pybuild("bud", "-q", "-t", "x", "--platform", "linux/arm64/v8", context)
    config, _ = _image(pybuild)
    assert _labels(config) == {"stage": "first"}
    assert (config["architecture"], config["os"], config.get("variant")) == \
        ("arm64", "linux", "v8")
    env = _env(config)
    assert (env["BASE"], env["ARCH"], env["PLATFORM"]) == ("first", "arm64", "linux/arm64/v8")
    pybuild("bud", "-q", "-t", "x", "--build-arg", "BASE=second", context)
    assert _labels(_image(pybuild)[0]) == {"stage": "second"}


# ARG scope cases of Buildah's arg-scope table that need no RUN (the rest run with busybox)
ARG_SCOPE = [
    ("Containerfile.stage-overrides-header-copy-from", (), "b"),
    ("Containerfile.copy-from-arg", (), "a"),
    ("Containerfile.copy-from-arg", ("--build-arg", "SRC=b"), "b"),
]


@pytest.mark.parametrize("file,flags,expected", ARG_SCOPE)
def test_arg_scope_copy_from(file: str, flags: tuple[str, ...], expected: str, tmp_path: Path,
                             pybuild: Pybuild) -> None:
    text = (BUD / "arg-scope" / file).read_text()
    text = re.sub(r"(?m)^FROM (busybox|alpine) AS (\w+)\nRUN echo (\w+) > /from.txt",
                  r"FROM scratch AS \2\nLABEL x=\3\nCOPY \3.txt /from.txt", text)
    context = _context(tmp_path, text, a="a\n", b="b\n", **{"a.txt": "a", "b.txt": "b"})
    pybuild("bud", "-q", "-t", "x", *flags, context)
    _, tree = _image(pybuild)
    assert tree["from.txt"][4] == len(expected)
    layers = _manifest(pybuild)["layers"]
    assert len(layers) == 1


# stages


@pytest.mark.rootless
def test_target_builds_only_needed_stages(tmp_path: Path, pybuild: Pybuild) -> None:
    context = _context(
        tmp_path,
        "FROM scratch AS base\nCOPY a /a\nFROM scratch AS broken\nCOPY missing /\n"
        "FROM base AS app\nCOPY b /b\nFROM scratch\nCOPY --from=broken / /\n", a="a", b="b")
    res = pybuild("bud", "-t", "x", "--target", "APP", context)
    assert "[1/2] STEP 1/2: FROM scratch AS base" in res.stdout
    assert "broken" not in res.stdout
    assert sorted(_image(pybuild)[1]) == ["a", "b"]
    assert pybuild("bud", context, check=False).returncode == 125


@pytest.mark.rootless
def test_stage_as_base_and_image_as_copy_source(tmp_path: Path, pybuild: Pybuild) -> None:
    context = _context(tmp_path, "FROM scratch AS zero\nCOPY a /a\nFROM zero\nCOPY b /b\n",
                       a="a", b="b")
    pybuild("bud", "-q", "-t", "base-image", context)
    other = tmp_path / "other"
    other.mkdir()
    (other / "Containerfile").write_text(
        "FROM localhost/base-image\nFROM scratch\nCOPY --from=base-image /a /copied\n"
        "COPY --from=0 /b /b\n")
    pybuild("bud", "-q", "-t", "x", other)
    assert sorted(_image(pybuild)[1]) == ["b", "copied"]


# formats, metadata, compression


def test_format_docker_keeps_docker_only_fields(tmp_path: Path, pybuild: Pybuild) -> None:
    text = "FROM scratch\nSHELL [\"/bin/bash\", \"-c\"]\nHEALTHCHECK --interval=5s CMD true\n" \
           "ONBUILD LABEL triggered=yes\nCMD run me\n"
    context = _context(tmp_path, text)
    res = pybuild("bud", "-q", "-t", "x", context)
    assert "HEALTHCHECK is not supported for OCI image format" in res.stderr
    assert "Must use `docker` format" in res.stderr
    config = _image(pybuild)[0]["config"]
    assert "Healthcheck" not in config and "OnBuild" not in config and "Shell" not in config
    assert config["Cmd"] == ["/bin/bash", "-c", "run me"]
    res = pybuild("bud", "-q", "-t", "x", "--format", "docker", context)
    assert "not supported" not in res.stderr
    assert _manifest(pybuild)["mediaType"] == \
        "application/vnd.docker.distribution.manifest.v2+json"
    config = _image(pybuild)[0]["config"]
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000}
    assert config["OnBuild"] == ["LABEL triggered=yes"]
    assert config["Shell"] == ["/bin/bash", "-c"]
    pybuild.env["BUILDAH_FORMAT"] = "docker"
    pybuild("bud", "-q", "-t", "y", context)
    assert _manifest(pybuild, "localhost/y:latest")["mediaType"].startswith(
        "application/vnd.docker")


@pytest.mark.rootless
def test_onbuild_triggers_run_in_child(tmp_path: Path, pybuild: Pybuild) -> None:
    context = _context(tmp_path, "FROM scratch\nONBUILD COPY a /from-trigger\n"
                                 "ONBUILD LABEL triggered=yes\n", a="a")
    pybuild("bud", "-q", "--format", "docker", "-t", "parent", context)
    child = tmp_path / "child"
    child.mkdir()
    (child / "Containerfile").write_text("FROM localhost/parent\nLABEL child=1\n")
    (child / "a").write_text("child's a")
    pybuild("bud", "-q", "--format", "docker", "-t", "x", child)
    config, tree = _image(pybuild)
    assert _labels(config) == {"triggered": "yes", "child": "1"}
    assert "OnBuild" not in config["config"]
    assert tree["from-trigger"][4] == len("child's a")


def test_labels_annotations_compression(tmp_path: Path, pybuild: Pybuild) -> None:
    context = _context(tmp_path, "FROM scratch\nLABEL a=1\nCOPY f /f\n", f="data")
    for compression, media in (("zstd", "tar+zstd"), ("none", "tar"), ("gzip", "tar+gzip")):
        pybuild("bud", "-q", "-t", "x", "--label", "b=2", "--annotation", "note=hi",
                "--compression", compression, context)
        manifest = _manifest(pybuild)
        assert manifest["layers"][0]["mediaType"] == \
            f"application/vnd.oci.image.layer.v1.{media}"
        assert manifest["annotations"] == {"note": "hi"}
        assert _labels(_image(pybuild)[0]) == {"a": "1", "b": "2"}


def test_reproducible_with_timestamp(tmp_path: Path) -> None:
    context = _context(tmp_path, "FROM scratch\nWORKDIR /app\nCOPY . /app/\nENV X=1\n",
                       a="a", **{"d/b": "b"})
    digests = []
    for n, flags in enumerate([("--timestamp", "0"), ("--timestamp", "0"), ()]):
        runner = Pybuild(tmp_path / f"store{n}", env={"SOURCE_DATE_EPOCH": "0"} if not flags
                         else None)
        runner("bud", "-q", "-t", "x", *flags, context)
        index = json.loads((runner.root / "index.json").read_text())
        digests.append(index["manifests"][0]["digest"])
        config, _ = read_image(runner.root, "localhost/x:latest")
        assert config["created"] == "1970-01-01T00:00:00Z"
    assert digests[0] == digests[1] == digests[2]


def test_compat_flags_accepted(tmp_path: Path, pybuild: Pybuild) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret")
    context = _context(tmp_path, "FROM scratch\nLABEL a=b\n")
    built = pybuild("bud", "-q", "--layers", "--no-cache", "--isolation", "chroot",
                    "--network", "none", "--secret", f"id=s,src={secret}", "-t", "x", context)
    config, tree = read_image(pybuild.root, "localhost/x:latest")
    assert config["config"]["Labels"]["a"] == "b" and tree == {}
    assert built.stdout.strip() == pybuild("images", "-q", "--no-trunc", "x").stdout.strip() \
        .removeprefix("sha256:")
    assert "s3cret" not in json.dumps(config)  # the secret is not in the config or history


# COPY and ADD


@pytest.mark.rootless
def test_copy_parents_exclude_heredoc(tmp_path: Path, pybuild: Pybuild) -> None:
    context = tmp_path / "copy-parents"
    shutil.copytree(BUD / "copy-parents", context)
    (context / "Containerfile").write_text(
        "FROM scratch\nCOPY ./x/a.txt ./y/a.txt /no_parents/\n"
        "COPY --parents ./x/a.txt ./y/a.txt /parents/\n"
        "COPY --parents ./x/./y/* /parents_file_point/\n"
        "COPY --parents ./x/./y/ /parents_dir_point/\n"
        "COPY --exclude=**/*.txt --exclude=nothing* x /excluded/\n"
        "COPY <<EOF <<-END /docs/\nhello $HOME\nEOF\n\tbye\nEND\n")
    pybuild("bud", "-q", "-t", "x", context)
    tree = _image(pybuild)[1]
    for path in ("no_parents/a.txt", "parents/x/a.txt", "parents/y/a.txt",
                 "parents_file_point/y/b.txt", "parents_file_point/y/a.txt",
                 "parents_dir_point/y/b.txt", "parents_dir_point/y/a.txt", "docs/EOF",
                 "docs/END"):
        assert path in tree, (path, sorted(tree))
    assert not [p for p in tree if p.startswith("excluded/") and p.endswith(".txt")]


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "README.md").write_text("served\n")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.rootless
def test_add_url_with_checksum(tmp_path: Path, pybuild: Pybuild, http_server: str) -> None:
    import hashlib

    good = hashlib.sha256(b"served\n").hexdigest()
    context = _context(tmp_path, f"FROM scratch\nADD --checksum=sha256:{good} "
                                 f"{http_server}/README.md /\n")
    pybuild("bud", "-q", "-t", "x", context)
    assert _image(pybuild)[1]["README.md"][:2] == ("file", 0o600)
    bad = "0" * 64
    (context / "Containerfile").write_text(
        f"FROM scratch\nADD --checksum=sha256:{bad} {http_server}/README.md /\n")
    res = pybuild("bud", context, check=False)
    assert res.returncode == 125
    assert (f'unexpected response digest for "{http_server}/README.md": sha256:{good}, '
            f"want sha256:{bad}") in res.stderr


@pytest.mark.rootless
@pytest.mark.parametrize("mode", ["gz", "bz2", "xz", "", "zst"])
def test_add_extracts_archives_safely(mode: str, tmp_path: Path, pybuild: Pybuild) -> None:
    import io
    import tarfile

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, kind in (("ok/file", tarfile.REGTYPE), ("../escape", tarfile.REGTYPE),
                           ("/abs", tarfile.REGTYPE), ("etc", tarfile.DIRTYPE),
                           ("link", tarfile.SYMTYPE), ("link/through", tarfile.REGTYPE)):
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "/etc" if kind == tarfile.SYMTYPE else ""
            info.size = 1 if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(b"x") if info.size else None)
    data = raw.getvalue()
    if mode == "zst":
        import zstandard

        data = zstandard.ZstdCompressor().compress(data)
    elif mode:
        import bz2
        import gzip
        import lzma

        data = {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[mode](data)
    context = _context(tmp_path, "FROM scratch\nADD archive /dest/\nCOPY archive /copied\n")
    (context / "archive").write_bytes(data)
    pybuild("bud", "-q", "-t", "x", context)
    tree = _image(pybuild)[1]
    # as Buildah 1.28: the destination is the archive's root ("..", "/" and links stop there)
    assert {"dest/ok/file", "dest/abs", "dest/escape", "copied", "dest/etc/through"} <= set(tree)
    assert "escape" not in tree and "etc/through" not in tree
    assert tree["dest/link"][0] == "symlink"
