"""The build semantics of issue 17 compared with Buildah 1.28 image for image: config and
the whole file tree (types, modes, owners, sizes, link targets), from the same context,
with ``buildah bud --isolation chroot`` (its default: no --layers).

One case per rule: expanded ARG names (1), the owner of directories a COPY --chown makes
(2), owners kept by COPY --from (3), WORKDIR's owner for users the root does not know (4),
VOLUME's directories and what RUN writes in them (5) and ``**`` in a COPY source without
--parents (6). Buildah has no --parents; that case is BuildKit's and tested beside the
others in tests/build/test_semantics.py. Mount points Buildah leaves after a RUN and its
``io.buildah.version`` label are set aside (see tests/build/test_bud_interop.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.build.conftest import Buildah, buildah, pybuild_image  # noqa: F401 - fixture
from tests.build.test_bud_interop import _compare
from tests.conftest import Pybuild

pytestmark = [pytest.mark.interop, pytest.mark.sandbox]

USER = ("RUN echo user:x:1000:1000::/home/user:/bin/sh >> /etc/passwd && "
        "echo user:x:1000: >> /etc/group\n")

# name -> (Containerfile, context files)
CASES: dict[str, tuple[str, dict[str, str]]] = {
    "1-arg-names": (
        "FROM localhost/busybox\nARG src=file3\nARG ${src}=somefile\nCOPY $file3 /baz\n",
        {"file3": "three", "somefile": "some"}),
    "2-chown-parents": (
        "FROM localhost/busybox\n" + USER +
        "COPY --chown=1000:1000 src /a/b/c\nADD --chown=1000:1000 src /a2/b/c\n"
        "COPY --chmod=0700 src /m/b/c\nCOPY --chown=1000:1000 dir/ /new/deep/\n"
        "COPY --chown=1000:1000 --chmod=0640 src /both/b/c\nCOPY --chmod=0700 dir /cm/x\n"
        "COPY --chown=user:user src /named/b/c\n",
        {"src": "s", "dir/g": "g", "dir/sub/h": "h"}),
    "3-copy-from-owners": (
        "FROM localhost/busybox AS base\n"
        "RUN mkdir -p /app/sub && touch /app/f /app/sub/s && chown -R 100:200 /app && "
        "chmod 0600 /app/f && chown 300:400 /app/sub/s\n"
        "FROM localhost/busybox\nCOPY --from=base /app /app1\nCOPY --from=base /app/ /app2/\n"
        "COPY --from=base /app/f /f1\nCOPY --from=base --chown=1000:1000 /app /app3\n"
        "COPY --from=base --chmod=0755 /app /app5\nCOPY ctxfile /ctxfile\n",
        {"ctxfile": "c"}),
    "4-workdir-users": (
        "FROM localhost/busybox\nRUN rm /etc/passwd /etc/group\nUSER root\nWORKDIR /x\n"
        "USER 1000\nWORKDIR /y\nUSER 1000:55\nWORKDIR /y3\nUSER nosuchuser\nWORKDIR /z\n"
        "USER 0\nRUN true\n", {}),
    "5-volumes": (
        "FROM localhost/busybox\nRUN mkdir /pre && echo old > /pre/old\nUSER 1000\n"
        "VOLUME /foo1 /pre\nUSER 0\n"
        "RUN echo hi > /foo1/hello && echo new > /pre/new && echo changed > /pre/old\n"
        "VOLUME /v\nCOPY f /v/f\nRUN rm /v/f\nVOLUME /s\nCOPY f /other\nVOLUME /a/b/c\n",
        {"f": "f"}),
    "6-double-star-one-level": (
        "FROM localhost/busybox\nCOPY src/**/bar /out/\nCOPY src/** /out3/\n"
        "COPY src/*/bar /out4/\n",
        {"src/bar": "top", "src/x/bar": "x", "src/x/y/bar": "xy", "src/x/other": "other"}),
}


@pytest.fixture(scope="module")
def loaded(buildah: Buildah, busybox_store: Path) -> Buildah:  # noqa: F811 - the fixture
    buildah.load(busybox_store, "localhost/busybox:latest")
    return buildah


@pytest.mark.parametrize("name", sorted(CASES))
def test_semantics_match_buildah(name: str, tmp_path: Path, with_busybox: Pybuild,
                                 loaded: Buildah) -> None:
    containerfile, files = CASES[name]
    context = tmp_path / "context"
    context.mkdir()
    (context / "Containerfile").write_text(containerfile)
    for rel, text in files.items():
        (context / rel).parent.mkdir(parents=True, exist_ok=True)
        (context / rel).write_text(text)
    _compare(pybuild_image(with_busybox, context), loaded.build(context))
