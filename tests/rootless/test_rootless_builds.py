"""Rootless builds of real images: an ordinary user builds what root builds, with the same
result, and what Buildah builds for the same user.

Every test here runs pybuild as an unprivileged user with subordinate ids (the rootless
lane, tests/lanes.py), through the real CLI. Root and rootless builds of the same
input with ``--timestamp 0`` are compared layer by layer (paths with whiteouts and
opaque markers, types, modes, owners, sizes, link targets, xattrs) and by image ID.

Rules named here (Buildah's, in a user namespace):

* device nodes cannot be created in a user namespace: they are left out of what is
  extracted (base layers, ``ADD`` archives), with one warning per layer or archive;
  a step's layer neither loses nor gains ``/dev`` entries by it;
* an owner the namespace does not map is an error naming the file and the id, never
  a silent change of owner (a user without /etc/subuid ranges has only root);
* ``pybuild mount`` outside ``pybuild unshare`` is refused (see the working-container
  tests).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, Pybuild, RootlessPybuild, copy_store, lane_runner
from tests.interop.layers import Entry
from tests.interop.layers import read_image as read_layers
from tests.interop.test_run_vs_buildah import CASES, Comparison, _containerfile, _intended
from tests.lanes import SYSTEM_PYTHON, RootlessUser, make_rootless_user
from tests.rootfs.tarbuild import E, make_tar
from tests.rootless.support import (
    RootlessBuildah,
    devices,
    extend_layout,
    layer_listings,
    layout_path,
    readable,
)

pytestmark = [pytest.mark.sandbox, pytest.mark.rootless_lane]

# struct vfs_cap_data, revision 2, effective: cap_net_raw (13) permitted
CAP_NET_RAW = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)
WARNING = "device nodes cannot be created in a user namespace"


# -- fixtures


@pytest.fixture(scope="session")
def noranges_user(rootless_user: RootlessUser,
                  tmp_path_factory: pytest.TempPathFactory) -> RootlessUser:
    """A second ordinary user, without subordinate ids: a single-id map."""
    from tests.conftest import REPO

    return make_rootless_user(rootless_user.pythonpath.parent, REPO, "pbnoranges",
                              ranges=())


@pytest.fixture(scope="session")
def tworanges_user(rootless_user: RootlessUser) -> RootlessUser:
    """A third ordinary user, with two subordinate ranges: 1,000 ids, then 65,536 more."""
    from tests.conftest import REPO

    return make_rootless_user(rootless_user.pythonpath.parent, REPO, "pbtworanges",
                              ranges=(1000, 65536))


@pytest.fixture(scope="session")
def busybox_layout(busybox_store: Path, rootless_user: RootlessUser,
                   tmp_path_factory: pytest.TempPathFactory) -> str:
    """``oci:DIR:latest`` holding the busybox image, readable by every user."""
    layout = tmp_path_factory.mktemp("busybox-layout") / "layout"
    Pybuild(busybox_store)("push", "localhost/busybox:latest", f"oci:{layout}:latest")
    readable(layout.parent, rootless_user)
    return f"oci:{layout}:latest"


def _runners(tmp_path: Path, request: pytest.FixtureRequest,
             busybox_store: Path | None = None) -> tuple[Pybuild, Pybuild]:
    """A root runner and a rootless one, each with its own store (with busybox)."""
    runners = []
    for lane in ("root", "rootless"):
        directory = tmp_path / lane
        directory.mkdir()
        runner = lane_runner(lane, directory, request)
        if busybox_store is not None:
            copy_store(busybox_store, runner)
        runners.append(runner)
    return runners[0], runners[1]


def _context(tmp_path: Path, user: RootlessUser, containerfile: str,
             **files: bytes | str) -> Path:
    """A context the user owns (as their own files would be)."""
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Containerfile").write_text(containerfile)
    for name, data in files.items():
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            data = data.encode()
        (context / name).write_bytes(data)
    user.reach(context)
    user.own(context)
    return context


def _build(pybuild: Pybuild, context: Path, *flags: str, tag: str = "img",
           driver: str | None = None) -> tuple[str, str]:
    """(image ID, stderr) of a quiet build."""
    res = pybuild(*(("--storage-driver", driver) if driver else ()), "bud", "-q",
                  "--timestamp", "0", "-t", tag, *flags, context)
    return res.stdout.split()[-1], res.stderr


def _assert_same_image(root: Pybuild, user: Pybuild, ids: tuple[str, str],
                       tag: str = "img") -> None:
    """Layers (whiteouts, owners, modes, xattrs), config and image ID are equal."""
    ref = f"localhost/{tag}:latest"
    mine, theirs = layer_listings(root.root, ref), layer_listings(user.root, ref)
    assert len(mine) == len(theirs)
    for index, (a, b) in enumerate(zip(mine, theirs)):
        assert a == b, f"layer {index} differs"
    root_config = read_layers(root.root, ref).config
    assert read_layers(user.root, ref).config == root_config
    assert ids[0] == ids[1]


# -- root and rootless agree


# debian-python3 (a Debian base, apt-get install with the default network) is
# test_debian_apt_get_chown_and_user below, which also runs its image as a user
EXAMPLE_NAMES = sorted(p.name for p in EXAMPLES.iterdir()
                       if (p / "Containerfile").exists() and p.name != "debian-python3")


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_matches_root(name: str, tmp_path: Path, request: pytest.FixtureRequest,
                              busybox_store: Path, rootless_user: RootlessUser) -> None:
    context = tmp_path / "ctx"
    shutil.copytree(EXAMPLES / name, context)
    if (context / "prepare.sh").exists():
        subprocess.run(["sh", str(context / "prepare.sh")], check=True, capture_output=True)
    rootless_user.reach(context)
    rootless_user.own(context)
    root, user = _runners(tmp_path, request, busybox_store)
    ids = _build(root, context)[0], _build(user, context)[0]
    _assert_same_image(root, user, ids)
    if name in ("busybox", "scripted"):  # the others' commands are servers or missing
        assert user("run", "img").stdout == root("run", "img").stdout


# the RUN cases the vfs driver is compared on (all of them on overlay): those whose
# layers hold whiteouts, opaque directories, owners, set-id bits, hardlinks and fifos
VFS_CASES = ("create", "delete", "dir-to-file-and-back", "opaque-directory", "chown-numeric", "setuid",
             "hardlinks", "fifo", "user-workdir", "chown-by-name")


def _cases_images(tmp_path: Path, request: pytest.FixtureRequest, busybox_layout: str,
                  cases: dict[str, list[str]], driver: str) -> tuple[Pybuild, Pybuild]:
    user_account: RootlessUser = request.getfixturevalue("rootless_user")
    context = _context(tmp_path, user_account, _containerfile(cases))
    root, user = _runners(tmp_path, request)
    flags = ("--build-arg", f"BASE={busybox_layout}")
    ids = (_build(root, context, *flags, driver=driver)[0],
           _build(user, context, *flags, driver=driver)[0])
    _assert_same_image(root, user, ids)
    return root, user


@pytest.fixture(scope="module")
def cases_images(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest,
                 busybox_layout: str) -> tuple[Pybuild, Pybuild]:
    """The RUN cases of tests/interop/test_run_vs_buildah.py built as root and as the
    user (overlay), compared; both runners, for the comparison with Buildah too."""
    return _cases_images(tmp_path_factory.mktemp("cases"), request, busybox_layout, CASES,
                         "overlay")


def test_run_cases_match_root(cases_images: tuple[Pybuild, Pybuild]) -> None:
    root, user = cases_images
    assert read_layers(user.root, "localhost/img:latest").config["rootfs"]["diff_ids"] == \
        read_layers(root.root, "localhost/img:latest").config["rootfs"]["diff_ids"]


def test_run_cases_match_root_vfs(tmp_path: Path, request: pytest.FixtureRequest,
                                  busybox_layout: str) -> None:
    _cases_images(tmp_path, request, busybox_layout,
                  {name: steps for name, steps in CASES.items() if name in VFS_CASES}, "vfs")


def test_setuid_and_capabilities_survive(tmp_path: Path, request: pytest.FixtureRequest,
                                         busybox_layout: str,
                                         rootless_user: RootlessUser) -> None:
    """Set-id bits and ``security.capability`` survive extraction, a copy-up and commit."""
    extra = make_tar([
        E("bin", "dir", mode=0o755),
        E("bin/capped", data=b"#!/bin/sh\n", mode=0o755,
          xattrs={"security.capability": CAP_NET_RAW.decode("utf-8", "surrogateescape")}),
        E("bin/suid", data=b"s", mode=0o4755), E("bin/sgid", data=b"g", mode=0o2755, gid=42),
        E("srv", "dir", mode=0o3775, uid=1000, gid=1000)])
    base = extend_layout(layout_path(busybox_layout), "latest", tmp_path / "base", extra)
    readable(tmp_path / "base", rootless_user)
    context = _context(tmp_path, rootless_user,
                       f"FROM {base}\nRUN touch /bin/capped /bin/suid /bin/sgid /srv\n")
    root, user = _runners(tmp_path, request)
    for driver in ("overlay", "vfs"):
        ids = (_build(root, context, tag=driver, driver=driver)[0],
               _build(user, context, tag=driver, driver=driver)[0])
        _assert_same_image(root, user, ids, tag=driver)
        step = layer_listings(user.root, f"localhost/{driver}:latest")[-1]
        assert step["bin/capped"][6] == (("security.capability", CAP_NET_RAW),)
        assert step["bin/suid"][1] == 0o4755 and step["bin/sgid"][1:4] == (0o2755, 0, 42)
        assert step["srv"][1:4] == (0o3775, 1000, 1000)


# -- the failures of issue 15


def test_debian_apt_get_chown_and_user(tmp_path: Path, request: pytest.FixtureRequest,
                                       debian_base: str, rootless_user: RootlessUser) -> None:
    """A Debian base, RUN apt-get install, COPY --chown=1001:0, USER 1001, run as 1001."""
    context = _context(
        tmp_path, rootless_user,
        f"FROM {debian_base}\n"
        "RUN apt-get update -q && apt-get install -y -q --no-install-recommends hello "
        "&& rm -rf /var/lib/apt/lists/*\n"
        "COPY --chown=1001:0 greeting /home/app/greeting\nUSER 1001\n"
        'CMD ["sh", "-c", "id -u; hello; cat /home/app/greeting; stat -c \'%u:%g %a\' '
        '/home/app/greeting /usr/bin/passwd"]\n',
        greeting="from the context\n")
    user = lane_runner("rootless", tmp_path, request)
    res = user("bud", "-t", "deb", context)  # the default network, rootless
    warnings = [line for line in res.stderr.splitlines() if WARNING in line]
    assert len(warnings) == 1, res.stderr  # one base layer, one warning
    assert "skipped 8 device nodes (/dev/console, " in warnings[0]
    assert user("run", "deb").stdout.split("\n") == [
        "1001", "Hello, world!", "from the context", "1001:0 644", "0:0 4755", ""]
    layers = layer_listings(user.root, "localhost/deb:latest")
    base = layer_listings(layout_path(debian_base), "bookworm")
    assert layers[:len(base)] == base  # the base layer is the base's, device nodes and all
    for step in layers[len(base):]:  # the steps neither lose nor gain /dev entries
        assert not [p for p in step if p == "dev" or p.startswith("dev/")], sorted(step)[:20]
    assert layers[-1]["home/app/greeting"][2:4] == (1001, 0)


def _owners_tar() -> bytes:
    """A root file system fragment with many owners, set-id bits and device nodes."""
    entries = [E("o", "dir", mode=0o755)]
    for uid, gid in ((0, 0), (1, 1), (8, 12), (42, 42), (100, 101), (999, 999), (1000, 1000),
                     (1001, 0), (4242, 4343), (33333, 1), (65533, 65533), (65534, 65534)):
        entries.append(E(f"o/f{uid}-{gid}", data=b"x", uid=uid, gid=gid, mode=0o640))
        entries.append(E(f"o/d{uid}-{gid}", "dir", uid=uid, gid=gid, mode=0o750))
    entries += [
        E("o/suid", data=b"s", mode=0o4755), E("o/sgid", data=b"g", mode=0o2711, gid=42),
        E("o/sticky", "dir", mode=0o1777), E("o/fifo", "fifo", mode=0o620, uid=7, gid=7),
        E("o/link", "symlink", link="f42-42", uid=42, gid=42),
        E("o/hard", "hardlink", link="o/f1000-1000", uid=1000, gid=1000, mode=0o640),
        E("o/dev", "dir", mode=0o755), E("o/dev/null", "char", mode=0o666, dev=(1, 3)),
        E("o/dev/sda", "block", mode=0o660, gid=6, dev=(8, 0)),
        E("o/dev/tty", "char", mode=0o666, gid=5, dev=(5, 0)),
    ]
    return make_tar(entries)


# what of Debian's root file system tarball the ADD test takes (a twentieth of it, with
# every owner, set-id file and device node in it)
ROOTFS_PARTS = ("./etc", "./dev", "./var", "./root", "./tmp", "./run", "./home",
                "./usr/bin/chage", "./usr/bin/expiry", "./usr/bin/passwd", "./usr/bin/su",
                "./usr/bin/mount", "./usr/bin/bash", "./usr/bin/stat")


def _rootfs_part(rootfs: Path) -> bytes:
    import io
    import tarfile

    out = io.BytesIO()
    kept: set[str] = set()
    with tarfile.open(rootfs) as source, tarfile.open(fileobj=out, mode="w",
                                                      format=tarfile.PAX_FORMAT) as dest:
        for member in source:
            if not (member.name in (".", "./usr", "./usr/bin")
                    or member.name.startswith(ROOTFS_PARTS)):
                continue
            if member.islnk() and member.linkname not in kept:
                continue
            kept.add(member.name)
            dest.addfile(member, source.extractfile(member) if member.isfile() else None)
    return out.getvalue()


def test_add_rootfs_tarball(tmp_path: Path, request: pytest.FixtureRequest, debian_base: str,
                            rootless_user: RootlessUser) -> None:
    """ADD of (part of) Debian's root file system tarball and of one with many owners:
    the same layers as root's, without the device nodes, and one warning per archive."""
    rootfs = layout_path(debian_base).parent / "rootfs.tar"
    if not rootfs.exists():
        pytest.skip("the Debian base's rootfs.tar is not kept")
    context = _context(tmp_path, rootless_user, "FROM scratch\nADD rootfs.tar /\n"
                       "ADD owners.tar /\nCMD [\"bash\"]\n",
                       **{"owners.tar": _owners_tar(), "rootfs.tar": _rootfs_part(rootfs)})
    root, user = _runners(tmp_path, request)
    _build(root, context)
    _, stderr = _build(user, context)
    warnings = [line for line in stderr.splitlines() if WARNING in line]
    assert len(warnings) == 2 and "rootfs.tar: skipped 8 device nodes" in warnings[0], stderr
    assert "owners.tar: skipped 3 device nodes" in warnings[1]
    mine = layer_listings(root.root, "localhost/img:latest")
    theirs = layer_listings(user.root, "localhost/img:latest")
    for as_root, as_user in zip(mine, theirs, strict=True):
        assert devices(as_root)  # root makes device nodes ...
        assert not devices(as_user)  # ... the user cannot, and nothing else differs
        assert {p: e for p, e in as_root.items() if p not in devices(as_root)} == as_user
    rootfs_layer, owners_layer = theirs
    assert rootfs_layer["usr/bin/chage"][1:4] == (0o2755, 0, 42)
    assert rootfs_layer["usr/bin/passwd"][1:4] == (0o4755, 0, 0)
    assert {e[2:4] for e in owners_layer.values()} >= {(4242, 4343), (65534, 65534), (33333, 1)}


