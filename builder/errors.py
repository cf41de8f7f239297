"""The single error hierarchy of pybuild.

Every error pybuild raises on purpose is a ``PybuildError``; anything else
escaping to the CLI is a bug. Errors carry data (location, hint, exit code);
``builder.cli`` renders them.

    PybuildError
    ├─ ContainerfileError     .location, .hint; exit 125, as Buildah, for every kind
    │  ├─ ParseError          bad line, bad directive, unterminated heredoc, bad JSON
    │  ├─ InstructionError    arity, unknown flag, unknown keyword ("did you mean")
    │  ├─ PlanError           unknown stage, cycle, unknown --target
    │  ├─ ExpansionError      ${VAR:?msg}, bad substitution
    │  └─ StepError           RUN exited N, COPY source missing
    ├─ UsageError             bad command-line arguments
    ├─ ContextError           context missing, path escapes the context
    ├─ PatternError           a glob Go's filepath.Match would reject
    ├─ IgnoreError            malformed .containerignore pattern
    ├─ SandboxError           namespaces unavailable, id-map failure
    │  ├─ IdMapError          a file owner outside the user namespace's id map
    │  ├─ NetworkError        no user-mode network tool, or it failed to start
    │  └─ ConfinementError    a RUN resource or security setting this host cannot apply
    ├─ LayerError             unsafe or corrupt layer or archive tar (names it and the entry)
    │  └─ CompressedStreamError  truncated or corrupt gzip/zstd/bzip2/xz stream
    ├─ ExportError            bud --output could not write its destination
    ├─ StoreError             image not found, store locked/unwritable
    │  ├─ ImageNotFound
    │  │  └─ ManifestListNotFound
    │  └─ ContainerNotFound   no working container of that name or ID
    ├─ ImageError             DigestMismatch, InvalidManifest, UnsupportedMediaType
    │  ├─ DigestMismatch
    │  └─ VerificationError   an imported blob differs from its descriptor or the config
    └─ RegistryError          .registry, .status
       ├─ AuthenticationError
       ├─ RegistryNotFound
       └─ RegistryTransportError
          └─ CertificateError  the certificate did not verify (never a reason to use HTTP)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from builder.source import Location


class PybuildError(Exception):
    """Base of every error pybuild raises on purpose."""

    exit_code = 125
    code = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ContainerfileError(PybuildError):
    """An error tied to a place in a Containerfile."""

    code = "containerfile"

    def __init__(
        self,
        message: str,
        location: Location | None = None,
        *,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.location = location

    def __str__(self) -> str:
        if self.location is None:
            return self.message
        return f"{self.location}: {self.message}"


class ParseError(ContainerfileError):
    code = "parse"


class InstructionError(ContainerfileError):
    code = "instruction"


class PlanError(ContainerfileError):
    code = "plan"


class ExpansionError(ContainerfileError):
    code = "expansion"


class StepError(ContainerfileError):
    """A build step failed; ``status`` is the step's exit status when it ran."""

    code = "step"

    def __init__(
        self,
        message: str,
        location: Location | None = None,
        *,
        status: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, location, hint=hint)
        self.status = status
        if status is not None and 0 < status < 125:
            self.exit_code = status


class UsageError(PybuildError):
    exit_code = 125
    code = "usage"


class ContextError(PybuildError):
    code = "context"


class PatternError(PybuildError):
    code = "pattern"


class IgnoreError(PybuildError):
    code = "ignore"


class SandboxError(PybuildError):
    code = "sandbox"


class IdMapError(SandboxError):
    """A file owned by an id the rootless user namespace does not map (names the file,
    the id and how to widen /etc/subuid and /etc/subgid)."""

    code = "id-map"


class NetworkError(SandboxError):
    """A step's network could not be set up (slirp4netns or pasta missing or failing)."""

    code = "network"


class ConfinementError(SandboxError):
    """A step's resource or security setting (cgroup limits, seccomp, devices, ulimits,
    namespaces, id maps) that this host or this user cannot apply; says why."""

    code = "confinement"


class LayerError(PybuildError):
    code = "layer"


class ExportError(PybuildError):
    code = "export"


class CompressedStreamError(LayerError):
    """A layer's or archive's compressed stream is cut short or corrupt."""

    code = "compressed-stream"


class StoreError(PybuildError):
    code = "store"


class ImageNotFound(StoreError):
    code = "image-not-found"


class ManifestListNotFound(ImageNotFound):
    code = "manifest-list-not-found"


class ContainerNotFound(StoreError):
    code = "container-not-found"


class ImageError(PybuildError):
    code = "image"


class DigestMismatch(ImageError):
    code = "digest-mismatch"


class VerificationError(ImageError):
    """An imported blob is refused: ``problem`` says what differs ("size", "digest",
    "diff_id", "truncated stream", "bad tar"), ``image`` and ``digest`` name it."""

    code = "verification"

    def __init__(self, message: str, *, image: str = "", digest: str = "", problem: str = "",
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.image = image
        self.digest = digest
        self.problem = problem


class RegistryError(PybuildError):
    """A registry refused or failed a request."""

    code = "registry"

    def __init__(
        self,
        message: str,
        *,
        registry: str | None = None,
        status: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.registry = registry
        self.status = status


class AuthenticationError(RegistryError):
    code = "auth"


class RegistryNotFound(RegistryError):
    code = "registry-not-found"


class RegistryTransportError(RegistryError):
    code = "transport"


class CertificateError(RegistryTransportError):
    """The registry's certificate did not verify (never a reason to fall back to HTTP)."""

    code = "certificate"
