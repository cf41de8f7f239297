#!/usr/bin/env python3
"""pybuild vs Buildah on the shared benchmark cases, side by side in one run.

    python bench/compare.py [--cases scratch-copy many-small ...] [--compression gzip zstd]

Generates the contexts with the shared ``make-contexts.sh``, builds a busybox
base image with pybuild (exported as an OCI layout both builders read through
``--build-arg BASE=oci:DIR:latest``) and, for ``debian-run``, a Debian bookworm
base with ``make-debian-base.sh`` (kept in ``--debian-dir``), then times cold
builds of each case with ``buildah bud --layers`` and with ``pybuild bud`` (each
on a fresh store), a no-change rebuild of each case on the warm stores, and the
three rebuilds of the ``rebuild`` case. Prints seconds, the ratio
pybuild/Buildah and each process's peak RSS. Timings live here only; tests
never assert them.

Every timed build starts on a settled disk: ``--idle`` seconds (default 120)
after the previous one ended. On ext4 without a journal the first few thousand
files created after many were deleted cost 100-600 us each instead of about
25 us, for a minute or two, while the allocator skips the recently freed
inodes; Buildah deletes its working containers at the end of each build, so
whatever ran right after it would pay for that. ``--rounds N`` repeats the
cold builds, alternating which builder goes first, and reports the median.

``--rootless USER`` compares rootless builds instead (USER needs /etc/subuid and
/etc/subgid ranges; ``tests/lanes.py`` makes such a user and the copy of pybuild
it runs, with the system python): per case, a cold build by root pybuild, by
rootless pybuild, and by rootless Buildah on an overlay store and on a vfs
store, with the ratios rootless/root and rootless pybuild/each Buildah.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.lanes: running pybuild as an ordinary user

from tests.lanes import SYSTEM_PYTHON, RootlessUser, make_rootless_user  # noqa: E402

DEFAULT_BENCH = REPO.parent / "shared" / "bench"
NEEDS_BASE = {"busybox-run", "multistage", "rebuild"}
# pybuild runs as an installed package would: from compiled bytecode (pip compiles at
# install time), not recompiling its sources on every start as PYTHONDONTWRITEBYTECODE forces.
PYBUILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


@dataclass
class Timing:
    seconds: float
    peak_mib: float
    returncode: int


def timed(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Timing:
    """Run argv, return wall time and the child's peak RSS (from wait4)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd
    )
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    if code != 0:
        sys.stderr.write(f"{' '.join(argv)} exited {code}:\n{err.decode(errors='replace')[-2000:]}\n")
    return Timing(elapsed, usage.ru_maxrss / 1024, code)


class Settler:
    """Before each timed build, waits until ``idle`` seconds have passed since the last one ended."""

    def __init__(self, idle: float) -> None:
        self.idle = idle
        self.last_end: float | None = None

    def __call__(self) -> None:
        if self.last_end is not None:
            time.sleep(max(0.0, self.last_end + self.idle - time.monotonic()))

    def ended(self) -> None:
        self.last_end = time.monotonic()


class Builders:
    """Runs the builders as root, or as ``user`` (an ordinary user, ``--rootless``)."""

    def __init__(self, work: Path, settle: Settler, user: RootlessUser | None = None) -> None:
        self.work = work
        self.n = 0
        self.settle = settle
        self.user = user

    def fresh(self, name: str) -> Path:
        self.n += 1
        path = self.work / f"{name}-{self.n}"
        path.mkdir(parents=True)
        if self.user is not None:
            self.user.own(path)
        return path

    def buildah(self, root: Path, ctx: Path, args: list[str], driver: str | None = None) -> Timing:
        argv = ["buildah", "--root", str(root / "root"), "--runroot", str(root / "run"),
                *(["--storage-driver", driver] if driver else []),
                "bud", "--layers", "--isolation", "chroot", "-t", "bench", *args, str(ctx)]
        if self.user is not None:
            return self.timed(f"rootless buildah {driver}", self.user.command(*argv))
        return self.timed("buildah", argv)

    def pybuild(self, root: Path, ctx: Path, args: list[str], rootless: bool = False) -> Timing:
        label = args[args.index("--compression") + 1] if "--compression" in args else "default"
        argv = ["-m", "builder", "--root", str(root / "store"), "bud", "-t", "bench", *args,
                str(ctx)]
        if rootless:
            assert self.user is not None
            return self.timed(f"rootless pybuild {label}", self.user.command(SYSTEM_PYTHON, *argv),
                              env=PYBUILD_ENV)
        return self.timed(f"pybuild {label}", [sys.executable, *argv], env=PYBUILD_ENV)

    def timed(self, what: str, argv: list[str], env: dict[str, str] | None = None) -> Timing:
        self.settle()
        timing = timed(argv, env=env)
        self.settle.ended()
        sys.stderr.write(f"  {what}: {timing.seconds:.2f} s\n")
        return timing