# -- owners outside the map


def test_single_id_map(tmp_path: Path, noranges_user: RootlessUser, busybox_store: Path,
                       debian_base: str) -> None:
    """Without /etc/subuid ranges only root is mapped: root-owned images build, any other
    owner is a clear error naming the file and the id, and nothing is re-owned."""
    noranges_user.reach(tmp_path)
    os.chown(tmp_path, noranges_user.uid, noranges_user.gid)
    pybuild = copy_store(busybox_store, RootlessPybuild(tmp_path / "store", noranges_user))
    info = pybuild("info").stdout
    assert f"uid map:         0->{noranges_user.uid}\n" in info
    context = _context(tmp_path, noranges_user,
                       "FROM localhost/busybox\nCOPY f /f\nRUN echo ran > /ran && id -u\n",
                       f="f\n")
    assert "0\n" in pybuild("bud", "-t", "ok", context).stdout
    (context / "Containerfile").write_text("FROM localhost/busybox\nCOPY --chown=1000:1000 f /f\n")
    failed = pybuild("bud", "-t", "never", context, check=False)
    assert failed.returncode == 125
    assert ("COPY failed: '/f' is owned by uid 1000 and gid 1000, outside the ids this "
            "user namespace maps (uids 0, gids 0)") in failed.stderr
    assert f"hint: give {noranges_user.name} at least 1000 subordinate ids in /etc/subuid " \
           "and /etc/subgid" in failed.stderr
    (context / "Containerfile").write_text(f"FROM {debian_base}\nRUN true\n")
    failed = pybuild("bud", "-t", "never", context, check=False)
    assert failed.returncode == 125
    assert '"RUN true": extracting layer sha256:' in failed.stderr
    assert "outside the ids this user namespace maps (uids 0, gids 0)" in failed.stderr
    assert "never" not in (pybuild.root / "index.json").read_text()


