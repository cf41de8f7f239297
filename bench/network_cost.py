"""What the RUN network costs per step: the default (private) against --network none.

Run: ``python bench/network_cost.py [--rounds 3] [--steps 20] [--bench DIR]``.

Three measurements, the last two on a busybox base that pybuild builds first:

* ``stack``: the user-mode stack alone, started on a process in a new network
  namespace until the interface is up (``start_stack``), ``--steps`` times per tool.
* ``step``: ``run_in_sandbox`` of ``true`` in an extracted busybox root, ``--steps``
  times per mode (none, slirp4netns, pasta, and private, the default), interleaved;
  the median and the fastest wall time of one step per mode, and the fastest's
  difference to ``none``.
* ``build``: the busybox-run case of the shared benchmark set (ten RUN steps) built
  with ``--no-cache`` once per mode and round, modes alternating; the fastest build
  per mode and its difference to ``none`` per RUN step.

The fastest of several runs is reported next to the median because on a shared
machine the medians move with the load; the fastest are what a step costs when it has
the CPU. Takes about a minute on two cores. Prints a table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BENCH = next((p / "shared" / "bench" for p in REPO.parents[:2]
                      if (p / "shared" / "bench").is_dir()), REPO.parent / "shared" / "bench")
MODES = ("none", "slirp4netns", "pasta", "private")
TEN_RUNS = "FROM localhost/busybox:latest\n" + "".join(
    f"RUN echo step {i} > /step-{i:02d}.txt\n" for i in range(1, 11))


def pybuild(root: Path, *args: str | Path) -> None:
    subprocess.run([sys.executable, "-m", "builder", "--root", str(root), *map(str, args)],
                   check=True, stdout=subprocess.DEVNULL, cwd=REPO)


def make_base(root: Path, work: Path) -> None:
    context = work / "busybox"
    shutil.copytree(REPO / "Containerfile.examples" / "busybox", context)
    subprocess.run(["sh", str(context / "prepare.sh")], check=True, stdout=subprocess.DEVNULL)
    pybuild(root, "bud", "-q", "-t", "localhost/busybox:latest", context)


def stack_times(steps: int, tools: list[str]) -> dict[str, list[float]]:
    sys.path.insert(0, str(REPO))
    from builder.executor.network import parse_mode, plan_network, start_stack

    unshare = ["unshare", "--net"] if os.geteuid() == 0 else [
        "unshare", "--user", "--map-root-user", "--net"]
    ours = os.stat("/proc/self/ns/net").st_ino
    times: dict[str, list[float]] = {tool: [] for tool in tools}
    for _ in range(steps):
        for tool in tools:
            holder = subprocess.Popen([*unshare, "--", "sleep", "60"])
            try:
                while os.stat(f"/proc/{holder.pid}/ns/net").st_ino == ours:
                    time.sleep(0.001)
                network = plan_network(parse_mode(tool))
                started = time.perf_counter()
                running = start_stack(network, holder.pid)
                times[tool].append(time.perf_counter() - started)
                running.stop()
            finally:
                holder.kill()
                holder.wait()
    return times


def step_times(root: Path, steps: int, modes: list[str]) -> dict[str, list[float]]:
    sys.path.insert(0, str(REPO))
    from builder.executor.runspec import RunSpec
    from builder.executor.sandbox import run_in_sandbox
    from builder.runsettings import RunSettings

    times: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(steps):
        for mode in modes:
            spec = RunSpec(argv=["/bin/true"], env=[], settings=RunSettings(network=mode))
            started = time.perf_counter()
            if run_in_sandbox(root, spec) != 0:
                raise SystemExit(f"network_cost: a step with --network {mode} failed")
            times[mode].append(time.perf_counter() - started)
    return times


def build_times(root: Path, context: Path, rounds: int,
                modes: list[str]) -> dict[str, list[float]]:
    shared = "ARG BASE" in (context / "Containerfile").read_text()
    base = ["--build-arg", "BASE=localhost/busybox:latest"] if shared else []
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    for n in range(rounds):
        for mode in modes[n % len(modes):] + modes[:n % len(modes)]:
            started = time.perf_counter()
            pybuild(root, "bud", "-q", "--no-cache", "--network", mode, *base,
                    "-t", f"cost-{mode}", context)
            times[mode].append(time.perf_counter() - started)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="builds per mode")
    parser.add_argument("--steps", type=int, default=20, help="sandbox steps per mode")
    parser.add_argument("--bench", type=Path, default=DEFAULT_BENCH,
                        help="the shared benchmark set (cases/busybox-run)")
    args = parser.parse_args(argv)
    modes = [m for m in MODES if m in ("none", "private") or shutil.which(m)]
    work = Path(tempfile.mkdtemp(prefix="network-cost-", dir="/var/tmp"))
    try:
        root = work / "store"
        make_base(root, work)
        context = work / "busybox-run"
        case = args.bench / "cases" / "busybox-run"
        if case.is_dir():
            shutil.copytree(case, context)
        else:  # no shared set here: ten small RUN steps instead
            context.mkdir()
            (context / "Containerfile").write_text(TEN_RUNS)
        rootfs = work / "rootfs"
        subprocess.run(["sh", str(REPO / "fixtures" / "make-busybox.sh"), str(rootfs)],
                       check=True, stdout=subprocess.DEVNULL)
        stacks = stack_times(args.steps, [m for m in modes if m in ("slirp4netns", "pasta")])
        steps = step_times(rootfs, args.steps, modes)
        builds = build_times(root, context, args.rounds, modes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    name = "busybox-run" if case.is_dir() else "ten small RUN steps"
    print(f"network cost per RUN step ({args.steps} steps, {args.rounds} builds of {name} "
          f"per mode; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f})")
    for tool, values in stacks.items():
        print(f"{tool} start-up: median {statistics.median(values) * 1000:.1f} ms, fastest "
              f"{min(values) * 1000:.1f} ms")
    print(f"{'mode':<12} {'step median':>12} {'fastest':>9} {'+ vs none':>10} "
          f"{'build fastest':>14} {'+ per step':>11}")
    for mode in modes:
        fastest, build = min(steps[mode]), min(builds[mode])
        print(f"{mode:<12} {statistics.median(steps[mode]) * 1000:>10.1f}ms "
              f"{fastest * 1000:>7.1f}ms {(fastest - min(steps['none'])) * 1000:>+8.1f}ms "
              f"{build:>13.2f}s {(build - min(builds['none'])) * 100:>+9.1f}ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