def make_base(work: Path) -> str:
    """Build localhost/busybox with pybuild and export it as an OCI layout."""
    store = work / "base-store"
    ctx = work / "base-ctx"
    shutil.copytree(REPO / "Containerfile.examples" / "busybox", ctx)
    shutil.copy2("/bin/busybox", ctx / "busybox")
    pyb = [sys.executable, "-m", "builder", "--root", str(store)]
    subprocess.run([*pyb, "bud", "-q", "-t", "busybox", str(ctx)], check=True,
                   stdout=subprocess.DEVNULL)
    layout = work / "busybox-oci"
    subprocess.run([*pyb, "push", "busybox", f"oci:{layout}:latest"], check=True,
                   stdout=subprocess.DEVNULL)
    return f"oci:{layout}:latest"


def make_debian_base(out: Path) -> str:
    """The Debian base of ``debian-run`` as ``oci:DIR:bookworm``, built once into ``out``."""
    proc = subprocess.run(["bash", str(REPO / "bench" / "make-debian-base.sh"), str(out)],
                          check=True, stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHON": sys.executable})
    return proc.stdout.split()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench-dir", type=Path, default=DEFAULT_BENCH)
    parser.add_argument("--ctx", type=Path, default=Path("/tmp/bench-ctx"))
    parser.add_argument("--work", type=Path, default=None, help="scratch dir (default: a temp dir)")
    parser.add_argument("--cases", nargs="*",
                        default=["scratch-copy", "many-small", "busybox-run", "multistage", "rebuild"])
    parser.add_argument("--compression", nargs="*", default=["gzip", "zstd"])
    parser.add_argument("--debian-dir", type=Path, default=Path("/var/tmp/pybuild-debian-base"),
                        help="where make-debian-base.sh keeps the Debian base for debian-run")
    parser.add_argument("--rounds", type=int, default=1,
                        help="cold builds per case and builder; medians are reported")
    parser.add_argument("--idle", type=float, default=120.0,
                        help="seconds between the end of one timed build and the start of the next")
    parser.add_argument("--rootless", metavar="USER", default=None,
                        help="compare rootless builds by USER (root pybuild, rootless pybuild, "
                             "rootless Buildah on overlay and vfs)")
    ns = parser.parse_args()

    subprocess.run(["bash", str(ns.bench_dir / "make-contexts.sh"), str(ns.ctx), *ns.cases],
                   check=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "builder")], check=True)
    # not mkdtemp: Buildah cannot read oci:DIR when DIR's name ends like "x_" (mkdtemp may)
    work = ns.work or Path("/var/tmp") / f"pybuild-bench-{uuid.uuid4().hex[:12]}"
    work.mkdir(parents=True, exist_ok=True)
    b = Builders(work, Settler(ns.idle))
    base = make_base(work) if NEEDS_BASE & set(ns.cases) else ""
    debian = make_debian_base(ns.debian_dir) if "debian-run" in ns.cases else ""
    if ns.rootless:
        return rootless_main(ns, work, base, debian)

    rows: list[tuple[str, Timing, Timing]] = []
    for case in ns.cases:
        ctx = ns.ctx / case
        extra = ["--build-arg", f"BASE={base}"] if case in NEEDS_BASE else []
        if case == "debian-run":
            extra = ["--build-arg", f"BASE={debian}"]
        sys.stderr.write(f"{case}:\n")
        bah_root, ref, cold = cold_builds(b, case, ctx, extra, ns.compression, ns.rounds)
        for comp, (mine, _) in cold.items():
            rows.append((f"{case} cold ({comp})", ref, mine))
        warm = cold[ns.compression[0]][1] if ns.compression else None
        if warm is not None:  # a no-change rebuild on the warm stores
            again = b.buildah(bah_root, ctx, extra)
            comp = ns.compression[0]
            rows.append((f"{case} no-change rebuild", again,
                         b.pybuild(warm, ctx, [*extra, "--compression", comp])))
        if case == "rebuild":
            rows.extend(rebuilds(b, ctx, extra))

    print(f"\n{'case':<34} {'buildah s':>9} {'pybuild s':>9} {'ratio':>6} {'bah MiB':>8} {'pyb MiB':>8}")
    for name, ref, mine in rows:
        ok = "" if ref.returncode == 0 and mine.returncode == 0 else "  FAILED"
        ratio = mine.seconds / ref.seconds if ref.seconds else float("nan")
        print(f"{name:<34} {ref.seconds:>9.2f} {mine.seconds:>9.2f} {ratio:>6.2f} "
              f"{ref.peak_mib:>8.0f} {mine.peak_mib:>8.0f}{ok}")
    if ns.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def rootless_main(ns: argparse.Namespace, work: Path, base: str, debian: str) -> int:
    """Cold builds of each case by root pybuild, rootless pybuild and rootless Buildah
    (overlay and vfs stores), all by the same ordinary user but the first."""
    user = make_rootless_user(work / "rootless", REPO, ns.rootless)
    subprocess.run([SYSTEM_PYTHON, "-m", "compileall", "-q", str(user.pythonpath / "builder")],
                   check=True)  # as installed: from bytecode, which the user cannot write
    for path in (work, ns.ctx, ns.debian_dir):
        user.reach(path)
    subprocess.run(["chmod", "-R", "o+rX", str(work), str(ns.ctx)], check=True)
    b = Builders(work, Settler(ns.idle), user)
    comp = ns.compression[0] if ns.compression else "gzip"
    rows: list[tuple[str, list[Timing]]] = []
    for case in ns.cases:
        ctx = ns.ctx / case
        extra = ["--build-arg", f"BASE={base}"] if case in NEEDS_BASE else []
        if case == "debian-run":
            extra = ["--build-arg", f"BASE={debian}"]
        sys.stderr.write(f"{case}:\n")
        runs: list[list[Timing]] = [[], [], [], []]
        for n in range(ns.rounds):
            for index in range(4) if n % 2 == 0 else range(3, -1, -1):
                runs[index].append(_rootless_build(b, index, case, ctx, extra, comp))
        rows.append((case, [median(r) for r in runs]))
    print(f"\n{'case (cold, ' + comp + ')':<22} {'root s':>7} {'rootless s':>10} {'ratio':>6} "
          f"{'bah ovl s':>9} {'ratio':>6} {'bah vfs s':>9} {'ratio':>6}")
    for case, (root, rootless, overlay, vfs) in rows:
        ok = "" if all(t.returncode == 0 for t in (root, rootless, overlay, vfs)) else "  FAILED"
        print(f"{case:<22} {root.seconds:>7.2f} {rootless.seconds:>10.2f} "
              f"{rootless.seconds / root.seconds:>6.2f} {overlay.seconds:>9.2f} "
              f"{rootless.seconds / overlay.seconds:>6.2f} {vfs.seconds:>9.2f} "
              f"{rootless.seconds / vfs.seconds:>6.2f}{ok}")
    if ns.work is None:
        subprocess.run([SYSTEM_PYTHON, "-c", "import shutil, sys; shutil.rmtree(sys.argv[1])",
                        str(work)], check=False)
    return 0