def test_two_subordinate_ranges(tmp_path: Path, request: pytest.FixtureRequest,
                                busybox_store: Path, tworanges_user: RootlessUser) -> None:
    """A user whose ids come in two ranges gets both mapped, one after the other: owners
    from the second range (COPY --chown, chown in RUN) build with default flags, the
    image runs, and it equals root's build."""
    ranges = [line.split(":")[1:] for line in Path("/etc/subuid").read_text().split()
              if line.startswith(tworanges_user.name + ":")]
    assert [count for _, count in ranges] == ["1000", "65536"]
    tworanges_user.reach(tmp_path)
    os.chown(tmp_path, tworanges_user.uid, tworanges_user.gid)
    user = copy_store(busybox_store, RootlessPybuild(tmp_path / "store", tworanges_user))
    (first, _), (second, _) = ranges
    assert (f"uid map:         0->{tworanges_user.uid}, 1->{first} (1000), "
            f"1001->{second} (65536)\n") in user("info").stdout
    context = _context(tmp_path, tworanges_user,
                       "FROM localhost/busybox\nCOPY --chown=5000:5001 f /f\n"
                       "RUN touch /g && chown 40000:40001 /g && mkdir /d /e "
                       "&& chown 999:1000 /d && chown 1001:1001 /e\n",
                       f="f\n")
    (root_dir := tmp_path / "root").mkdir()
    root = copy_store(busybox_store, lane_runner("root", root_dir, request))
    ids = _build(root, context)[0], _build(user, context)[0]
    _assert_same_image(root, user, ids)
    shown = user("run", "img", "stat", "-c", "%n %u:%g", "/f", "/g", "/d", "/e").stdout
    assert shown.splitlines() == ["/f 5000:5001", "/g 40000:40001", "/d 999:1000",
                                  "/e 1001:1001"]


