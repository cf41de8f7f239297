"""RUN --mount: the mounts in a real sandbox over a Workspace."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from builder.executor.mounts import resolve_mounts
from builder.executor.runspec import RunSpec
from builder.executor.sandbox import run_in_sandbox
from builder.instructions.mounts import parse_mount
from builder.rootfs.workspace import Workspace, detect_driver
from builder.store import Store

PATH = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"

@pytest.fixture(params=["overlay", "vfs"])
def workspace(request, tmp_path, busybox_root):
    store = Store(tmp_path / "store")
    if request.param == "overlay" and detect_driver(store.root) != "overlay":
        pytest.skip("overlay cannot be mounted here")
    ws = Workspace.create(store, [], driver=request.param)
    shutil.copytree(busybox_root, ws.root, symlinks=True, dirs_exist_ok=True)
    ws.commit("sha256:" + request.param.ljust(64, "0"))
    yield ws
    ws.close()


def run(ws: Workspace, script: str, mounts=(), **kw) -> int:
    return run_in_sandbox(ws.root, RunSpec(argv=["/bin/sh", "-c", script], env=[PATH],
                                           mounts=tuple(mounts), **kw))


def test_a_step_that_changes_nothing_leaves_no_changes(workspace) -> None:
    assert run(workspace, "cat /etc/hosts /etc/resolv.conf >/dev/null; ls /proc /sys /dev") == 0
    assert workspace.changes() == []
    assert run(workspace, "echo hi > /hi; rm /etc/group") == 0
    assert [e.path for e in workspace.changes()] == ["etc", "etc/.wh.group", "hi"]


def test_mounts_in_a_step(workspace, tmp_path, capfd) -> None:
    context = tmp_path / "context"
    (context / "sub").mkdir(parents=True)
    (context / "sub/file").write_text("from context\n")
    parsed = [parse_mount(raw) for raw in (
        "type=bind,source=sub,target=/ctx",
        "type=bind,source=sub,target=/ctx-rw,rw",
        "type=cache,id=c1,target=/var/cache/x,mode=0750",
        "type=tmpfs,target=/scratch",
        "type=secret,id=token",
        "type=secret,id=token,env=TOKEN",
    )]
    mounts = resolve_mounts(parsed, [None] * len(parsed), context=context,
                            root_of=lambda ref: Path("/"), cache_root=tmp_path / "caches",
                            secrets={"token": b"s3cret"})
    script = (
        "cat /ctx/file; touch /ctx/no 2>/dev/null || echo ro-ok;"
        "echo changed > /ctx-rw/file; cat /ctx-rw/file;"
        "cat /var/cache/x/count 2>/dev/null; echo again >> /var/cache/x/count;"
        "touch /scratch/t && echo tmpfs-ok; cat /run/secrets/token; echo; echo $TOKEN;"
        "stat -c %a /run/secrets/token"
    )
    assert run(workspace, script, mounts) == 0
    assert capfd.readouterr().out.split() == [
        "from", "context", "ro-ok", "changed", "tmpfs-ok", "s3cret", "s3cret", "400"]
    assert (context / "sub/file").read_text() == "from context\n"  # rw writes were discarded
    assert run(workspace, "cat /var/cache/x/count", mounts) == 0
    assert capfd.readouterr().out == "again\n"  # the cache persists
    assert workspace.changes() == []  # no mount point, secret or cache reached the layer
