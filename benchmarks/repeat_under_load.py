"""Run one test many times while the machine is kept busy, and count how
often it fails: the check that a test is not flaky on a loaded machine.

::

    .venv/bin/python benchmarks/repeat_under_load.py \\
        tests/reliability/test_rel_fuzz.py --runs 20 --parallel 2 --seed 20261130

Each run is a fresh ``pytest`` of the given node, with a test-output folder
of its own (``WSIO_TEST_OUTPUT``). ``--parallel N`` keeps N runs going at
once, each the others' load (on a 2-core machine, two fuzz runs keep both
cores busy, and twice as many runs fit in an hour); ``--load N`` adds N
plain busy loops for the whole time (each bounded by ``--max-hours``).
``--seed`` fixes ``RELIABILITY_SEED`` (the CI corpus by default) so that
the runs differ only by the machine. After each run the figures of the fuzz
test's leak checks (``reliability/fuzz.json`` in the run's folder), when
present, are printed with its verdict; at the end, the count of failures.
Nothing is asserted here: it reports.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _spin(deadline: float, parent: int) -> None:
    # bounded twice: by the deadline, and by this script (an orphan stops)
    while time.monotonic() < deadline and os.getppid() == parent:
        pass


def figures(output: Path) -> str:
    try:
        data = json.loads((output / "reliability" / "fuzz.json").read_text())
    except (OSError, ValueError):
        return ""
    return (
        f"objects/input {data.get('objects_per_input_second_half')}, "
        f"bytes/input {data.get('rss_bytes_per_input_second_half')}, "
        f"second-half RSS {data.get('rss_growth_second_half', 0) * 100:+.1f}%, "
        f"fuzz {data.get('fuzz_seconds')} s"
    )


def one_run(run: int, node: str, env: dict[str, str], output: Path) -> tuple[int, bool, str]:
    """One pytest of ``node``; (run, failed, the report line and details)."""
    started = time.monotonic()
    env = dict(env, WSIO_TEST_OUTPUT=str(output))
    pytest = str(Path(sys.executable).parent / "pytest")
    result = subprocess.run(
        [pytest, "-q", "-p", "no:cacheprovider", node],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    failed = result.returncode != 0
    last = (result.stdout.strip().splitlines() or [""])[-1]
    line = (
        f"run {run:2}: {'FAILED' if failed else 'passed'} in "
        f"{time.monotonic() - started:5.0f} s, load average {os.getloadavg()[0]:.1f}; "
        f"{figures(output)}  [{last}]"
    )
    if failed:
        errors = [ln for ln in result.stdout.splitlines() if ln.startswith("E ")]
        kept = output / f"repeat-run-{run}.txt"
        kept.write_text(result.stdout + result.stderr)
        line += "\n        " + "\n        ".join(errors[:5])
        line += f"\n        the whole output: {kept}"
    return run, failed, line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("node", help="the pytest node id or file")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=1, help="runs going at once")
    parser.add_argument("--load", type=int, default=1, help="cores kept busy besides")
    parser.add_argument("--seed", default="20261130", help="RELIABILITY_SEED ('' for random)")
    parser.add_argument("--max-hours", type=float, default=3.0)
    args = parser.parse_args()
    if not 1 <= args.runs <= 200 or not 0 <= args.load <= 8 or not 1 <= args.parallel <= 4:
        parser.error("--runs must be from 1 to 200, --load from 0 to 8, --parallel from 1 to 4")
    deadline = time.monotonic() + args.max_hours * 3600
    spinners = [
        multiprocessing.Process(target=_spin, args=(deadline, os.getpid()), daemon=True)
        for _ in range(args.load)
    ]
    for spinner in spinners:
        spinner.start()
    env = dict(os.environ)
    if args.seed:
        env["RELIABILITY_SEED"] = args.seed
    (ROOT / "test-output").mkdir(exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="repeat-", dir=ROOT / "test-output"))
    print(f"outputs in {base}", flush=True)
    failures = done = 0
    started = 0
    try:
        with ThreadPoolExecutor(args.parallel) as pool:
            running: set[Future[tuple[int, bool, str]]] = set()
            while done < args.runs:
                while len(running) < args.parallel and started < args.runs:
                    if time.monotonic() > deadline:
                        break
                    started += 1
                    output = base / f"run-{started}"
                    running.add(pool.submit(one_run, started, args.node, env, output))
                if not running:
                    print(f"stopped after {done} runs: --max-hours reached", flush=True)
                    break
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    _, failed, line = future.result()
                    done += 1
                    failures += failed
                    print(line, flush=True)
    finally:
        for spinner in spinners:
            spinner.terminate()
            spinner.join(5)
    print(
        f"{failures} of {done} runs failed ({args.parallel} at once, "
        f"{args.load} cores kept busy besides)",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
