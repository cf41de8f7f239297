"""``RUN --mount``: the parsed mounts (``builder.instructions.mounts``) of one step,
expanded and with their ``from`` resolved, turned into sandbox mounts with host
sources: a bind of the context, a stage's or an image's root, a persistent cache
directory under the store, a tmpfs, or a secret's bytes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from builder.errors import ContextError, StepError
from builder.executor.contextview import mount_source
from builder.executor.copier import SourceTree
from builder.executor.runspec import MountSpec
from builder.executor.sshagent import DEFAULT_ID as DEFAULT_SSH_ID
from builder.instructions.mounts import RunMount
from builder.plan.graph import StageRef
from builder.rootfs.paths import resolve_in_root

__all__ = ["resolve_mounts"]


def _inside(base: Path, sub: str) -> Path:
    return resolve_in_root(base, sub) if sub else base


def resolve_mounts(
    mounts: Sequence[RunMount],
    sources: Sequence[StageRef | None],
    *,
    context: Path,
    root_of: Callable[[StageRef], Path],
    cache_root: Path,
    secrets: Mapping[str, bytes | Path],
    ssh: Callable[[str], Path | None] = lambda ident: None,
    context_tree: SourceTree | None = None,
) -> list[MountSpec]:
    """``MountSpec`` values for ``mounts`` (expanded), whose ``from`` the plan resolved
    to ``sources`` (None: the context). A bind from the context (``context_tree``: after
    the ignore file) never shows what the ignore file excludes
    (``builder.executor.contextview``). An ssh mount is type "ssh" with the agent socket
    ``ssh`` gives for its id (0600 unless its mode says otherwise, at
    ``/run/buildkit/ssh_agent.N`` unless it names a target); one whose id was not
    forwarded is left out, or an error when it is required."""
    out: list[MountSpec] = []
    ssh_index = 0
    for m, ref in zip(mounts, sources, strict=True):
        if m.type == "bind":
            hidden: tuple[str, ...] = ()
            if ref is None and context_tree is not None:
                source, hidden = mount_source(context_tree, m.source, m.target)
            else:
                base = root_of(ref) if ref is not None else Path(context)
                source = _inside(base, m.source)
            if not os.path.lexists(source):
                raise ContextError(f"mounting {m.target}: source {m.source or '/'!r} not found")
            readonly = True if m.readonly is None else m.readonly
            out.append(MountSpec("bind", source, m.target, readonly=readonly,
                                 discard_writes=not readonly, hidden=hidden))
        elif m.type == "cache":
            key = m.id or m.target
            name = hashlib.sha256(key.encode()).hexdigest()[:32]
            out.append(MountSpec("cache", Path(cache_root) / name, m.target,
                                 readonly=bool(m.readonly), sharing=m.sharing,
                                 uid=m.uid_number, gid=m.gid_number, mode=m.mode_number))
        elif m.type == "tmpfs":
            out.append(MountSpec("tmpfs", None, m.target, readonly=False, mode=m.mode_number,
                                 size=m.size_bytes))
        elif m.type == "secret":
            secret_id = m.id or m.target.rsplit("/", 1)[-1]
            value = secrets.get(secret_id)
            if value is None:
                if m.required:
                    raise StepError(f"mounting secret {secret_id!r}: secret not provided")
                continue
            data = value if isinstance(value, bytes) else Path(value).read_bytes()
            target = m.target or ("" if m.env else f"/run/secrets/{secret_id}")
            out.append(MountSpec("secret", None, target, readonly=True, uid=m.uid_number,
                                 gid=m.gid_number, mode=m.mode_number, data=data,
                                 env=m.env or None))
        else:
            ident = m.id or DEFAULT_SSH_ID
            agent = ssh(ident)
            target = m.target or f"/run/buildkit/ssh_agent.{ssh_index}"
            ssh_index += 1
            if agent is None:
                if m.required:
                    raise StepError(f"mounting ssh agent: ssh required but no ssh with id "
                                    f"{ident!r} found", hint="forward one with --ssh")
                continue
            out.append(MountSpec("ssh", agent, target, readonly=False, uid=m.uid_number,
                                 gid=m.gid_number,
                                 mode=0o600 if m.mode_number is None else m.mode_number))
    return out
