"""How long ``wsio --help`` takes, from the command line to its exit.

::

    .venv/bin/python benchmarks/cli_startup.py                  # this checkout
    .venv/bin/python benchmarks/cli_startup.py --ref 6954a41    # and another commit
    .venv/bin/python benchmarks/cli_startup.py --load 1         # with one core kept busy

Each commit measured is built as a wheel and installed, without its
dependencies, into a virtualenv of its own under $TMPDIR; the
dependencies come from the running interpreter's site-packages through a
``.pth`` line. So every side pays the same interpreter start and none pays
for an editable install's import hook. ``python -c pass`` in the same
virtualenv is measured too: the floor nothing can go below.

``--load N`` keeps N cores busy with plain busy loops (each bounded by the
run) while measuring, as on a shared machine. Nothing is asserted: the
figures are printed (median and p90 of ``--runs`` runs, after two warm-up
runs) with the modules ``wsio --help`` imported.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
import venv
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_env(ref: str | None, work: Path) -> Path:
    """A virtualenv with webpy-socketio at ``ref`` (None: the working tree)
    installed from a wheel; returns its bin folder."""
    name = ref or "worktree"
    source = work / f"src-{name}"
    if ref is None:
        source = ROOT
    else:
        source.mkdir()
        archive = work / f"{name}.tar"
        subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(archive), ref],
            check=True,
            timeout=120,
        )
        with tarfile.open(archive) as tar:
            tar.extractall(source, filter="data")
    wheels = work / f"wheel-{name}"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
        check=True,
        timeout=600,
        capture_output=True,
    )
    env_dir = work / f"venv-{name}"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    (wheel,) = wheels.glob("*.whl")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
        check=True,
        timeout=300,
    )
    fresh_site = next((env_dir / "lib").glob("python3*/site-packages"))
    deps = sysconfig.get_paths()["purelib"]
    (fresh_site / "zz_deps.pth").write_text(deps + "\n")
    return env_dir / "bin"


def timed(command: list[str], runs: int) -> list[float]:
    times = []
    for i in range(runs + 2):
        started = time.perf_counter()
        subprocess.run(
            command, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
        )
        took = time.perf_counter() - started
        if i >= 2:  # the first two warm the page cache
            times.append(took * 1000)
    return times


def imported(bin_dir: Path) -> list[str]:
    code = (
        "import sys, json\n"
        "from webpy_socketio.cli.main import cli\n"
        "try:\n    cli(['--help'], prog_name='wsio')\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('webpy_socketio'))))\n"
    )
    result = subprocess.run(
        [str(bin_dir / "python"), "-c", code], cwd="/", capture_output=True, text=True, check=True
    )
    return list(json.loads(result.stdout.splitlines()[-1]))


def _spin(deadline: float, parent: int) -> None:
    # bounded twice: by the deadline, and by this script (an orphan stops)
    while time.monotonic() < deadline and os.getppid() == parent:
        pass


@contextlib.contextmanager
def busy_cores(count: int, seconds: float) -> Iterator[None]:
    """``count`` processes spinning, each for at most ``seconds``."""
    deadline = time.monotonic() + seconds
    procs = [
        multiprocessing.Process(target=_spin, args=(deadline, os.getpid())) for _ in range(count)
    ]
    for proc in procs:
        proc.start()
    try:
        yield
    finally:
        for proc in procs:
            proc.terminate()
            proc.join(5)


def summary(times: list[float]) -> str:
    ordered = sorted(times)
    p90 = ordered[max(0, round(0.9 * len(ordered)) - 1)]
    return (
        f"median {statistics.median(ordered):6.1f} ms   p90 {p90:6.1f} ms   "
        f"(min {ordered[0]:.1f}, max {ordered[-1]:.1f}, {len(ordered)} runs)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", action="append", default=[], help="a git commit to compare")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--load", type=int, default=0, help="cores kept busy meanwhile")
    args = parser.parse_args()
    if not 1 <= args.runs <= 1000 or not 0 <= args.load <= 8:
        parser.error("--runs must be from 1 to 1000 and --load from 0 to 8")
    with tempfile.TemporaryDirectory(prefix="wsio-cli-startup-") as tmp:
        work = Path(tmp)
        sides: list[tuple[str, Path]] = []
        for ref in args.ref:
            log(f"building {ref} ...")
            sides.append((ref, build_env(ref, work)))
        log("building the working tree ...")
        sides.append(("working tree", build_env(None, work)))
        print(
            f"wsio --help, Python {sys.version.split()[0]}, {os.cpu_count()} cores, "
            f"load average {os.getloadavg()[0]:.2f}, {args.load} cores kept busy"
        )
        with busy_cores(args.load, 600):
            for label, bin_dir in sides:
                floor = timed([str(bin_dir / "python"), "-c", "pass"], args.runs)
                help_times = timed([str(bin_dir / "wsio"), "--help"], args.runs)
                print(f"{label:<14} wsio --help       {summary(help_times)}")
                print(f"{label:<14} python -c pass    {summary(floor)}")
        for label, bin_dir in sides:
            print(f"{label:<14} imports: {', '.join(imported(bin_dir))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