def test_id_outside_the_ranges(tmp_path: Path, request: pytest.FixtureRequest,
                               busybox_store: Path, rootless_user: RootlessUser) -> None:
    user = copy_store(busybox_store, lane_runner("rootless", tmp_path, request))
    context = _context(tmp_path, rootless_user,
                       "FROM localhost/busybox\nCOPY --chown=70000:0 f /srv/f\n", f="f\n")
    failed = user("bud", context, check=False)
    assert failed.returncode == 125
    # the missing parent /srv comes first: it gets --chown's owner too (Buildah's rule)
    assert ("COPY failed: '/srv' is owned by uid 70000, outside the ids this user "
            "namespace maps (uids 0-65536, gids 0-65536)") in failed.stderr
    assert "hint: give pbrootless at least 70000 subordinate ids" in failed.stderr
    assert "usermod --add-subuids 100000-169999 --add-subgids 100000-169999" in failed.stderr


# -- several users, the namespace itself


def test_two_users_build_at_once(tmp_path: Path, busybox_layout: str,
                                 rootless_user: RootlessUser,
                                 noranges_user: RootlessUser) -> None:
    """Each user's default store is their own ($XDG_DATA_HOME/pybuild), with its locks."""
    procs = []
    for user in (rootless_user, noranges_user):
        home = tmp_path / user.name
        home.mkdir()
        context = home / "ctx"
        context.mkdir()
        (context / "Containerfile").write_text(
            f"FROM {busybox_layout}\nRUN echo {user.name} > /who && sleep 1\n")
        user.reach(home)
        user.own(home)
        env = {k: v for k, v in os.environ.items() if k != "PYBUILD_ROOT"}
        procs.append(subprocess.Popen(
            user.command(SYSTEM_PYTHON, "-m", "builder", "bud", "-q", "-t", "mine",
                         str(context), env={"XDG_DATA_HOME": str(home / "data")}),
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for user, proc in zip((rootless_user, noranges_user), procs):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        store = tmp_path / user.name / "data" / "pybuild"
        assert os.stat(store).st_uid == user.uid
        listing = layer_listings(store, "localhost/mine:latest")
        assert listing[-1]["who"][4] == len(user.name) + 1


def test_unshare(tmp_path: Path, request: pytest.FixtureRequest, busybox_store: Path) -> None:
    for lane in ("root", "rootless"):
        directory = tmp_path / lane
        directory.mkdir()
        pybuild = copy_store(busybox_store, lane_runner(lane, directory, request))
        name = pybuild("from", "busybox").stdout.strip()
        mounted = pybuild("unshare", "--mount", f"R={name}", "sh", "-c",
                          'test -x "$R/bin/busybox" && echo "$R"').stdout.strip()
        assert mounted.endswith("/merged")  # mounted for the command only
        assert not os.path.ismount(mounted)
        out = pybuild("unshare", "sh", "-c",
                      'id -u; echo "$PYBUILD_ROOT"; cat /proc/self/uid_map').stdout.split("\n")
        assert out[:2] == ["0", str(pybuild.root)]
        if lane == "root":
            assert out[2].split() == ["0", "0", "4294967295"]
        else:  # root is the user, ids from 1 are the subordinate range
            user: RootlessUser = request.getfixturevalue("rootless_user")
            assert out[2].split() == ["0", str(user.uid), "1"]
            assert out[3].split()[::2] == ["1", "65536"]
            # what builds leave in the store belongs to subordinate ids: removable only here
            context = _context(directory, user, "FROM scratch\nCOPY --chown=7:7 f /f\n", f="f")
            pybuild("--storage-driver=vfs", "bud", "-q", context)
            assert pybuild("unshare", "rm", "-rf", pybuild.root).returncode == 0
            assert not pybuild.root.exists()
        assert pybuild("unshare", "sh", "-c", "exit 7", check=False).returncode == 7


def test_info_names_the_driver(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    pybuild = lane_runner("rootless", tmp_path, request)
    info = pybuild("info").stdout
    assert "rootless:        yes" in info
    assert f"store root:      {pybuild.root}" in info
    major, minor = (int(n) for n in os.uname().release.split(".")[:2])
    if (major, minor) >= (5, 11):  # overlay mounts in user namespaces
        assert "storage driver:  overlay, in a user namespace" in info
    assert "storage driver:  vfs, in a user namespace" in pybuild(
        "--storage-driver", "vfs", "info").stdout


def test_rebuild_is_replayed(tmp_path: Path, request: pytest.FixtureRequest,
                             busybox_store: Path, rootless_user: RootlessUser) -> None:
    """A no-change rebuild is answered from the record, outside the namespace."""
    user = copy_store(busybox_store, lane_runner("rootless", tmp_path, request))
    context = _context(tmp_path, rootless_user, "FROM localhost/busybox\nCOPY f /f\n"
                       "RUN cat /f > /g\n", f="f\n")
    first = user("bud", "-t", "again", context)
    second = user("bud", "-t", "again", context)
    assert "--> Using cache" in second.stdout
    assert second.stdout.split()[-1] == first.stdout.split()[-1]
    assert os.listdir(user.root / "cache" / "replay")


# -- compared with Buildah, run by the same user


@pytest.fixture
def rootless_buildah(tmp_path: Path, rootless_user: RootlessUser) -> RootlessBuildah:
    if shutil.which("buildah") is None:
        pytest.skip("buildah is not installed")
    return RootlessBuildah(rootless_user, tmp_path / "buildah")


@pytest.mark.interop
def test_run_cases_match_rootless_buildah(tmp_path: Path, cases_images: tuple[Pybuild, Pybuild],
                                          busybox_layout: str, rootless_user: RootlessUser,
                                          rootless_buildah: RootlessBuildah) -> None:
    """The RUN cases, by rootless pybuild and rootless Buildah (overlay stores): each step's
    layer and the final tree, with tests/interop/test_run_vs_buildah.py's rules."""
    context = _context(tmp_path, rootless_user, _containerfile(CASES))
    args = ("--build-arg", f"BASE={busybox_layout}")
    _, user = cases_images
    theirs = read_layers(rootless_buildah.build(context, "--format", "docker", *args), "img")
    base_steps = len(read_layers(layout_path(busybox_layout), "latest").steps)
    comparison = Comparison(read_layers(user.root, "localhost/img:latest"), theirs,
                            base_steps, CASES)
    for index, (mine, their) in comparison.pairs.items():
        assert mine.entries == _intended(their.entries), comparison.ours.steps[index][0]
        assert mine.links == their.links


def _by_name(entries: dict[str, Entry]) -> dict[str, Entry]:
    """Whiteouts compared by name only (Buildah gives them mode 0, pybuild 0644)."""
    return {p: Entry("whiteout") if e.kind == "whiteout" else e for p, e in entries.items()}


@pytest.mark.interop
def test_owners_devices_and_chown_match_rootless_buildah(
        tmp_path: Path, request: pytest.FixtureRequest, debian_base: str,
        rootless_user: RootlessUser, rootless_buildah: RootlessBuildah) -> None:
    """ADD of an archive with many owners and device nodes, COPY --chown and a RUN on the
    Debian base: the same files, owners and /dev entries as Buildah's rootless build."""
    from tests.interop.layers import MOUNT_POINTS, apply, normalise

    context = _context(
        tmp_path, rootless_user,
        f"FROM {debian_base}\nADD owners.tar /\nCOPY --chown=1000:1000 f /home/f\n"
        "RUN touch /x && mkdir -p /home/app && chown 1001:1001 /home/app\n",
        **{"owners.tar": _owners_tar(), "f": "f\n"})
    user = lane_runner("rootless", tmp_path, request)
    user("bud", "-q", "-t", "owners", context)
    mine = read_layers(user.root, "localhost/owners:latest")
    theirs = read_layers(rootless_buildah.build(context), "img")
    base_steps = len(read_layers(layout_path(debian_base), "bookworm").steps)
    ours_tree: dict = {}
    theirs_tree: dict = {}
    for index, ((history, layer), (_, their)) in enumerate(zip(mine.steps, theirs.steps,
                                                               strict=True)):
        if index >= base_steps and layer is not None and their is not None:
            a = normalise(layer, ours_tree, frozenset())
            b = normalise(their, theirs_tree, MOUNT_POINTS)
            assert _by_name(a.entries) == _by_name(b.entries), history["created_by"]
        ours_tree = apply(ours_tree, layer) if layer else ours_tree
        theirs_tree = apply(theirs_tree, their) if their else theirs_tree
    dev = {p for p in ours_tree if p.startswith(("dev/", "o/dev/"))}
    assert dev == {p for p in theirs_tree if p.startswith(("dev/", "o/dev/"))}
