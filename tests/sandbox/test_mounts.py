"""RUN --mount parsing and the mounts in a real sandbox over a Workspace."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from builder.errors import UsageError
from builder.executor.mounts import RunMount, parse_run_mount, resolve_mounts
from builder.executor.sandbox import RunSpec, run_in_sandbox
from builder.rootfs.workspace import Workspace, detect_driver
from builder.store import Store

PATH = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"

PARSE = [
    ("type=cache,target=/root/.cache", RunMount("cache", "/root/.cache")),
    ("type=cache,id=pip,dst=/c,sharing=locked,uid=1,gid=2,mode=0700",
     RunMount("cache", "/c", id="pip", sharing="locked", uid=1, gid=2, mode=0o700)),
    ("target=/src,from=builder,source=/out,rw", RunMount("bind", "/src", "/out", "builder", False)),
    ("type=bind,src=a,destination=b,ro=false", RunMount("bind", "/b", "a", readonly=False)),
    ("type=tmpfs,target=/t,size=64m", RunMount("tmpfs", "/t", size=64 << 20)),
    ("type=secret,id=tok,env=TOKEN,required", RunMount("secret", id="tok", env="TOKEN",
                                                       required=True)),
]


@pytest.mark.parametrize("raw,expected", PARSE, ids=[p[0] for p in PARSE])
def test_parse(raw, expected) -> None:
    assert parse_run_mount(raw) == expected


@pytest.mark.parametrize("raw,message", [
    ("type=volume,target=/x", "unknown mount type"), ("type=cache", "target is required"),
    ("target=/x,bogus=1", "unknown option 'bogus'"), ("target=/x,sharing=maybe", "sharing"),
    ("target=/x,uid=abc", "uid must be a number"), ("target=/x,ro=perhaps", "true or false"),
    ("type=secret", "needs an id"),
])
def test_parse_errors(raw, message) -> None:
    with pytest.raises(UsageError, match=message):
        resolve_mounts([parse_run_mount(raw)], context=Path("/"), stage_root=Path,
                       cache_root=Path("/nonexistent"), secrets={})


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
    parsed = [parse_run_mount(raw) for raw in (
        "type=bind,source=sub,target=/ctx",
        "type=bind,source=sub,target=/ctx-rw,rw",
        "type=cache,id=c1,target=/var/cache/x,mode=0750",
        "type=tmpfs,target=/scratch",
        "type=secret,id=token",
        "type=secret,id=token,env=TOKEN",
    )]
    mounts = resolve_mounts(parsed, context=context, stage_root=lambda name: Path("/"),
                            cache_root=tmp_path / "caches", secrets={"token": b"s3cret"})
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
