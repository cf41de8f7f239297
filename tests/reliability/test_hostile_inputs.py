"""Hostile build inputs: each gets a clear error or a safe result, in bounded time,
and nothing outside the context, the root or the store is read or written.

The closing note of the reliability issue tabulates these cases; extraction of hostile
layer tars is covered case by case in tests/rootfs/test_extract.py, and random layer
streams in test_fuzz.py.
"""

from __future__ import annotations

import io
import os
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import Pybuild, Result
from tests.reliability.corrupt_images import (
    CORRUPTIONS,
    DOCKER_ARCHIVE_CORRUPTIONS,
    REGISTRY_CORRUPTIONS,
    Layer,
    corrupt,
    good_layer,
    push_raw,
    write_docker_archive,
    write_layout,
    write_oci_archive,
)
from tests.rootfs.tarbuild import E, gz, make_tar
from tests.rootfs.test_extract import outside_links

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "registry"))
from registry_fixtures import Registry, layer_tar, make_oci_dir  # noqa: E402

# (case, Containerfile bytes, exit status: 125 for every error, as Buildah; message substring)
CONTAINERFILES = [
    ("binary", bytes(range(256)) * 20, 125, "unknown instruction"),
    ("nul-in-keyword", b"FROM scratch\nLA\x00BEL a=b\n", 125, "unknown instruction"),
    ("enormous-line", b"FROM scratch\nLABEL a=" + b"x" * 70_000 + b"\n", 125,
     "greater than max allowed size"),
    ("expansion-doubling", b"FROM scratch\nENV A=xxxxxxxx\n" + b"ENV A=$A$A\n" * 40, 125,
     "more than 1048576 characters"),
    ("expansion-nesting", b"FROM scratch\nENV B=" + b"${A:-" * 5000 + b"x" + b"}" * 5000
     + b"\n", 125, "expanding"),
    ("unterminated-heredoc", b"FROM scratch\nCOPY <<EOF /x\nnever closed\n", 125,
     "unterminated heredoc"),
    ("only-comments", b"# nothing\n# here\n", 125, "file with no instructions"),
]


@pytest.mark.parametrize("case, text, status, message", CONTAINERFILES,
                         ids=[c[0] for c in CONTAINERFILES])
def test_hostile_containerfile(pybuild: Pybuild, tmp_path: Path, case: str, text: bytes,
                               status: int, message: str) -> None:
    context = tmp_path / "context"
    context.mkdir()
    (context / "Containerfile").write_bytes(text)
    res = pybuild("bud", "-t", "hostile", context, check=False, timeout=120)
    assert res.returncode == status, res.output
    assert message in res.stderr
    assert "Traceback" not in res.stderr
    assert pybuild("images", "-q").stdout == ""


def test_deep_continuations_parse_in_bounded_time(pybuild: Pybuild, tmp_path: Path) -> None:
    containerfile = tmp_path / "Containerfile"
    containerfile.write_text("FROM scratch\nRUN echo a \\\n" + "  b \\\n" * 100_000 + "  c\n")
    res = pybuild("parse", "--dump", "-f", containerfile, timeout=120)
    assert res.stdout.count("b") == 100_000


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("host-only-content\n")
    return secret


def _layer_names(pybuild: Pybuild, tmp_path: Path, image: str) -> dict[str, tarfile.TarInfo]:
    archive = tmp_path / "image.tar"
    pybuild("push", image, f"oci-archive:{archive}")
    names: dict[str, tarfile.TarInfo] = {}
    with tarfile.open(archive) as outer:
        for member in outer.getmembers():
            if not member.isfile() or not member.name.startswith("blobs/"):
                continue
            data = outer.extractfile(member).read()  # type: ignore[union-attr]
            try:
                with tarfile.open(fileobj=io.BytesIO(data)) as layer:
                    for entry in layer.getmembers():
                        names[entry.name] = entry
                        if entry.isfile():
                            content = layer.extractfile(entry).read()  # type: ignore[union-attr]
                            assert b"host-only-content" not in content
            except tarfile.ReadError:
                continue  # config and manifest blobs
    return names


