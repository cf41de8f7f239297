"""Image references: ``[registry/]repository[:tag][@digest]``, the one grammar.

A reference is *qualified* when its first component names a registry (it
contains ``.`` or ``:`` or is ``localhost``). Docker Hub's aliases become
``docker.io`` and its one-component repositories get the ``library/``
namespace. A digest is ``sha256:`` and 64 hex digits or ``sha512:`` and 128.

``parse_reference`` reads a name as a registry would (short names go to
``default_registry``); ``normalize_name`` is the local store's spelling of a
name: short names are ``localhost/NAME``, a tag is always present unless a
digest is given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from builder.errors import UsageError

__all__ = ["DOCKER_HUB", "LOCAL_REGISTRY", "Reference", "is_qualified", "normalize_name",
           "parse_reference"]

DOCKER_HUB = "docker.io"
LOCAL_REGISTRY = "localhost"  # where the store puts short names
_HUB_ALIASES = {"index.docker.io", "registry-1.docker.io", DOCKER_HUB}
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")
_HOST = re.compile(r"[A-Za-z0-9.-]+(?::[0-9]+)?|\[[0-9a-fA-F:]+\](?::[0-9]+)?")


@dataclass(frozen=True)
class Reference:
    """A fully qualified image reference."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``registry/repository``, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def target(self) -> str:
        """What to ask the registry's manifest endpoint for: the digest, else the tag."""
        return self.digest or self.tag or "latest"

    def with_tag(self, tag: str | None) -> Reference:
        return Reference(self.registry, self.repository, tag, self.digest)

    def with_registry(self, registry: str, repository: str | None = None) -> Reference:
        return Reference(registry, repository or self.repository, self.tag, self.digest)

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def is_qualified(text: str) -> bool:
    """Whether ``text`` starts with a registry host."""
    first, sep, _ = text.partition("/")
    if not sep:
        return False
    return "." in first or ":" in first or first == "localhost"


def parse_reference(text: str, *, default_registry: str | None = DOCKER_HUB) -> Reference:
    """Parse ``text``; an unqualified name gets ``default_registry`` (None: refuse)."""
    original = text
    if text.startswith("docker://"):
        text = text[len("docker://"):]
    digest = None
    if "@" in text:
        text, digest = text.rsplit("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise UsageError(f"parsing reference {original!r}: invalid digest {digest!r}")
    tag = None
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        text, tag = text[:colon], text[colon + 1:]
        if not _TAG.fullmatch(tag):
            raise UsageError(f"parsing reference {original!r}: invalid tag {tag!r}")
    if is_qualified(text):
        registry, repository = text.split("/", 1)
        if not _HOST.fullmatch(registry):
            raise UsageError(f"parsing reference {original!r}: invalid registry {registry!r}")
    elif default_registry is None:
        raise UsageError(f"parsing reference {original!r}: no registry in short name")
    else:
        registry, repository = default_registry, text
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
        if "/" not in repository:
            repository = f"library/{repository}"
    if not repository or not all(_COMPONENT.fullmatch(part) for part in repository.split("/")):
        raise UsageError(f"parsing reference {original!r}: repository names must be lowercase "
                         "letters, digits and separators")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(registry, repository, tag, digest)


def normalize_name(name: str) -> str:
    """The store's name for ``name``: "app" -> "localhost/app:latest", "quay.io/x/y" ->
    "quay.io/x/y:latest", "docker.io/x" -> "docker.io/library/x:latest", and
    "app@sha256:..." -> "localhost/app@sha256:..." (a digest replaces the tag)."""
    ref = parse_reference(name.strip(), default_registry=LOCAL_REGISTRY)
    if ref.digest:
        return f"{ref.name}@{ref.digest}"
    return f"{ref.name}:{ref.tag}"
