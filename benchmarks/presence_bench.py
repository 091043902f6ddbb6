"""Presence under load: a burst of joins across two workers sharing Redis,
the Redis commands each join costs, and message fan-out with presence on
beside off, in one run. Prints the figures and writes them as JSON to
benchmarks/results/.

::

    .venv/bin/python benchmarks/presence_bench.py            # about 3 minutes
    .venv/bin/python benchmarks/presence_bench.py --clients 300 --reps 1   # quicker

What it measures:

- **burst**: ``--clients`` raw Socket.IO clients (benchmarks/presence_load.js,
  websocket), spread over ``--workers`` server processes of
  servers/webpy_app.py with presence on and a Redis queue (then again in
  one process without Redis), connect; then
  all of them subscribe to one presence channel at once. Each client applies
  the state in its ack and every change; the figure is the time from the
  first subscribe until every client's list holds every client (and until
  every ack was in). Redis's own command counts (INFO commandstats) before
  and after give the commands per join: round trips (EVALSHA), commands the
  scripts ran, and PUBLISHes.
- **fan-out**: ``--clients`` subscribers of one channel, a sender
  broadcasting ``--messages`` messages to it, each after the previous one's
  ack: deliveries per second with presence on and off (the same workers,
  the same Redis), alternated, and the ratio; then the same in one process
  without Redis.

The servers (and Redis) are pinned to ``--server-cpu`` and the load
generator to ``--client-cpu`` with taskset, as in run.py. The machine may
be shared: the JSON records the load average before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
SERVER = BENCH / "servers" / "webpy_app.py"
LOAD = BENCH / "presence_load.js"


def log(*parts: Any) -> None:
    print(*parts, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout} s")


class Proc:
    def __init__(self, cmd: list[str], log_path: Path, env: dict[str, str] | None = None):
        self.log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


class Redis(Proc):
    def __init__(self, cpu: str, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (apt install redis-server)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        cmd = ["taskset", "-c", cpu, binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        cmd += ["--save", "", "--appendonly", "no", "--dir", str(folder)]
        super().__init__(cmd, folder / "redis.log")
        wait_port(self.port, self.proc, "redis-server")

    def commandstats(self) -> dict[str, int]:
        import redis

        client = redis.Redis.from_url(self.url)
        try:
            stats = client.info("commandstats")
        finally:
            client.close()
        return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def start_workers(args: argparse.Namespace, folder: Path, queue: str | None, presence: bool):
    workers, ports = [], []
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("WSIO_BENCH_PRESENCE", None)
    if presence:
        env["WSIO_BENCH_PRESENCE"] = "1"
    if queue:
        env["WSIO_BENCH_QUEUE"] = queue
    count = args.workers if queue else 1
    for i in range(count):
        port = free_port()
        cmd = ["taskset", "-c", args.server_cpu, args.python, str(SERVER), str(port)]
        workers.append(Proc(cmd, folder / f"worker{i}-{port}.log", env))
        ports.append(port)
    for worker, port in zip(workers, ports, strict=True):
        wait_port(port, worker.proc, "a worker")
    return workers, [f"http://127.0.0.1:{p}" for p in ports]


def load(
    args: argparse.Namespace,
    urls: list[str],
    mode: str,
    then: Any = None,
    ready: Any = None,
    **options: Any,
) -> dict[str, Any]:
    """Run presence_load.js; ``ready()`` runs when its fan-out subscribers
    are in (before the broadcasts start), ``then()`` once it has printed its
    result, while its clients are still connected."""
    cmd = ["taskset", "-c", args.client_cpu, "node", str(LOAD), "--urls", ",".join(urls)]
    cmd += ["--mode", mode, "--clients", str(args.clients)]
    for key, value in options.items():
        cmd += ["--" + key.replace("_", "-"), str(value)]
    env = dict(os.environ, NODE_PATH=str(BENCH / "node_modules"))
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True, env=env
        )
        assert proc.stdin is not None and proc.stdout is not None
        # the load generator's own timeout bounds these reads
        line = proc.stdout.readline()
        if mode == "fanout" and '"ready"' in line:
            # what the subscribes started (the last presence changes going
            # out) is over before the broadcasts are measured
            time.sleep(args.settle)
            if ready is not None:
                ready()
            proc.stdin.write("go\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
        if then is not None:
            then()
        proc.stdin.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if not line.strip():
            errors.seek(0)
            return {"error": f"no output (exit {proc.returncode}): {errors.read()[-800:]!r}"}
    return dict(json.loads(line))


def burst(args: argparse.Namespace, folder: Path, redis: Redis | None) -> list[dict[str, Any]]:
    """The burst over the workers sharing ``redis`` (or in one process
    without a queue, ``redis=None``)."""
    reps = []
    for rep in range(args.reps):
        workers, urls = start_workers(args, folder, redis.url if redis else None, presence=True)
        try:
            before = redis.commandstats() if redis else {}
            counted: list[dict[str, int]] = []
            result = load(
                args,
                urls,
                "burst",
                then=lambda into=counted: into.append(redis.commandstats() if redis else {}),
                channel=f"bench-burst-{rep}",
            )
            after = counted[0] if counted else before
        finally:
            for worker in workers:
                worker.stop()
        n = args.clients
        if redis is not None:
            delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
            evalsha = delta.get("evalsha", 0) + delta.get("eval", 0)
            result["redis_per_join"] = {
                "round_trips": round(evalsha / n, 2),
                "commands_in_scripts": round((sum(delta.values()) - evalsha) / n, 2),
                "publish": round(delta.get("publish", 0) / n, 2),
            }
        reps.append(result)
        log(
            f"burst rep {rep + 1}: {n} joins over {len(urls)} process(es): every list complete "
            f"after {result.get('all_complete_s')} s (acks {result.get('all_acked_s')} s, "
            f"p50 {result.get('p50_complete_s')} s); Redis per join "
            f"{result.get('redis_per_join', 'none')}"
        )
    return reps


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time of processes, in seconds."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def fanout(
    args: argparse.Namespace, folder: Path, queue: str | None, redis: Redis | None = None
) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    pids = [redis.proc.pid] if redis is not None else []
    for _round in range(args.reps):
        for setting in ("off", "on"):
            workers, urls = start_workers(args, folder, queue, presence=setting == "on")
            cpu: list[float] = []
            every = pids + [w.proc.pid for w in workers]
            try:
                result = load(
                    args,
                    urls,
                    "fanout",
                    ready=lambda into=cpu, every=every: into.append(cpu_seconds(every)),
                    then=lambda into=cpu, every=every: into.append(cpu_seconds(every)),
                    channel="bench",
                    messages=args.messages,
                )
            finally:
                for worker in workers:
                    worker.stop()
            if len(cpu) == 2 and result.get("reps"):
                deliveries = args.clients * args.messages * len(result["reps"])
                # the servers' (and Redis's) CPU per delivery: what presence
                # could add to a broadcast, less disturbed by a busy machine
                # than the wall-clock rate
                result["server_cpu_us_per_delivery"] = round(
                    (cpu[1] - cpu[0]) * 1e6 / deliveries, 2
                )
            results[setting].append(result)
            complete = all(r["complete"] for r in result.get("reps", [])) and "reps" in result
            log(
                f"fanout N={args.clients} presence {setting:>3} "
                f"({len(urls)} process{'es' if len(urls) > 1 else ''}"
                f"{', Redis' if queue else ''}): {result.get('median_deliveries_per_s')} "
                f"deliveries/s, {result.get('server_cpu_us_per_delivery')} us of server CPU "
                f"per delivery{'' if complete else ' INCOMPLETE ' + str(result.get('error', ''))}"
            )
    return results


def median_of(results: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in results if r.get(key) is not None]
    return statistics.median(values) if values else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--messages", type=int, default=100, help="per fan-out repetition")
    p.add_argument("--settle", type=float, default=2.0, help="seconds between subscribes and sends")
    p.add_argument("--server-cpu", default="0")
    p.add_argument("--client-cpu", default="1")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--tests", default="burst,fanout")
    p.add_argument("--keep", action="store_true", help="keep the server logs")
    args = p.parse_args(argv)
    tests = set(args.tests.split(","))
    folder = Path(tempfile.mkdtemp(prefix="wsio-presence-bench-"))
    summary: dict[str, Any] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "clients": args.clients,
        "workers": args.workers,
        "cpus": os.cpu_count(),
        "pinning": {"servers_and_redis": args.server_cpu, "load": args.client_cpu},
        "load_before": os.getloadavg(),
    }
    redis = Redis(args.server_cpu, folder)
    try:
        if "burst" in tests:
            summary["burst"] = burst(args, folder, redis)
            summary["burst_one_process"] = burst(args, folder, None)
        if "fanout" in tests:
            summary["fanout_redis"] = fanout(args, folder, redis.url, redis)
            summary["fanout_one_process"] = fanout(args, folder, None)
    finally:
        redis.stop()
    summary["load_after"] = os.getloadavg()
    log("")
    for name in ("burst", "burst_one_process"):
        if name in summary:
            done = [r["all_complete_s"] for r in summary[name] if r.get("all_complete_s")]
            log(
                f"{name} of {args.clients} joins: every list complete after "
                f"{statistics.median(done) if done else None} s (median of {len(done)}); "
                f"Redis per join {summary[name][-1].get('redis_per_join', 'none')}"
            )
    for name in ("fanout_redis", "fanout_one_process"):
        if name in summary:
            figures = {}
            for key in ("median_deliveries_per_s", "server_cpu_us_per_delivery"):
                off = median_of(summary[name]["off"], key)
                on = median_of(summary[name]["on"], key)
                ratio = round(on / off, 3) if on and off else None
                figures[key] = {"off": off, "on": on, "ratio_on_to_off": ratio}
            summary[name]["medians"] = figures
            rate, cpu = figures["median_deliveries_per_s"], figures["server_cpu_us_per_delivery"]
            log(
                f"{name}: deliveries/s off {rate['off']}, on {rate['on']} (ratio "
                f"{rate['ratio_on_to_off']}); server CPU us per delivery off {cpu['off']}, "
                f"on {cpu['on']} (ratio {cpu['ratio_on_to_off']})"
            )
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    path = out / f"presence-{summary['date'].replace(':', '')}.json"
    path.write_text(json.dumps(summary, indent=2))
    log(f"wrote {path}")
    if args.keep:
        log(f"server logs in {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
