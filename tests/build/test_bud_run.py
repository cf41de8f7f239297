"""Builds with RUN steps, FROM the busybox image pybuild builds from the examples.

Tests marked ``rootless`` run as root and as an unprivileged user (tests/lanes.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import CORPUS, Pybuild

pytestmark = pytest.mark.sandbox

ARG_SCOPE = CORPUS / "buildah-bud" / "bud" / "arg-scope"

# Buildah's arg-scope table: (case, build args, file, expected text)
TABLE = [
    ("from-arg", (), "/base.txt", "alpine"),
    ("from-arg", ("BASE=busybox",), "/base.txt", "busybox"),
    ("stage-overrides-header", (), "/foo.txt", "stage"),
    ("multiple-args-stage-overrides-one", (), "/out.txt", "9 1"),
    ("multiple-args-stage-only", (), "/out.txt", "1 2"),
    ("multiple-args-one-step", (), "/out.txt", "0 1"),
    ("multiple-args-one-step", ("bar=88",), "/out.txt", "0 88"),
    ("multiple-args-one-step", ("foo=99", "bar=88"), "/out.txt", "99 88"),
    ("arg-mixed-defaults", (), "/out.txt", "set"),
    ("arg-mixed-defaults", ("a=given",), "/out.txt", "given set"),
]


@pytest.mark.parametrize("case,build_args,file,expected", TABLE)
def test_arg_scope_table(case: str, build_args: tuple[str, ...], file: str, expected: str,
                         tmp_path: Path, with_busybox: Pybuild) -> None:
    text = (ARG_SCOPE / f"Containerfile.{case}").read_text()
    # every base is the local busybox; the value of BASE still says what was asked for
    text = re.sub(r"(?m)^FROM \S+", "FROM localhost/busybox", text)
    (tmp_path / "Containerfile").write_text(f"{text}\nRUN cat {file}\n")
    flags = [f"--build-arg={arg}" for arg in build_args]
    res = with_busybox("bud", *flags, tmp_path)
    assert expected in res.stdout.split(f"RUN cat {file}\n", 1)[1]


@pytest.mark.rootless
def test_failing_run_reports_status(tmp_path: Path, with_busybox: Pybuild) -> None:
    (tmp_path / "Containerfile").write_text("FROM localhost/busybox\nRUN exit 2\n")
    res = with_busybox("bud", "-t", "never", tmp_path, check=False)
    assert res.returncode == 2
    assert 'error building at STEP "RUN exit 2": exit status 2' in res.stderr
    assert "Containerfile:2:1" in res.stderr
    assert "never" not in (with_busybox.root / "index.json").read_text()


@pytest.mark.rootless
def test_run_env_user_workdir_secret_and_mount_from(tmp_path: Path,
                                                    with_busybox: Pybuild) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cret")
    (tmp_path / "Containerfile").write_text(
        "FROM localhost/busybox AS data\nRUN echo from-stage > /data.txt\n"
        "FROM localhost/busybox\nARG GREETING=hi\nENV WHO=world\nWORKDIR /work/dir\n"
        "RUN echo \"$GREETING $WHO $(pwd) $(id -u)\"\n"
        "RUN --mount=type=secret,id=token cat /run/secrets/token\n"
        "RUN --mount=type=bind,from=data,target=/mnt cat /mnt/data.txt\n"
        "USER nobody\nRUN id -u\n")
    res = with_busybox("bud", "--secret", f"id=token,src={secret}", tmp_path)
    assert "hi world /work/dir 0" in res.stdout
    assert "s3cret" in res.stdout
    assert "from-stage" in res.stdout
    assert "65534" in res.stdout


@pytest.mark.rootless
def test_copy_chown_by_name_from_image_passwd(tmp_path: Path, with_busybox: Pybuild) -> None:
    (tmp_path / "f").write_text("f")
    (tmp_path / "Containerfile").write_text(
        "FROM localhost/busybox\nRUN echo 'app:x:1234:4321::/:/bin/sh' >> /etc/passwd && "
        "echo 'staff:x:777:' >> /etc/group\n"
        "COPY --chown=app f /by-user\nCOPY --chown=app:staff f /by-both\n"
        "COPY --chown=5:6 --chmod=u+x,g-r f /numeric\n"
        "RUN stat -c '%n %u %g %a' /by-user /by-both /numeric\n")
    res = with_busybox("bud", tmp_path)
    assert "/by-user 1234 4321 644" in res.stdout
    assert "/by-both 1234 777 644" in res.stdout
    assert "/numeric 5 6 704" in res.stdout


@pytest.mark.rootless
def test_terminated_build_writes_no_tag(tmp_path: Path, with_busybox: Pybuild) -> None:
    import os
    import subprocess

    from tests.build.test_bud_errors import store_hash

    (tmp_path / "Containerfile").write_text(
        "FROM localhost/busybox\nRUN echo data > /f\nRUN echo started && sleep 30\n")
    with_busybox("from", "localhost/busybox")  # the base layer is extracted before `before`
    before = store_hash(with_busybox.root)
    proc = subprocess.Popen([*with_busybox.argv(), "bud", "-t", "cut", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=with_busybox.env)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "started":
            break
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "cut" not in (with_busybox.root / "index.json").read_text()
    assert store_hash(with_busybox.root) == before
    assert not os.listdir(with_busybox.root / "workspaces")


def test_add_archive_onto_debian_merged_usr(tmp_path: Path, pybuild: Pybuild,
                                            debian_base: str) -> None:
    """ADD unpacks with the hardened extractor onto a real root: Debian's ``/bin`` is a
    symlink to ``usr/bin``, so ``bin/hello`` lands in ``/usr/bin`` and ``/bin`` stays a
    link (as Buildah does); the base itself was verified when it was imported."""
    import gzip
    import io
    import tarfile

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        script = b"#!/bin/sh\necho hello from the archive\n"
        info = tarfile.TarInfo("bin/hello")
        info.size, info.mode = len(script), 0o755
        tar.addfile(info, io.BytesIO(script))
    context = tmp_path / "context"
    context.mkdir()
    (context / "tools.tar.gz").write_bytes(gzip.compress(raw.getvalue()))
    (context / "Containerfile").write_text(
        f"FROM {debian_base}\nADD tools.tar.gz /\n"
        "RUN test -L /bin && test -x /usr/bin/hello && hello > /ran\nCMD [\"hello\"]\n")
    pybuild("bud", "-q", "-t", "with-tools", context)
    assert pybuild("run", "with-tools").stdout == "hello from the archive\n"
    assert pybuild("run", "with-tools", "cat", "/ran").stdout == "hello from the archive\n"