def test_context_symlink_to_outside_is_copied_as_a_link(
        pybuild: Pybuild, tmp_path: Path, outside: Path) -> None:
    """Inside a copied directory a link is copied as a link; as a source itself it is
    followed inside the context, where this one dangles: "no such file or directory", as in
    Buildah 1.28 and BuildKit (the host file is never read)."""
    context = tmp_path / "context"
    context.mkdir()
    os.symlink(outside, context / "link")
    (context / "Containerfile").write_text("FROM scratch\nCOPY . /all/\n")
    pybuild("bud", "-q", "-t", "links", context)
    names = _layer_names(pybuild, tmp_path, "links")
    assert names["all/link"].issym() and names["all/link"].linkname == str(outside)
    (context / "Containerfile").write_text("FROM scratch\nCOPY link /link\n")
    res = pybuild("bud", "-t", "link", context, check=False)
    assert res.returncode == 125 and "COPY failed: 'link': no such file or directory" in res.stderr
    assert "host-only-content" not in res.output


@pytest.mark.parametrize("source", ["../outside/secret.txt", "dir-link/secret.txt"])
def test_copy_never_reads_outside_the_context(
        pybuild: Pybuild, tmp_path: Path, outside: Path, source: str) -> None:
    context = tmp_path / "context"
    context.mkdir()
    os.symlink(outside.parent, context / "dir-link")
    (context / "Containerfile").write_text(f"FROM scratch\nCOPY {source} /x\n")
    res = pybuild("bud", "-t", "escape", context, check=False)
    assert res.returncode == 125, res.output
    assert "Containerfile:2" in res.stderr
    assert pybuild("images", "-q").stdout == ""