def _rootless_build(b: Builders, index: int, case: str, ctx: Path, extra: list[str],
                    comp: str) -> Timing:
    """Build 0: root pybuild, 1: rootless pybuild, 2: rootless Buildah on overlay, 3: on vfs."""
    if index < 2:
        return b.pybuild(b.fresh(f"{('root', 'rootless')[index]}-{case}"), ctx,
                         [*extra, "--compression", comp], rootless=index == 1)
    driver = ("overlay", "vfs")[index - 2]
    return b.buildah(b.fresh(f"buildah-{driver}-{case}"), ctx, extra, driver)


def median(timings: list[Timing]) -> Timing:
    """The run with the median time (the lower middle one for an even count)."""
    ordered = sorted(timings, key=lambda t: t.seconds)
    return ordered[(len(ordered) - 1) // 2]


def cold_builds(
    b: Builders, case: str, ctx: Path, extra: list[str], compressions: list[str], rounds: int
) -> tuple[Path, Timing, dict[str, tuple[Timing, Path]]]:
    """``rounds`` cold builds per builder, alternating which goes first; the medians,
    with the first round's stores (Buildah's, and pybuild's per compression)."""
    runs: dict[str | None, list[Timing]] = {None: [], **{comp: [] for comp in compressions}}
    roots: dict[str | None, Path] = {}
    for n in range(rounds):
        for comp in list(runs) if n % 2 == 0 else list(runs)[::-1]:  # None: Buildah
            root = b.fresh(f"buildah-{case}" if comp is None else f"pybuild-{case}-{comp}")
            roots.setdefault(comp, root)
            runs[comp].append(b.buildah(root, ctx, extra) if comp is None else
                              b.pybuild(root, ctx, [*extra, "--compression", comp]))
    return roots[None], median(runs[None]), {c: (median(runs[c]), roots[c]) for c in compressions}


def rebuilds(b: Builders, ctx: Path, extra: list[str]) -> list[tuple[str, Timing, Timing]]:
    """No-change, mtime-only and one-content-change rebuilds with warm stores."""
    rows = []
    bah_root, pyb_root = b.fresh("buildah-warm"), b.fresh("pybuild-warm")
    work_ctx = b.fresh("rebuild-ctx") / "ctx"
    shutil.copytree(ctx, work_ctx)
    b.buildah(bah_root, work_ctx, extra)
    b.pybuild(pyb_root, work_ctx, extra)
    target = work_ctx / "src" / "mod000.txt"
    steps = [
        ("rebuild no change", lambda: None),
        ("rebuild touch one file", lambda: os.utime(target)),
        ("rebuild change one file", lambda: target.write_text(target.read_text() + "x\n")),
    ]
    for name, change in steps:
        change()
        ref = b.buildah(bah_root, work_ctx, extra)
        mine = b.pybuild(pyb_root, work_ctx, extra)
        rows.append((name, ref, mine))
    return rows


if __name__ == "__main__":
    sys.exit(main())
