"""Measure webpy-socketio next to Node socket.io, Flask-SocketIO and plain
python-socketio, in one run, and write ``benchmarks/RESULTS.md``.

::

    benchmarks/run.sh                 # everything, about 10 minutes
    benchmarks/run.sh --quick         # a smaller run while iterating (no RESULTS.md)

Every server runs alone, pinned to core 0 (``taskset -c 0``); the load
generator (``loadgen.js``) runs pinned to core 1. Before each measurement the
machine must be quiet (both cores under 10 % busy); during each repetition the
busy time of each pinned core is compared with the CPU time of the process
pinned there, and a repetition where something else took more than
``--max-interference`` % of a core is kept in the JSON as unclean, left out of
the medians and replaced (at most two extra tries).

Only the standard library is used here, so any Python 3.11 can run it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SERVERS_DIR = BENCH / "servers"
TMP = Path(os.environ.get("TMPDIR") or "/tmp")
PEER_VENV = Path(os.environ.get("WSIO_BENCH_VENV") or TMP / "wsio-bench-venv")

#: the operations features' variants of a webpy server (suffix, environment
#: variable of webpy_app.py); report.paired sets each beside its base
VARIANTS = (("metrics", "WSIO_BENCH_METRICS"), ("limits", "WSIO_BENCH_RATE_LIMIT"))

#: name -> (label, command template); the first one is the reference (ratio 1.00)
SERVERS: dict[str, tuple[str, list[str]]] = {}


def define_servers(our_python: str, compare: list[str] | None = None) -> None:
    """Fill :data:`SERVERS`; each ``compare`` item, ``NAME=DIR``, adds the
    server "webpy-NAME": the same app on the webpy_socketio package of the
    checkout in DIR (e.g. a git worktree of an earlier commit), so a change
    is measured before and after in one run (and webpy-NAME-metrics,
    webpy-NAME-limits: that checkout with each operations feature on)."""
    peer_python = str(PEER_VENV / "bin" / "python")
    SERVERS.update(
        {
            "node": ("Node socket.io 4.8", ["node", str(SERVERS_DIR / "node_sio.js")]),
            "flask": (
                "Flask-SocketIO (gevent)",
                [peer_python, str(SERVERS_DIR / "flask_gevent.py")],
            ),
            "pysio": (
                "python-socketio (gevent)",
                [peer_python, str(SERVERS_DIR / "pysio_gevent.py")],
            ),
            "webpy": (
                "webpy-socketio",
                [our_python, str(SERVERS_DIR / "webpy_app.py")],
            ),
            # channel history on the room: Node's connection state recovery
            # beside ours in memory and on Redis (a redis-server of its own)
            "node-csr": (
                "Node socket.io 4.8, connection state recovery",
                ["env", "SIO_CSR=1", "node", str(SERVERS_DIR / "node_sio.js")],
            ),
            "webpy-history": (
                "webpy-socketio, history in memory",
                ["env", "WSIO_BENCH_HISTORY=1", our_python, str(SERVERS_DIR / "webpy_app.py")],
            ),
            "webpy-history-redis": (
                "webpy-socketio, history on Redis",
                ["env", "WSIO_BENCH_HISTORY=1", our_python, str(SERVERS_DIR / "webpy_app.py")],
            ),
            # the same, with the room's subscribers tracked (presence)
            "webpy-presence": (
                "webpy-socketio, presence on",
                ["env", "WSIO_BENCH_PRESENCE=1", our_python, str(SERVERS_DIR / "webpy_app.py")],
            ),
        }
    )
    # the same server with the operations features on, to measure their cost
    for name, variable in VARIANTS:
        SERVERS[f"webpy-{name}"] = (
            f"webpy-socketio, {name} on",
            ["env", f"{variable}=1", our_python, str(SERVERS_DIR / "webpy_app.py")],
        )
    for item in compare or []:
        name, _, folder = item.partition("=")
        if not name or not folder or not (Path(folder) / "webpy_socketio").is_dir():
            raise SystemExit(f"--compare wants NAME=DIR with DIR/webpy_socketio, not {item!r}")
        path = f"PYTHONPATH={Path(folder).resolve()}"
        app = [our_python, str(SERVERS_DIR / "webpy_app.py")]
        SERVERS[f"webpy-{name}"] = (f"webpy-socketio at {name}", ["env", path, *app])
        # and its operations variants: webpy-NAME-metrics, webpy-NAME-limits
        for variant, variable in VARIANTS:
            SERVERS[f"webpy-{name}-{variant}"] = (
                f"webpy-socketio at {name}, {variant} on",
                ["env", path, f"{variable}=1", *app],
            )


def log(*parts: Any) -> None:
    print(*parts, flush=True)


# ---------------------------------------------------------------------- setup


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kwargs)


def setup(our_python: str) -> None:
    """Install the Node packages and the Python peers when missing."""
    if not (BENCH / "node_modules" / "socket.io" / "package.json").is_file():
        log("setup: npm ci in benchmarks/")
        run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=BENCH, timeout=300)
    marker = PEER_VENV / ".wsio-requirements"
    wanted = (BENCH / "requirements-peers.txt").read_text()
    if not marker.is_file() or marker.read_text() != wanted:
        log(f"setup: peer venv in {PEER_VENV}")
        if not (PEER_VENV / "bin" / "python").exists():
            run([sys.executable, "-m", "venv", str(PEER_VENV)], timeout=300)
        pip = [str(PEER_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
        run([*pip, "-r", str(BENCH / "requirements-peers.txt")], timeout=600)
        marker.write_text(wanted)
    check = "import webpy_socketio, web, gevent, socketio"
    run([our_python, "-c", check], timeout=60)


# ---------------------------------------------------------------------- CPU and memory


def core_busy() -> list[int]:
    """Busy jiffies per core (user nice system irq softirq steal)."""
    out = []
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            f = [int(x) for x in line.split()[1:]]
            out.append(f[0] + f[1] + f[2] + f[5] + f[6] + f[7])
    return out


def wait_quiet(limit: float = 10.0, patience: float = 20.0) -> float:
    """Wait (at most ``patience`` seconds) until no core is more than
    ``limit`` % busy over half a second. Return the seconds waited,
    negative when it gave up."""
    t0 = time.monotonic()
    while True:
        a = core_busy()
        time.sleep(0.5)
        b = core_busy()
        # jiffies are 1/100 s, so jiffies per 0.5 s times 2 is % busy
        busiest = max((y - x) * 2 for x, y in zip(a, b, strict=True))
        waited = round(time.monotonic() - t0, 1)
        if busiest < limit:
            return waited
        if waited > patience:
            return -waited


def patience(args: argparse.Namespace) -> float:
    """Seconds to wait for a quiet machine: less once the run is late."""
    return 20.0 if time.monotonic() - args.started < 0.7 * args.budget else 3.0


def rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` and its descendants, in KB."""
    total = 0
    pending = [pid]
    while pending:
        p = pending.pop()
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                pending.extend(int(c) for c in children)
    return total


