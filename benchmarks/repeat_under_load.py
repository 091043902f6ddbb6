"""Run one test many times while other cores are kept busy, and count how
often it fails: the check that a test is not flaky on a loaded machine.

::

    .venv/bin/python benchmarks/repeat_under_load.py \\
        tests/reliability/test_rel_fuzz.py --runs 20 --load 1 --seed 20261130

Each run is a fresh ``pytest`` of the given node; ``--load N`` keeps N
plain busy loops spinning for the whole run (each bounded by ``--max-hours``).
``--seed`` fixes ``RELIABILITY_SEED`` (the CI corpus by default) so that the
runs differ only by the machine. After each run the figures of the fuzz
test's leak checks (test-output/reliability/fuzz.json), when present, are
printed with its verdict; at the end, the count of failures. Nothing is
asserted here: it reports.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUZZ_JSON = ROOT / "test-output" / "reliability" / "fuzz.json"


def _spin(deadline: float, parent: int) -> None:
    # bounded twice: by the deadline, and by this script (an orphan stops)
    while time.monotonic() < deadline and os.getppid() == parent:
        pass


def figures() -> str:
    try:
        data = json.loads(FUZZ_JSON.read_text())
    except (OSError, ValueError):
        return ""
    return (
        f"objects/input {data.get('objects_per_input_second_half')}, "
        f"bytes/input {data.get('rss_bytes_per_input_second_half')}, "
        f"second-half RSS {data.get('rss_growth_second_half', 0) * 100:+.1f}%, "
        f"fuzz {data.get('fuzz_seconds')} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("node", help="the pytest node id or file")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--load", type=int, default=1, help="cores kept busy")
    parser.add_argument("--seed", default="20261130", help="RELIABILITY_SEED ('' for random)")
    parser.add_argument("--max-hours", type=float, default=3.0)
    args = parser.parse_args()
    if not 1 <= args.runs <= 200 or not 0 <= args.load <= 8:
        parser.error("--runs must be from 1 to 200 and --load from 0 to 8")
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
    failures = 0
    pytest = str(Path(sys.executable).parent / "pytest")
    try:
        for run in range(1, args.runs + 1):
            if time.monotonic() > deadline:
                print(f"stopped after {run - 1} runs: --max-hours reached", flush=True)
                break
            FUZZ_JSON.unlink(missing_ok=True)
            started = time.monotonic()
            result = subprocess.run(
                [pytest, "-q", "-p", "no:cacheprovider", args.node],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=3600,
            )
            failed = result.returncode != 0
            failures += failed
            last = (result.stdout.strip().splitlines() or [""])[-1]
            print(
                f"run {run:2}: {'FAILED' if failed else 'passed'} in "
                f"{time.monotonic() - started:5.0f} s, load average {os.getloadavg()[0]:.1f}; "
                f"{figures()}  [{last}]",
                flush=True,
            )
            if failed:
                errors = [ln for ln in result.stdout.splitlines() if ln.startswith("E ")]
                print("        " + "\n        ".join(errors[:5]), flush=True)
                kept = ROOT / "test-output" / f"repeat-run-{run}.txt"
                kept.write_text(result.stdout + result.stderr)
                print(f"        the whole output: {kept}", flush=True)
    finally:
        for spinner in spinners:
            spinner.terminate()
            spinner.join(5)
    print(f"{failures} of {args.runs} runs failed ({args.load} cores kept busy)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