def test_symlinked_containerfile_outside_is_not_followed(
        pybuild: Pybuild, tmp_path: Path, outside: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    os.symlink(outside, context / "Containerfile")
    res = pybuild("bud", "-t", "x", context, check=False)
    assert res.returncode != 0
    assert "host-only-content" not in res.output


@pytest.mark.parametrize("entry", ["../escaped", "/abs-escaped"])
def test_base_layer_escaping_its_root_is_refused(
        pybuild: Pybuild, tmp_path: Path, entry: str) -> None:
    layout = tmp_path / "base"
    make_oci_dir(layout, "evil", [("amd64", [layer_tar({entry: b"pwned"})])])
    context = tmp_path / "context"
    context.mkdir()
    (context / "Containerfile").write_text(f"FROM oci:{layout}:evil\nRUN true\n")
    res = pybuild("bud", "-t", "evil", context, check=False)
    assert res.returncode == 125, res.output
    assert "escapes" in res.stderr and "sha256:" in res.stderr
    assert not (tmp_path / "escaped").exists() and not Path("/abs-escaped").exists()
    assert not (pybuild.root / "escaped").exists()


# -- corrupt images: every transport, refused at import (builder.rootfs.verify)


def _refused(pybuild: Pybuild, res: Result, layer: Layer, name: str) -> None:
    """Exit 125, an error naming the layer and what differs, nothing stored."""
    problem, text = CORRUPTIONS[name]
    assert res.returncode == 125, res.output
    assert f"layer {layer.digest}: " in res.stderr and text in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert pybuild("images", "-q").stdout == ""
    blobs = pybuild.root / "blobs" / "sha256"
    assert not blobs.exists() or os.listdir(blobs) == [], "a refused image left blobs"
    index = pybuild.root / "index.json"
    assert not index.exists() or '"manifests":[]' in index.read_text().replace(" ", "")


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corrupt_base_is_refused_without_a_run_step(
        pybuild: Pybuild, tmp_path: Path, name: str) -> None:
    """No step extracts the base (LABEL, CMD, COPY only): the import itself refuses it."""
    layer = corrupt(name)
    layout = write_layout(tmp_path / "base", "evil", layer)
    context = tmp_path / "context"
    context.mkdir()
    (context / "f").write_text("mine\n")
    (context / "Containerfile").write_text(
        f"FROM oci:{layout}:evil\nLABEL built=on-evil\nCOPY f /f\nCMD [\"/hello\"]\n")
    res = pybuild("bud", "-t", "on-evil", context, check=False)
    _refused(pybuild, res, layer, name)


TRANSPORT_CASES = [("oci", name) for name in CORRUPTIONS] + \
    [("oci-archive", name) for name in CORRUPTIONS] + \
    [("docker-archive", name) for name in DOCKER_ARCHIVE_CORRUPTIONS]


@pytest.mark.parametrize("transport, name", TRANSPORT_CASES,
                         ids=[f"{t}-{n}" for t, n in TRANSPORT_CASES])
def test_corrupt_image_pull_is_refused(
        pybuild: Pybuild, tmp_path: Path, transport: str, name: str) -> None:
    layer = corrupt(name)
    if transport == "oci":
        ref = f"oci:{write_layout(tmp_path / 'layout', 'evil', layer)}:evil"
    elif transport == "oci-archive":
        ref = f"oci-archive:{write_oci_archive(tmp_path / 'image.tar', 'evil', layer)}:evil"
    else:
        ref = f"docker-archive:{write_docker_archive(tmp_path / 'image.tar', 'evil:1', layer)}"
        layer.digest = "layer/layer.tar"  # no descriptor: the refusal names the member
    res = pybuild("pull", ref, check=False)
    _refused(pybuild, res, layer, name)
    assert f'verifying image "{ref}"' in res.stderr


@pytest.mark.parametrize("name", REGISTRY_CORRUPTIONS)
def test_corrupt_registry_image_pull_is_refused(
        pybuild: Pybuild, registry: Registry, name: str) -> None:
    layer = corrupt(name)
    push_raw(registry.url, f"evil/{name}", "1", layer)
    res = pybuild("pull", f"{registry.host}/evil/{name}:1", check=False, timeout=120)
    _refused(pybuild, res, layer, name)
    assert f'verifying image "{registry.host}/evil/{name}:1"' in res.stderr


def test_a_verified_layer_is_not_read_again(pybuild: Pybuild, tmp_path: Path) -> None:
    """The store records what it verified: a second import with the same layer digest
    never opens the source's copy (here damaged)."""
    layer = good_layer()
    layout = write_layout(tmp_path / "layout", "good", layer)
    pybuild("pull", f"oci:{layout}:good")
    record = pybuild.root / "verified" / "sha256" / layer.digest[7:]
    assert record.read_text() == layer.diff_id
    (layout / "blobs" / "sha256" / layer.digest[7:]).write_bytes(b"\0" * layer.size)
    pybuild("pull", f"oci:{layout}:good")  # the store has this content, verified
    record.unlink()  # as in a store older than verification: the stored blob is scanned
    pybuild("pull", f"oci:{layout}:good")
    assert record.read_text() == layer.diff_id


# -- ADD of hostile archives (one extractor: builder.rootfs.extract.extract_archive)

# (case, entries, the error or None) - "{outside}" is the host directory next to the context
ADD_ARCHIVES = [
    ("dir-then-symlink-to-host",
     [E("a", "dir", mode=0o777, mtime=5), E("a", "symlink", link="{outside}")], None),
    # the destination is the archive's root (Buildah 1.28): a link to the host path dangles
    ("symlink-parent-to-host",
     [E("l", "symlink", link="{outside}"), E("l/evil", data=b"pwned")],
     "ADD failed: extracting archive evil.tar.gz: entry 'l/evil': parent directory is a "
     "symlink to nothing"),
    ("dotdot", [E("../../../outside/evil", data=b"pwned")], None),  # lands in /dest/outside
    ("hardlink-to-host", [E("hl", "hardlink", link="{outside}/secret.txt")],
     "ADD failed: extracting archive evil.tar.gz: entry 'hl': hardlink target"),
    # unpacked as files (as Docker does), but a layer cannot hold them: they would be
    # whiteouts to whoever extracts it
    ("whiteout-names-are-files", [E(".wh.etc", data=b"w"), E("d/.wh..wh..opq", data=b"o")],
     "writing layer: refusing real file named like a whiteout: 'dest/.wh.etc'"),
]


@pytest.mark.parametrize("case, entries, error", ADD_ARCHIVES,
                         ids=[c[0] for c in ADD_ARCHIVES])
def test_add_of_a_hostile_archive(pybuild: Pybuild, tmp_path: Path, outside: Path,
                                  case: str, entries: list[E], error: str | None) -> None:
    host = outside.parent
    os.utime(host, (4000, 4000))
    before = [(os.lstat(p).st_mode, os.lstat(p).st_uid, os.lstat(p).st_mtime_ns)
              for p in (host, outside)]
    context = tmp_path / "context"
    context.mkdir()
    (context / "evil.tar.gz").write_bytes(gz(make_tar(outside_links(entries, host))))
    (context / "Containerfile").write_text("FROM scratch\nADD evil.tar.gz /dest/\n")
    res = pybuild("bud", "-t", "added", context, check=False)
    after = [(os.lstat(p).st_mode, os.lstat(p).st_uid, os.lstat(p).st_mtime_ns)
             for p in (host, outside)]
    assert after == before, "a host directory's mode, owner or mtime changed"
    assert sorted(os.listdir(host)) == ["secret.txt"]
    assert outside.read_text() == "host-only-content\n"
    if error is not None:
        assert res.returncode == 125, res.output
        assert error in res.stderr and "Containerfile:2" in res.stderr
        assert pybuild("images", "-q").stdout == ""
    else:
        assert res.returncode == 0, res.output
        names = _layer_names(pybuild, tmp_path, "added")
        assert all(name.startswith("dest/") or name == "dest" for name in names), names


# -- ignored means absent: never read, hashed or mounted, whatever the path to it

SECRET = "ignored-secret-content"


def _ignoring_context(tmp_path: Path, containerfile: str) -> Path:
    """A context whose .containerignore excludes secret.env and secretdir/, with links to
    both (top level and inside a kept directory)."""
    context = tmp_path / "context"
    (context / "secretdir").mkdir(parents=True)
    (context / "sub").mkdir()
    (context / "secret.env").write_text(SECRET + "\n")
    (context / "secretdir" / "key").write_text(SECRET + "\n")
    (context / "sub" / "plain").write_text("plain\n")
    (context / "visible.txt").write_text("visible\n")
    os.symlink("secret.env", context / "link")
    os.symlink("secretdir", context / "dirlink")
    os.symlink("../secret.env", context / "sub" / "l2")
    os.symlink("secretdir/key", context / "through-ignored-dir")
    (context / ".containerignore").write_text("secret.env\nsecretdir/\n")
    (context / "Containerfile").write_text(containerfile)
    return context


def _no_secret_in_layers(pybuild: Pybuild, tmp_path: Path, image: str) -> dict[str, tarfile.TarInfo]:
    names = _layer_names(pybuild, tmp_path, image)
    archive = tmp_path / "image.tar"
    assert SECRET.encode() not in archive.read_bytes()
    return names


# (case, Containerfile after FROM, error or None); BuildKit never sends ignored files, so a
# link to one dangles in the build's view: COPY follows a top-level link and fails "not
# found", as Buildah 1.28 does; a link inside a copied directory is copied as a link
IGNORED = [
    ("copy-link-to-ignored-file", "COPY link /x\n", "COPY failed: 'link': no such file or directory"),
    ("copy-glob-matching-link", "COPY lin? /x/\n", "COPY failed: 'lin?': no such file or directory"),
    ("copy-link-to-ignored-dir", "COPY dirlink /d\n",
     "COPY failed: 'dirlink': no such file or directory"),
    ("copy-link-through-ignored-dir", "COPY through-ignored-dir /x\n",
     "COPY failed: 'through-ignored-dir': no such file or directory"),
    ("copy-through-dir-link", "COPY dirlink/key /x\n",
     "COPY failed: 'dirlink/key': no such file or directory"),
    ("copy-ignored-file", "COPY secret.env /x\n", "no such file or directory (filtered out"),
    ("copy-context", "COPY . /app/\n", None),
    ("copy-dir-with-link", "COPY sub /s/\n", None),
    ("add-link-to-ignored-file", "ADD link /x\n", "ADD failed: 'link': no such file or directory"),
]


@pytest.mark.parametrize("case, steps, error", IGNORED, ids=[c[0] for c in IGNORED])
def test_ignored_files_are_absent(pybuild: Pybuild, tmp_path: Path, case: str, steps: str,
                                  error: str | None) -> None:
    context = _ignoring_context(tmp_path, "FROM scratch\n" + steps)
    res = pybuild("bud", "-t", "ignoring", context, check=False)
    assert SECRET not in res.output
    if error is not None:
        assert res.returncode == 125, res.output
        assert error in res.stderr and "Containerfile:2" in res.stderr
        assert pybuild("images", "-q").stdout == ""
        return
    assert res.returncode == 0, res.output
    names = _no_secret_in_layers(pybuild, tmp_path, "ignoring")
    assert not any("secret" in name for name in names)
    if case == "copy-context":
        assert names["app/link"].issym() and names["app/link"].linkname == "secret.env"
        assert names["app/dirlink"].issym() and "app/sub/plain" in names
    else:
        assert names["s/l2"].issym() and names["s/l2"].linkname == "../secret.env"


# RUN --mount=type=bind from the context: (case, mount options, command, error or output)
BIND_MOUNTS = [
    ("whole-context", "target=/ctx", "ls -a /ctx /ctx/sub | tr '\\n' ' ' > /out", None),
    ("whole-context-rw", "target=/ctx,rw",
     "touch /ctx/new && rm /ctx/visible.txt && ls /ctx | tr '\\n' ' ' > /out", None),
    ("subdirectory", "source=sub,target=/s", "ls -a /s | tr '\\n' ' ' > /out", None),
    ("ignored-file", "source=secret.env,target=/s", "cat /s",
     "mounting /s: source 'secret.env' not found"),
    ("link-to-ignored-file", "source=link,target=/s", "cat /s",
     "mounting /s: source 'link' not found"),
    ("through-dir-link", "source=dirlink/key,target=/s", "cat /s",
     "mounting /s: source 'dirlink/key' not found"),
    ("read-through-link", "target=/ctx", "cat /ctx/link", "exit status 1"),
]


@pytest.mark.parametrize("case, options, command, error", BIND_MOUNTS,
                         ids=[c[0] for c in BIND_MOUNTS])
def test_bind_mounts_of_the_context_hide_ignored_files(
        with_busybox: Pybuild, tmp_path: Path, case: str, options: str, command: str,
        error: str | None) -> None:
    pybuild = with_busybox
    context = _ignoring_context(tmp_path, (
        f"FROM localhost/busybox\nRUN --mount=type=bind,{options} {command}\n"))
    before = sorted(os.listdir(context))
    res = pybuild("bud", "-t", "mounted", context, check=False)
    assert SECRET not in res.output
    assert sorted(os.listdir(context)) == before  # writes to an rw bind are thrown away
    assert (context / "visible.txt").exists()
    if error is not None:
        assert res.returncode != 0 and error in res.stderr, res.output
        return
    assert res.returncode == 0, res.output
    out = pybuild("run", "mounted", "cat", "/out").stdout.split()
    assert "secret.env" not in out and "secretdir" not in out
    if case == "whole-context":
        assert {"link", "dirlink", "visible.txt", "sub", "plain", "l2"} <= set(out)
    elif case == "whole-context-rw":
        assert "new" in out and "visible.txt" not in out
    else:
        assert {"plain", "l2"} <= set(out)


def test_ignored_files_do_not_change_cache_keys(pybuild: Pybuild, tmp_path: Path) -> None:
    """What is neither copied nor mounted is not hashed: editing an ignored file reuses the
    cache; editing a kept one does not."""
    context = _ignoring_context(tmp_path, "FROM scratch\nCOPY . /app/\nCOPY sub /s/\n")
    first = pybuild("bud", "-t", "one", context).stdout
    assert first.count("Using cache") == 0
    (context / "secret.env").write_text("changed\n")
    (context / "secretdir" / "key").write_text("changed\n")
    assert pybuild("bud", "-t", "two", context).stdout.count("Using cache") == 2
    (context / "sub" / "plain").write_text("changed\n")
    assert pybuild("bud", "-t", "three", context).stdout.count("Using cache") == 0


def test_ignored_files_do_not_change_bind_mount_keys(with_busybox: Pybuild,
                                                     tmp_path: Path) -> None:
    pybuild = with_busybox
    context = _ignoring_context(tmp_path, (
        "FROM localhost/busybox\nRUN --mount=type=bind,target=/ctx cat /ctx/visible.txt\n"))
    assert pybuild("bud", "-t", "one", context).stdout.count("Using cache") == 0
    (context / "secret.env").write_text("changed\n")
    (context / "secretdir" / "key").write_text("changed\n")
    assert pybuild("bud", "-t", "two", context).stdout.count("Using cache") == 1
    (context / "visible.txt").write_text("changed\n")
    assert pybuild("bud", "-t", "three", context).stdout.count("Using cache") == 0


# -- RUN mount targets: resolved inside the root, never into the sandbox's own old root

MOUNT_TARGETS = ["type=tmpfs,target=/x/evil", "type=cache,target=/x/evil",
                 "type=bind,source=visible.txt,target=/x/evil", "type=secret,id=s,target=/x/evil"]


@pytest.mark.parametrize("mount", MOUNT_TARGETS, ids=[m.split(",")[0] for m in MOUNT_TARGETS])
def test_mount_target_through_a_link_to_the_host(with_busybox: Pybuild, tmp_path: Path,
                                                 mount: str) -> None:
    """While a step's sandbox is set up the host's root is still mounted at a fixed place
    in it; an image's symlink to there must not lead a mount point (made, then removed)
    onto the host."""
    pybuild = with_busybox
    host = tmp_path / "host"
    host.mkdir()
    os.utime(host, (5000, 5000))
    before = os.lstat(host)
    context = tmp_path / "context"
    context.mkdir()
    (context / "visible.txt").write_text("v\n")
    (context / "s.txt").write_text("s\n")
    (context / "Containerfile").write_text(
        f"FROM localhost/busybox\nRUN ln -s /.pybuild-oldroot{host} /x\n"
        f"RUN --mount={mount} ls -la /x/ > /out; true\n")
    res = pybuild("bud", "--secret", f"id=s,src={context / 's.txt'}", "-t", "targets",
                  context, check=False)
    after = os.lstat(host)
    assert os.listdir(host) == []
    assert (after.st_mode, after.st_uid, after.st_mtime_ns) == \
        (before.st_mode, before.st_uid, before.st_mtime_ns), res.output
    assert res.returncode == 125, res.output
    assert "mount point /x/evil leads into /.pybuild-oldroot" in res.stderr


# -- COPY destinations: parents that are links in the root are followed inside it

COPY_DESTS = [
    ("parents", "COPY --parents a/b/c.txt /app/\n"),
    ("plain-file", "COPY a/b/c.txt /app/a/new/\n"),
    ("directory", "COPY a /app/a/\n"),
    ("heredoc", "COPY <<EOF /app/a/here/doc\nx\nEOF\n"),
    ("add-archive", "ADD t.tar /app/a/\n"),
]


@pytest.mark.parametrize("case, step", COPY_DESTS, ids=[c[0] for c in COPY_DESTS])
def test_copy_destination_through_an_absolute_link(with_busybox: Pybuild, tmp_path: Path,
                                                   case: str, step: str) -> None:
    """``/app/a -> HOST`` in the image is HOST inside the root: nothing may land on the
    host directory of that name, whatever the copy writes below it."""
    pybuild = with_busybox
    host = tmp_path / "host"
    host.mkdir()
    os.utime(host, (5000, 5000))
    before = os.lstat(host)
    context = tmp_path / "context"
    (context / "a" / "b").mkdir(parents=True)
    (context / "a" / "b" / "c.txt").write_text("c\n")
    with tarfile.open(context / "t.tar", "w") as tar:
        tar.add(context / "a" / "b" / "c.txt", arcname="b/c.txt")
    (context / "Containerfile").write_text(
        f"FROM localhost/busybox\nRUN mkdir /app && ln -s {host} /app/a\n{step}")
    res = pybuild("bud", "-t", "dests", context, check=False)
    after = os.lstat(host)
    assert os.listdir(host) == [], res.output
    assert (after.st_mode, after.st_mtime_ns) == (before.st_mode, before.st_mtime_ns)
    assert res.returncode == 0, res.output
    found = pybuild("run", "dests", "find", str(host)).stdout
    assert str(host) in found  # inside the image, below the root's own copy of the path


def test_a_followed_directory_link_is_hashed_as_copied(pybuild: Pybuild, tmp_path: Path) -> None:
    """``COPY dirlink /d`` copies what the link leads to, minus what the ignore file
    excludes there: the cache key hashes exactly that (it hashed nothing below a followed
    link, so an edit there reused a stale layer)."""
    context = tmp_path / "context"
    (context / "real").mkdir(parents=True)
    (context / "real" / "kept.txt").write_text("one\n")
    (context / "real" / "drop.log").write_text(SECRET + "\n")
    os.symlink("real", context / "dirlink")
    (context / ".containerignore").write_text("**/*.log\n")
    (context / "Containerfile").write_text("FROM scratch\nCOPY dirlink /d\n")
    pybuild("bud", "-q", "-t", "one", context)
    (context / "real" / "drop.log").write_text("changed\n")
    assert pybuild("bud", "-t", "two", context).stdout.count("Using cache") == 1
    (context / "real" / "kept.txt").write_text("two\n")
    assert pybuild("bud", "-t", "three", context).stdout.count("Using cache") == 0
    names = _no_secret_in_layers(pybuild, tmp_path, "three")
    assert "d/kept.txt" in names and "d/drop.log" not in names