# ---------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: servers that get a redis-server of their own (on the server core too:
#: its CPU is part of what serving costs), as WSIO_BENCH_QUEUE
NEEDS_REDIS = {"webpy-history-redis"}


class Server:
    """One benchmark server, pinned to the server core."""

    def __init__(self, name: str, cpu: str, logdir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.redis: subprocess.Popen | None = None
        cmd = ["taskset", "-c", cpu, *SERVERS[name][1], str(self.port)]
        self.log_path = logdir / f"{name}-{self.port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ, PYTHONUNBUFFERED="1", PORT=str(self.port))
        if name in NEEDS_REDIS:
            env["WSIO_BENCH_QUEUE"] = self._start_redis(cpu)
        env["NODE_PATH"] = str(BENCH / "node_modules")
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=SERVERS_DIR,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited: {self.log_path.read_text()[-2000:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{name} did not listen within 30 s")
            time.sleep(0.05)

    def _start_redis(self, cpu: str) -> str:
        port = free_port()
        self.redis = subprocess.Popen(
            [
                "taskset",
                "-c",
                cpu,
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                return f"redis://127.0.0.1:{port}/0"
            if time.monotonic() > deadline or self.redis.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def pids(self) -> str:
        """The processes whose CPU is the server's, for loadgen.js."""
        extra = [] if self.redis is None else [self.redis.pid]
        return ",".join(str(p) for p in [self.proc.pid, *extra])

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.redis is not None and self.redis.poll() is None:
            self.redis.terminate()
            self.redis.wait(5)
        self._log.close()


def node_env() -> dict[str, str]:
    return dict(os.environ, NODE_PATH=str(BENCH / "node_modules"))


def loadgen(args: argparse.Namespace, server: Server, mode: str, **options: Any) -> dict:
    """Run loadgen.js pinned to the client core; return its JSON."""
    cmd = ["taskset", "-c", args.client_cpu, "node", str(BENCH / "loadgen.js")]
    cmd += ["--url", server.url, "--mode", mode, "--server-pid", server.pids]
    cmd += ["--server-cpu", args.server_cpu, "--client-cpu", args.client_cpu]
    cmd += ["--max-interference", str(args.max_interference)]
    # past most of the time budget, disturbed repetitions are no longer
    # replaced, so a busy machine cannot stretch the run without bound
    late = time.monotonic() - args.started > 0.7 * args.budget
    options.setdefault("max_extra", 0 if late else args.max_extra)
    for key, value in options.items():
        cmd += ["--" + key.replace("_", "-"), str(value)]
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=options.get("timeout", 120) + 10,
        env=node_env(),
    )
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if not lines:
        return {"error": f"loadgen printed nothing (exit {done.returncode}): {done.stderr[-500:]}"}
    return json.loads(lines[-1])


def smoke(server: Server) -> dict:
    done = subprocess.run(
        ["node", str(BENCH / "smoke.js"), server.url],
        capture_output=True,
        text=True,
        timeout=40,
        env=node_env(),
    )
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"ok": False, "error": f"smoke.js: {done.stderr[-500:]}"}


# ---------------------------------------------------------------------- the tests


def clean_median(reps: list[dict], key: str) -> float | None:
    values = [r[key] for r in reps if r.get("clean") and r.get(key) is not None]
    if not values:
        values = [r[key] for r in reps if r.get(key) is not None]
    return statistics.median(values) if values else None


def fanout_messages(n: int, args: argparse.Namespace) -> tuple[int, int]:
    """Flood and rate-phase message counts for ``n`` subscribers: about
    ``--deliveries`` deliveries per flood phase and ``--rate-seconds`` of
    rate phase at the offered load."""
    flood = max(50, args.deliveries // n)
    rate = max(10, int(args.rate_seconds * args.offered / n))
    return flood, rate


def measure(
    args: argparse.Namespace, logdir: Path, summary: dict, name: str, mode: str, **options: Any
) -> dict:
    """Run loadgen's ``mode`` once against a fresh server ``name``, once
    the cores are quiet; return loadgen's result."""
    summary["waited_for_quiet"].append(wait_quiet(patience=patience(args)))
    server = Server(name, args.server_cpu, logdir)
    try:
        return loadgen(args, server, mode, **options)
    finally:
        server.stop()


def rotated(servers: list[str], turn: int) -> list[str]:
    """The servers in the order of round ``turn``: each goes first in turn,
    so none is always measured right after the same other one."""
    k = turn % len(servers) if servers else 0
    return servers[k:] + servers[:k]


def tagged(result: dict, turn: int) -> dict:
    """``result`` with each repetition marked with its round, so that the
    report can pair servers measured side by side (report.paired)."""
    reps = result.get("reps", [])
    for rep in [r for kind in reps.values() for r in kind] if isinstance(reps, dict) else reps:
        rep["round"] = turn
    return result


def merged(old: dict | None, new: dict) -> dict:
    """One server's loadgen result over several rounds: the repetitions of
    every round together (the other fields are the first round's)."""
    if old is None or "error" in old:
        return new
    if "error" in new:
        return old
    if isinstance(old["reps"], dict):
        for kind, reps in new["reps"].items():
            old["reps"].setdefault(kind, []).extend(reps)
    else:
        old["reps"].extend(new["reps"])
    for key in ("mismatches", "strays"):
        if key in new:
            old[key] = old.get(key, 0) + new[key]
    return old


def test_fanout(args: argparse.Namespace, logdir: Path, summary: dict) -> None:
    for n in args.fanout_n:
        flood, rate = fanout_messages(n, args)
        by_server = summary["fanout"].setdefault(str(n), {})
        for turn in range(args.rounds):
            for name in rotated(args.servers, turn):
                result = measure(
                    args,
                    logdir,
                    summary,
                    name,
                    "fanout",
                    clients=n,
                    messages=flood,
                    rate_messages=rate,
                    offered=args.offered,
                    size=args.size,
                    reps=args.reps,
                    timeout=300,
                )
                by_server[name] = merged(by_server.get(name), tagged(result, turn))
        for name in args.servers:
            result = by_server.get(name, {"error": "not measured"})
            if "error" in result:
                log(f"fanout N={n:<5} {name:<6} ERROR {result['error']}")
                continue
            f = result["reps"]["flood"]
            ok = all(r["complete"] for r in f + result["reps"]["rate"])
            log(
                f"fanout N={n:<5} {name:<6} {clean_median(f, 'deliveries_per_s'):>9,.0f} "
                f"deliveries/s  p50 {clean_median(f, 'p50_ms')} ms  "
                f"{'complete' if ok else 'INCOMPLETE'}"
            )


def test_echo(args: argparse.Namespace, logdir: Path, summary: dict) -> None:
    for turn in range(args.rounds):
        for name in rotated(args.servers, turn):
            result = measure(
                args,
                logdir,
                summary,
                name,
                "echo",
                clients=args.echo_clients,
                duration=args.echo_duration,
                size=args.size,
                reps=args.reps,
                timeout=120,
            )
            summary["echo"][name] = merged(summary["echo"].get(name), tagged(result, turn))
    for name in args.servers:
        result = summary["echo"].get(name, {"error": "not measured"})
        if "error" in result:
            log(f"echo {name:<6} ERROR {result['error']}")
            continue
        log(
            f"echo {name:<6} {clean_median(result['reps'], 'requests_per_s'):>9,.0f} req/s  "
            f"p50 {clean_median(result['reps'], 'p50_ms')} ms  mismatches {result['mismatches']}"
        )


def measure_each(
    args: argparse.Namespace, logdir: Path, summary: dict, mode: str, **options: Any
) -> Iterator[tuple[str, dict]]:
    """Run loadgen's ``mode`` against each server in turn (a fresh server
    each, once the cores are quiet), record every result in
    ``summary[mode]`` and yield the ones without an error."""
    for name in args.servers:
        result = measure(args, logdir, summary, name, mode, **options)
        summary.setdefault(mode, {})[name] = result
        if "error" in result:
            log(f"{mode} {name:<6} ERROR {result['error']}")
            continue
        yield name, result


def test_greedy(args: argparse.Namespace, logdir: Path, summary: dict) -> None:
    """One greedy client among polite ones (no rate limit configured)."""
    for name, result in measure_each(
        args,
        logdir,
        summary,
        "greedy",
        clients=args.echo_clients,
        duration=args.echo_duration,
        size=args.size,
        reps=args.reps,
        window=args.greedy_window,
        timeout=120,
    ):
        alone = clean_median(result["phases"]["alone"], "requests_per_s")
        shared = clean_median(result["phases"]["with_greedy"], "requests_per_s")
        worst = max(r["max_ms"] or 0 for r in result["phases"]["with_greedy"])
        log(
            f"greedy {name:<6} polite {alone:>8,.0f} req/s alone, {shared:>8,.0f} with a greedy "
            f"client ({shared / alone:.2f}); longest wait {worst:.0f} ms"
        )


def test_trickle(args: argparse.Namespace, logdir: Path, summary: dict) -> None:
    """Slow readers (read 50 ms every 6 s) beside healthy subscribers."""
    for name, result in measure_each(
        args,
        logdir,
        summary,
        "trickle",
        slow=args.trickle_slow,
        healthy=args.trickle_healthy,
        rate=args.trickle_rate,
        duration=args.trickle_seconds,
        size=args.trickle_size,
        concurrency=50,
        timeout=120,
    ):
        log(
            f"trickle {name:<6} RSS {result['rss_start_mb']:.0f} -> "
            f"max {result['rss_max_mb']:.0f} MB; "
            f"healthy p99 {result['healthy_p99_ms']} ms, max {result['healthy_max_ms']} ms, "
            f"{'complete' if result['healthy_complete'] else 'INCOMPLETE'}; "
            f"{result['slow_disconnected']}/{result['slow']} slow readers cut"
        )


def test_slowfanout(args: argparse.Namespace, logdir: Path, summary: dict) -> None:
    """Broadcast throughput to healthy subscribers, alone and with slow
    readers present (the trickle readers): the share each server keeps."""
    results = summary.setdefault("slowfanout", {})
    for name in args.servers:
        runs = {}
        for slow in (0, args.trickle_slow):
            runs[slow] = measure(
                args,
                logdir,
                summary,
                name,
                "trickle",
                slow=slow,
                healthy=args.slow_healthy,
                flood=1,
                duration=args.slow_seconds,
                size=args.size,
                concurrency=50,
                timeout=120,
            )
        results[name] = {str(k): v for k, v in runs.items()}
        alone, crowded = runs[0], runs[args.trickle_slow]
        if "error" in alone or "error" in crowded:
            log(f"slowfanout {name:<6} ERROR {alone.get('error') or crowded.get('error')}")
            continue
        a, c = alone["healthy_deliveries_per_s"], crowded["healthy_deliveries_per_s"]
        log(
            f"slowfanout {name:<6} {args.slow_healthy} healthy: {a:,} deliveries/s alone, "
            f"{c:,} with {args.trickle_slow} slow readers ({c / a:.2f} kept); "
            f"{crowded['slow_disconnected']} slow readers cut, "
            f"{'complete' if crowded['healthy_complete'] else 'INCOMPLETE'}"
        )


def test_pollers(args: argparse.Namespace, logdir: Path, summary: dict) -> None:
    """Long-polling subscribers in one room, broadcasts at a fixed rate:
    the server's CPU per delivered message and the latency."""
    for name, result in measure_each(
        args,
        logdir,
        summary,
        "pollers",
        pollers=args.pollers,
        rate=args.poll_rate,
        duration=args.poll_seconds,
        size=args.size,
        reps=args.reps,
        concurrency=50,
        timeout=240,
    ):
        reps = result["reps"]
        cpu = statistics.median(r["server_us_per_delivery"] or 0 for r in reps)
        p50 = statistics.median(r["p50_ms"] or 0 for r in reps)
        log(
            f"pollers {name:<6} {args.pollers} pollers, {args.poll_rate}/s: "
            f"{cpu:.1f} us server CPU per delivery, p50 {p50:.1f} ms, "
            f"{'complete' if all(r['complete'] for r in reps) else 'INCOMPLETE'}, "
            f"{result['errors']} request errors"
        )


def one_conns_rep(args: argparse.Namespace, name: str, logdir: Path) -> dict:
    server = Server(name, args.server_cpu, logdir)
    try:
        rss_fresh = rss_kb(server.pid)
        # warm up lazily loaded code, so it is not charged to connections
        loadgen(args, server, "echo", clients=10, duration=1, reps=1, max_extra=0, timeout=30)
        time.sleep(args.settle)
        rss0 = rss_kb(server.pid)
        cmd = ["taskset", "-c", args.client_cpu, "node", str(BENCH / "loadgen.js")]
        cmd += ["--url", server.url, "--mode", "conns", "--clients", str(args.conns)]
        cmd += ["--concurrency", str(args.conn_concurrency), "--server-pid", str(server.pid)]
        cmd += ["--server-cpu", args.server_cpu, "--client-cpu", args.client_cpu, "--timeout", "90"]
        gen = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=node_env(),
        )
        try:
            assert gen.stdout is not None and gen.stdin is not None
            first = json.loads(gen.stdout.readline() or '{"error": "loadgen died"}')
            if "error" in first:
                return first
            time.sleep(args.settle)
            rss_n = rss_kb(server.pid)
            gen.stdin.write("go\n")
            gen.stdin.flush()
            final = json.loads(gen.stdout.readline() or '{"error": "loadgen died"}')
            gen.wait(30)
        finally:
            if gen.poll() is None:
                gen.kill()
                gen.wait(5)
        time.sleep(1)
        rss_after = rss_kb(server.pid)
    finally:
        server.stop()
    return {
        "rss_fresh_mb": round(rss_fresh / 1024, 1),
        "rss0_mb": round(rss0 / 1024, 1),
        "rssn_mb": round(rss_n / 1024, 1),
        "rss_after_mb": round(rss_after / 1024, 1),
        "kb_per_conn": round((rss_n - rss0) / args.conns, 2),
        "connect_s": first["connect_s"],
        "conns_per_s": round(args.conns / first["connect_s"]),
        "server_cpu_connecting": first.get("server_cpu"),
        "clean": first.get("clean", True),
        "alive": final.get("alive"),
        "checked": final.get("checked"),
    }


def test_conns(args: argparse.Namespace, logdir: Path, summary: dict) -> None:
    for rep in range(args.conn_reps):
        for name in args.servers:
            summary["waited_for_quiet"].append(wait_quiet(patience=patience(args)))
            result = one_conns_rep(args, name, logdir)
            summary["conns"].setdefault(name, []).append(result)
            if "error" in result:
                log(f"conns {name:<6} ERROR {result['error']}")
                continue
            log(
                f"conns {name:<6} rep {rep + 1}: {result['kb_per_conn']:6.1f} KB/conn  "
                f"connect {result['connect_s']:.2f} s  alive {result['alive']}/{result['checked']}"
            )


# ---------------------------------------------------------------------- versions


def versions(our_python: str) -> dict[str, str]:
    found: dict[str, str] = {
        "node": subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    }
    for pkg in ("socket.io", "engine.io", "ws", "socket.io-client", "socket.io-parser"):
        with contextlib.suppress(OSError, ValueError):
            meta = json.loads((BENCH / "node_modules" / pkg / "package.json").read_text())
            found[f"npm:{pkg}"] = meta["version"]
    wanted = {
        "flask",
        "flask-socketio",
        "python-socketio",
        "python-engineio",
        "gevent",
        "greenlet",
        "simple-websocket",
        "wsproto",
        "web.py",
        "webpy-socketio",
        "orjson",
    }
    for label, python in (("peers", str(PEER_VENV / "bin" / "python")), ("ours", our_python)):
        with contextlib.suppress(subprocess.SubprocessError, ValueError, OSError):
            listed = subprocess.run(
                [python, "-m", "pip", "list", "--format", "json"],
                capture_output=True,
                text=True,
                timeout=60,
            ).stdout
            for item in json.loads(listed):
                if item["name"].lower() in wanted:
                    found[f"{label}:{item['name']}"] = item["version"]
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            found[f"{label}:python"] = subprocess.run(
                [python, "-c", "import platform; print(platform.python_version())"],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout.strip()
    return found


def machine() -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError):
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": platform.platform(),
    }


# ---------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small run; does not write RESULTS.md")
    p.add_argument("--servers", default="node,flask,pysio,webpy")
    p.add_argument("--tests", default="smoke,fanout,echo,conns")
    p.add_argument("--fanout-n", default="100,500,1000")
    p.add_argument("--deliveries", type=int, default=100_000, help="per flood phase")
    p.add_argument("--rate-seconds", type=float, default=3.0)
    p.add_argument("--offered", type=int, default=8000, help="rate phase deliveries/s")
    p.add_argument("--size", type=int, default=128, help="padding bytes per message")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="fan-out and echo: measure every server this many times, in turns, "
        "each time --reps repetitions (drift of a shared machine is then shared)",
    )
    p.add_argument("--echo-clients", type=int, default=50)
    p.add_argument("--echo-duration", type=float, default=3.0)
    p.add_argument("--conns", type=int, default=2000)
    p.add_argument("--conn-concurrency", type=int, default=100)
    p.add_argument("--conn-reps", type=int, default=2)
    p.add_argument("--settle", type=float, default=2.0)
    p.add_argument("--greedy-window", type=int, default=64, help="greedy client's requests out")
    p.add_argument("--trickle-slow", type=int, default=200)
    p.add_argument("--trickle-healthy", type=int, default=20)
    p.add_argument("--trickle-rate", type=int, default=200, help="broadcasts/s")
    p.add_argument("--trickle-size", type=int, default=8192, help="padding bytes per broadcast")
    p.add_argument("--trickle-seconds", type=float, default=12.0)
    p.add_argument("--slow-healthy", type=int, default=200, help="slowfanout's healthy ones")
    p.add_argument("--slow-seconds", type=float, default=6.0, help="slowfanout's flood")
    p.add_argument("--pollers", type=int, default=500, help="long-polling subscribers")
    p.add_argument("--poll-rate", type=int, default=10, help="broadcasts/s to the pollers")
    p.add_argument("--poll-seconds", type=float, default=5.0)
    p.add_argument("--server-cpu", default="0")
    p.add_argument("--client-cpu", default="1")
    p.add_argument("--max-interference", type=float, default=15.0)
    p.add_argument(
        "--max-extra", type=int, default=3, help="extra repetitions allowed to replace unclean ones"
    )
    p.add_argument(
        "--budget", type=float, default=780, help="seconds; later repetitions are not replaced"
    )
    p.add_argument("--python", default=None, help="interpreter that runs webpy-socketio")
    p.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="also measure the checkout in DIR as server webpy-NAME (add it to --servers)",
    )
    p.add_argument("--results", default=None, help="write RESULTS.md here")
    p.add_argument("--no-setup", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.fanout_n = "100,1000"
        args.reps = 2
        args.deliveries = 40_000
        args.rate_seconds = 1.5
        args.echo_duration = 2.0
        args.conns = 1000
        args.conn_reps = 1
    if not 1 <= args.rounds <= 20:
        p.error("--rounds must be from 1 to 20")
    args.servers = [s for s in args.servers.split(",") if s]
    args.tests = [t for t in args.tests.split(",") if t]
    args.fanout_n = [int(n) for n in str(args.fanout_n).split(",") if n]
    return args


def our_interpreter(args: argparse.Namespace) -> str:
    if args.python:
        return str(args.python)
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = args.started = time.monotonic()
    our_python = our_interpreter(args)
    define_servers(our_python, args.compare)
    unknown = [s for s in args.servers if s not in SERVERS]
    if unknown:
        raise SystemExit(f"unknown servers {unknown}; choose from {list(SERVERS)}")
    if not args.no_setup:
        setup(our_python)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    outdir = BENCH / "results" / stamp
    outdir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "params": {k: v for k, v in vars(args).items() if k != "started"},
        "servers": {
            k: {"label": v[0], "command": " ".join(v[1])}
            for k, v in SERVERS.items()
            if k in args.servers
        },
        "machine": machine(),
        "versions": versions(our_python),
        "smoke": {},
        "fanout": {},
        "echo": {},
        "conns": {},
        "waited_for_quiet": [],
    }
    if "smoke" in args.tests:
        for name in list(args.servers):
            server = Server(name, args.server_cpu, outdir)
            try:
                summary["smoke"][name] = smoke(server)
            finally:
                server.stop()
            log(f"smoke {name:<6} {summary['smoke'][name]}")
            if not summary["smoke"][name].get("ok"):
                args.servers.remove(name)
    tests = (
        ("fanout", test_fanout),
        ("echo", test_echo),
        ("conns", test_conns),
        ("greedy", test_greedy),
        ("trickle", test_trickle),
        ("pollers", test_pollers),
        ("slowfanout", test_slowfanout),
    )
    for test, function in tests:
        if test in args.tests:
            function(args, outdir, summary)
            (outdir / "summary.json").write_text(json.dumps(summary, indent=1))
    summary["wall_s"] = round(time.monotonic() - started, 1)
    (outdir / "summary.json").write_text(json.dumps(summary, indent=1))
    latest = BENCH / "results" / "latest"
    with contextlib.suppress(OSError):
        latest.unlink()
    latest.symlink_to(stamp)

    from report import render  # noqa: PLC0415 - a sibling script, not a package

    results_md = Path(args.results) if args.results else None
    if results_md is None and not args.quick:
        results_md = BENCH / "RESULTS.md"
    text, headline = render(summary)
    (outdir / "RESULTS.md").write_text(text)
    if results_md is not None:
        results_md.write_text(text)
    log("")
    log(headline)
    log(f"\nwall time {summary['wall_s']:.0f} s; JSON in {outdir / 'summary.json'}")
    if results_md is not None:
        log(f"wrote {results_md}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH))
    sys.exit(main())
