"""Kill test: builds killed with SIGKILL at random moments never damage the store.

Run: ``python bench/killtest.py [-n 50] [--seed S] [--keep DIR]``. Each round
starts ``pybuild bud`` of a context with a few MB of files (and RUN steps when
a busybox base image can be built), kills it at a random moment within the
time a build takes, runs one normal command (``pybuild images``, which cleans
what the dead process left), then requires ``pybuild check`` to pass, the tag
to be absent or complete, and (``--next-build each``) the next build to succeed.
The RUN steps have the default network, so the killed build may leave a
slirp4netns or pasta process; none may outlive it by more than two seconds
(found by a token in their environment, so other builds' do not count).
Prints the counts; exits 1 on the first failure.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

CONTAINERFILE_RUN = """\
FROM localhost/busybox
COPY files /files
RUN cat /files/* > /all && ls -l /all
COPY nonce /nonce
RUN ls /sys/class/net > /interfaces && sleep 1
RUN echo done > /done
"""
CONTAINERFILE_COPY = "FROM scratch\nCOPY files /files\nCOPY nonce /nonce\n"
NETWORK_TOOLS = ("slirp4netns", "pasta", "pasta.avx2", "passt", "passt.avx2")
TOKEN = f"PYBUILD_KILLTEST_TOKEN={uuid.uuid4().hex}"  # in the environment of what we start


def pybuild(root: Path, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "builder", "--root", str(root), *map(str, args)],
                          capture_output=True, text=True, env=ENV)
    if check and proc.returncode != 0:
        raise SystemExit(f"killtest: pybuild {' '.join(map(str, args))} exited "
                         f"{proc.returncode}\n{proc.stdout}{proc.stderr}")
    return proc


def make_base(root: Path, work: Path) -> bool:
    """A busybox base image, when RUN works here."""
    busybox = shutil.which("busybox")
    if busybox is None:
        return False
    ctx = work / "busybox"
    ctx.mkdir()
    shutil.copy(busybox, ctx / "busybox")
    (ctx / "Containerfile").write_text(
        'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n')
    return pybuild(root, "bud", "-q", "-t", "busybox", ctx, check=False).returncode == 0


def make_context(work: Path, megabytes: int, with_run: bool, rng: random.Random) -> Path:
    ctx = work / "context"
    (ctx / "files").mkdir(parents=True)
    for i in range(megabytes * 2):
        (ctx / "files" / f"f{i:03d}").write_bytes(rng.randbytes(512 * 1024))
    (ctx / "nonce").write_text("0")
    (ctx / "Containerfile").write_text(CONTAINERFILE_RUN if with_run else CONTAINERFILE_COPY)
    return ctx


ENV = {**os.environ, TOKEN.split("=")[0]: TOKEN.split("=")[1]}


def network_processes() -> list[int]:
    """slirp4netns and pasta processes that our builds started (they inherit TOKEN)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm", encoding="utf-8") as f:
                if f.read().strip() not in NETWORK_TOOLS:
                    continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                if TOKEN.encode() in f.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue  # gone, or not ours to read
    return found


def leaked_network_processes(grace: float = 2.0) -> int:
    """How many user-mode network processes outlived their build by ``grace`` seconds."""
    deadline = time.monotonic() + grace
    while (left := network_processes()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return len(left)


def mounts_below(root: Path) -> int:
    prefix = os.fspath(root.resolve()) + "/"
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return sum(1 for line in f if line.split()[4].startswith(prefix))


def tag_state(root: Path, name: str) -> str:
    """"absent" or "complete" (check already verified every reference is whole)."""
    proc = pybuild(root, "inspect", name, check=False)
    return "complete" if proc.returncode == 0 else "absent"


def run(rounds: int, seed: int, megabytes: int, next_build: str, work: Path) -> dict[str, int]:
    rng = random.Random(seed)
    root = work / "store"
    with_run = make_base(root, work)
    ctx = make_context(work, megabytes, with_run, rng)
    started = time.monotonic()
    pybuild(root, "bud", "-q", "-t", "warmup", ctx)
    duration = time.monotonic() - started
    counts = {"rounds": 0, "killed": 0, "finished_first": 0, "checks_passed": 0,
              "tags_complete": 0, "tags_absent": 0, "next_builds_ok": 0, "with_run": int(with_run),
              "killed_with_stack": 0}
    for n in range(1, rounds + 1):
        (ctx / "nonce").write_text(str(n))  # new content: new blobs every round
        proc = subprocess.Popen(
            [sys.executable, "-m", "builder", "--root", str(root), "bud", "-q", "-t",
             "killed", str(ctx)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        time.sleep(rng.uniform(0.05, duration * 1.05))
        if proc.poll() is None:
            counts["killed_with_stack"] += bool(network_processes())
            proc.send_signal(signal.SIGKILL)
            counts["killed"] += 1
        else:
            counts["finished_first"] += 1
        proc.wait()
        counts["rounds"] += 1
        leaked = leaked_network_processes()
        if leaked:
            raise SystemExit(f"killtest: round {n}: {leaked} slirp4netns/pasta processes "
                             "outlived the killed build")
        pybuild(root, "images")  # the normal next command
        result = pybuild(root, "check", check=False)
        if result.returncode != 0:
            raise SystemExit(f"killtest: round {n}: check failed\n{result.stdout}{result.stderr}")
        counts["checks_passed"] += 1
        counts["tags_" + tag_state(root, "killed")] += 1
        if next_build == "each" or n == rounds:
            pybuild(root, "bud", "-q", "-t", "next", ctx)
            counts["next_builds_ok"] += 1
        pybuild(root, "rmi", "-f", "killed", check=False)
    counts["leaked_network"] = leaked_network_processes()
    counts["leaked_mounts"] = mounts_below(root)
    if counts["leaked_mounts"]:
        raise SystemExit(f"killtest: {counts['leaked_mounts']} mounts left below {root}")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--rounds", type=int, default=50)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--megabytes", type=int, default=4, help="context size")
    parser.add_argument("--next-build", choices=("each", "end"), default="each")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = parser.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="killtest-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        counts = run(args.rounds, args.seed, args.megabytes, args.next_build, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"killtest (seed {args.seed}): {counts['rounds']} builds, {counts['killed']} killed "
          f"mid-build, {counts['finished_first']} finished first; {counts['checks_passed']} "
          f"checks passed; tag complete {counts['tags_complete']}, absent "
          f"{counts['tags_absent']}; {counts['next_builds_ok']} next builds ok; "
          f"RUN steps: {'yes' if counts['with_run'] else 'no'}; killed while a network "
          f"stack ran: {counts['killed_with_stack']}; leaked slirp4netns/pasta processes: "
          f"{counts['leaked_network']}; leaked mounts: {counts['leaked_mounts']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
