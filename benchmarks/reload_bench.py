"""How long a code change takes to reach an open page: ``wsio runserver``
beside Flask-SocketIO's ``socketio.run(app, debug=True, use_reloader=True)``
under gevent, on the same machine, in the same run.

::

    .venv/bin/python benchmarks/reload_bench.py              # 20 edits each, in Chromium
    .venv/bin/python benchmarks/reload_bench.py --http       # the server only (GET /value)
    .venv/bin/python benchmarks/reload_bench.py --all        # also both stat reloaders

One edit: rewrite ``VALUE = "..."`` in the module the app's handlers use
(in place, as an editor saves). By default (``--browser``) a page is open in
headless Chromium (/usr/bin/chromium), connected with the official client
and subscribed to a channel, as a chat page is; on every connect it asks
the server for the value over Socket.IO and shows it. The figure is the time
from just before the write to the moment the page shows the new value
(``Date.now()`` in the page against the wall clock here): it includes
noticing the change, the restart, the imports, the page's reconnection
(with whatever back-off its client applies) and the round trip. With
``--http``, ``GET /value`` is requested every 2 ms instead, and the figure
ends at the first answer carrying the new value. Between edits the server
gets ``--pause`` seconds to settle.

Both sides serve the same page script and the same client file, the
version webpy-socketio pins, put in each project's static/ by ``wsio
client`` (npm). Flask-SocketIO runs in its own virtualenv under $TMPDIR
(default /tmp), made on first use from ``requirements-peers.txt`` plus
watchdog (werkzeug's reloader uses watchdog when it is installed, its faster
choice); nothing is installed into the project's .venv. Not part of the
test suite: no timing is asserted anywhere, the figures and their ratio are
printed (median and p90), and the raw times are written to
``benchmarks/results/reload-latest.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
TMP = Path(os.environ.get("TMPDIR") or "/tmp")
VENV = Path(os.environ.get("WSIO_RELOAD_BENCH_VENV") or TMP / "wsio-reload-bench-venv")
#: werkzeug picks watchdog when it is importable; same version as ours
WATCHDOG = "watchdog==7.1.0"
WSIO = Path(sys.executable).parent / "wsio"

FLASK_APP = '''\
"""Flask-SocketIO under gevent, run as its documentation shows for
development: socketio.run(app, debug=True, use_reloader=True)."""
import os
import sys

from flask import Flask
from flask_socketio import SocketIO, join_room

import values

PAGE = (
    '<!doctype html><meta charset="utf-8"><title>reload bench</title><p id="value"></p>'
    '<script src="/static/socket.io.min.js"></script><script src="/static/bench.js"></script>'
)
app = Flask(__name__)
socketio = SocketIO(app, async_mode="gevent")


@app.route("/value")
def value():
    return {"value": values.VALUE, "pid": os.getpid()}


@app.route("/")
def index():
    return PAGE


@socketio.on("value")
def value_event():
    return values.VALUE


@socketio.on("join")
def join(room):
    join_room(room)
    return True


if __name__ == "__main__":
    port, reloader = int(sys.argv[1]), sys.argv[2]
    socketio.run(
        app,
        host="127.0.0.1",
        port=port,
        debug=True,
        use_reloader=True,
        reloader_options={"reloader_type": reloader},
        log_output=False,
    )
'''


#: The page script both servers serve: on every connect it joins a channel
#: (wsio.js does it again by itself after a reconnect; the Flask page asks)
#: and shows the server's value, noting when each value was first shown.
BENCH_JS = """
window.bench = { shown: {}, connects: 0 };
var socket = io();
var wsio = typeof socket.subscribe === "function";
function show(value) {
  if (!(value in window.bench.shown)) { window.bench.shown[value] = Date.now(); }
  document.getElementById("value").textContent = value;
}
socket.on("connect", function () {
  window.bench.connects += 1;
  if (!wsio) { socket.emit("join", "room-1"); }
  socket.emit("value", show);
});
if (wsio) { socket.subscribe("room-1"); }
"""
WSIO_TEMPLATE = """<!doctype html>
<html><head><meta charset="utf-8"><title>reload bench</title></head>
<body><p id="value"></p>
<%include file="socketio_scripts.html"/>
<script src="/static/bench.js"></script>
</body></html>
"""
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peer_python() -> str:
    """The Flask-SocketIO virtualenv's python, made on first use."""
    python = VENV / "bin" / "python"
    if not python.exists():
        log(f"setup: Flask-SocketIO virtualenv in {VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
            + ["-r", str(BENCH / "requirements-peers.txt"), WATCHDOG],
            check=True,
            timeout=900,
        )
    return str(python)


def versions(python: str, names: list[str]) -> dict[str, str]:
    code = (
        "import json, sys\nfrom importlib import metadata\nout = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = metadata.version(n)\n"
        "    except metadata.PackageNotFoundError: out[n] = None\n"
        "print(json.dumps(out))"
    )
    result = subprocess.run(
        [python, "-c", code, *names], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(result.stdout)  # type: ignore[no-any-return]


# -- one server under measurement ---------------------------------------------------------


class Server:
    """A dev server in its own process group, stopped for sure."""

    def __init__(self, command: list[str], cwd: Path, port: int, log_path: Path) -> None:
        self.port = port
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            command, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True, env=env,
        )  # fmt: skip

    def get_value(self, timeout: float = 2.0) -> str | None:
        """The value served now, or None (refused, reset, an error page)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", "/value")
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                return None
            return str(json.loads(body)["value"])
        except (OSError, http.client.HTTPException, ValueError):
            return None
        finally:
            conn.close()

    def wait_value(self, expected: str, timeout: float) -> float | None:
        """Seconds until ``expected`` is served (None: not within timeout)."""
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited; see {self.log_path}")
            if self.get_value() == expected:
                return time.perf_counter() - started
            time.sleep(0.002)
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        # the group may hold children that outlived their parent
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()


class BrowserProbe:
    """An open page on a server: what it shows, and when it first showed it."""

    def __init__(self, browser: Any, server: Server) -> None:
        self.server = server
        self.page = browser.new_page()
        self.page.goto(f"http://127.0.0.1:{server.port}/")

    def wait_value(self, expected: str, timeout: float, since: float | None = None) -> float | None:
        """Seconds from ``since`` (a ``time.time()``; default now) until the
        page showed ``expected``, by the page's clock (None: not within
        timeout)."""
        written = time.time() if since is None else since
        try:
            self.page.wait_for_function(
                f"window.bench && window.bench.shown[{json.dumps(expected)}] !== undefined",
                timeout=timeout * 1000,
                polling=10,
            )
        except Exception:  # noqa: BLE001 - playwright's timeout: the edit was missed
            if self.server.proc.poll() is not None:
                raise RuntimeError(f"the server exited; see {self.server.log_path}") from None
            return None
        shown = self.page.evaluate(f"window.bench.shown[{json.dumps(expected)}]")
        return max(0.0, shown / 1000 - written)

    def close(self) -> None:
        self.page.close()


def set_value(path: Path, value: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines = [f'VALUE = "{value}"\n' if line.startswith("VALUE = ") else line for line in lines]
    with open(path, "w") as f:  # in place: truncate and write, as most editors save
        f.write("".join(lines))


def measure(
    label: str,
    server: Server,
    module: Path,
    edits: int,
    pause: float,
    timeout: float,
    first: float = 60,
    browser: Any = None,
) -> dict[str, Any]:
    """Time ``edits`` edits of ``module`` (after one that warms up), through
    an open page when ``browser`` is given, else through ``GET /value``."""
    if server.wait_value("v0", first) is None:
        raise RuntimeError(f"never served the first value within {first:g} s")
    probe: Any = server
    if browser is not None:
        probe = BrowserProbe(browser, server)
        if probe.wait_value("v0", 30) is None:
            raise RuntimeError("the page never showed the first value")
    times: list[float] = []
    missed = 0
    try:
        for i in range(1, edits + 2):  # the first edit warms up and is not counted
            time.sleep(pause)
            value = f"v{i}"
            written = time.time()
            started = time.perf_counter()
            set_value(module, value)
            if browser is None:
                took = server.wait_value(value, timeout)
                if took is not None:
                    took = time.perf_counter() - started
            else:  # the page's own clock says when it showed the value
                took = probe.wait_value(value, timeout, since=written)
            if i == 1:
                continue
            if took is None:
                missed += 1
                log(f"  {label}: edit {i} not shown within {timeout:g} s")
                if probe.wait_value(value, 30) is None:
                    raise RuntimeError(f"edit {i} was never shown")
            else:
                times.append(took)
    finally:
        if browser is not None:
            probe.close()
    return summarize(label, times, missed)


def summarize(label: str, times: list[float], missed: int) -> dict[str, Any]:
    ordered = sorted(times)
    p90 = ordered[max(0, int(round(0.9 * len(ordered))) - 1)] if ordered else None
    return {
        "label": label,
        "edits": len(times) + missed,
        "missed": missed,
        "median_ms": statistics.median(ordered) * 1000 if ordered else None,
        "p90_ms": p90 * 1000 if p90 is not None else None,
        "min_ms": ordered[0] * 1000 if ordered else None,
        "max_ms": ordered[-1] * 1000 if ordered else None,
        "times_ms": [round(t * 1000, 1) for t in times],
    }


def client_file(work: Path) -> Path:
    """The pinned official client, fetched once by ``wsio client`` (npm)."""
    folder = work / "client"
    if not (folder / "static" / "socket.io.min.js").is_file():
        folder.mkdir(exist_ok=True)
        subprocess.run([str(WSIO), "client", "-d", str(folder)], check=True, timeout=300)
    return folder / "static" / "socket.io.min.js"


def add_page(project: Path, work: Path) -> None:
    """The page script and the client, in the project's static/."""
    static = project / "static"
    static.mkdir(exist_ok=True)
    (static / "bench.js").write_text(BENCH_JS)
    shutil.copyfile(client_file(work), static / "socket.io.min.js")


@contextlib.contextmanager
def wsio_server(work: Path, reloader: str, logs: Path) -> Iterator[tuple[Server, Path]]:
    project = work / f"wsio-{reloader}"
    shutil.copytree(
        ROOT / "tests" / "apps" / "reload_project",
        project,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    set_value(project / "events.py", "v0")
    (project / "templates" / "index.html").write_text(WSIO_TEMPLATE)
    add_page(project, work)
    port = free_port()
    command = [str(WSIO), "runserver", f"127.0.0.1:{port}", "--no-access-log"]
    if reloader != "watchdog":
        command += ["--reloader", reloader]
    server = Server(command, project, port, logs / f"wsio-{reloader}.log")
    try:
        yield server, project / "events.py"
    finally:
        server.stop()


@contextlib.contextmanager
def flask_server(
    work: Path, python: str, reloader: str, logs: Path
) -> Iterator[tuple[Server, Path]]:
    project = work / f"flask-{reloader}"
    project.mkdir()
    (project / "app.py").write_text(FLASK_APP)
    (project / "values.py").write_text('VALUE = "v0"\n')
    add_page(project, work)
    port = free_port()
    command = [python, "app.py", str(port), reloader]
    server = Server(command, project, port, logs / f"flask-{reloader}.log")
    try:
        yield server, project / "values.py"
    finally:
        server.stop()


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Headless Chromium through Playwright (the system's Chromium)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def show(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"{result['label']:<72} FAILED: {result['error']}"
    if result["median_ms"] is None:
        return f"{result['label']:<72} no edit served"
    return (
        f"{result['label']:<72} median {result['median_ms']:7.1f} ms   p90 "
        f"{result['p90_ms']:7.1f} ms   (min {result['min_ms']:.1f}, max "
        f"{result['max_ms']:.1f}, {result['edits']} edits, {result['missed']} missed)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edits", type=int, default=20, help="measured edits per server")
    parser.add_argument("--pause", type=float, default=0.6, help="seconds between edits")
    parser.add_argument("--timeout", type=float, default=15, help="seconds an edit may take")
    parser.add_argument(
        "--all",
        action="store_true",
        help="also wsio's stat reloader, and Flask-SocketIO with werkzeug's watchdog reloader",
    )
    parser.add_argument("--only", choices=["wsio", "flask"], help="measure one side only")
    parser.add_argument(
        "--http",
        dest="browser",
        action="store_false",
        help="time until GET /value answers the new value, instead of an open page showing it",
    )
    args = parser.parse_args()
    if not 1 <= args.edits <= 500:
        parser.error("--edits must be from 1 to 500")

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="wsio-reload-bench-") as tmp:
        work = Path(tmp)
        logs = ROOT / "test-output" / "reload-bench"
        logs.mkdir(parents=True, exist_ok=True)
        info: dict[str, Any] = {
            "python": platform.python_version(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "loadavg_before": os.getloadavg(),
            "ours": versions(sys.executable, ["webpy-socketio", "gevent", "watchdog", "web.py"]),
            "measure": (
                "an open page (headless Chromium) showing the new value"
                if args.browser
                else "GET /value answering the new value"
            ),
        }
        python = ""
        if args.only != "wsio":
            python = peer_python()
            info["peer"] = versions(
                python, ["Flask-SocketIO", "Flask", "Werkzeug", "gevent", "watchdog"]
            )
        run = "socketio.run(app, debug=True, use_reloader=True)"
        # (key, side, label, server factory, seconds allowed for the first answer)
        series: list[tuple[str, str, str, Any, float]] = [
            ("wsio", "wsio", "wsio runserver", lambda: wsio_server(work, "watchdog", logs), 60),
            (
                "flask",
                "flask",
                f"Flask-SocketIO {run}, werkzeug stat reloader",
                lambda: flask_server(work, python, "stat", logs),
                60,
            ),
        ]
        if args.all:
            series += [
                (
                    "wsio-stat",
                    "wsio",
                    "wsio runserver --reloader stat",
                    lambda: wsio_server(work, "stat", logs),
                    60,
                ),
                (
                    "flask-watchdog",
                    "flask",
                    f"Flask-SocketIO {run}, werkzeug watchdog reloader",
                    lambda: flask_server(work, python, "watchdog", logs),
                    20,
                ),
            ]
        with contextlib.ExitStack() as stack:
            browser = stack.enter_context(chromium()) if args.browser else None
            for key, side, label, factory, first in series:
                if args.only and side != args.only:
                    continue
                log(f"measuring {label} ...")
                with factory() as (server, module):
                    try:
                        result = measure(
                            label,
                            server,
                            module,
                            args.edits,
                            args.pause,
                            args.timeout,
                            first,
                            browser,
                        )
                    except RuntimeError as exc:
                        result = {"label": label, "error": str(exc)}
                results.append({"key": key, **result})
        info["loadavg_after"] = os.getloadavg()
        info["finished"] = time.strftime("%Y-%m-%d %H:%M")

    print(f"Reload latency, file write -> {info['measure']} ({args.edits} edits each)")
    print(
        f"Python {info['python']}, {info['machine']}, load average before "
        f"{info['loadavg_before'][0]:.2f}, after {info['loadavg_after'][0]:.2f}"
    )
    print(f"ours: {info['ours']}")
    if "peer" in info:
        print(f"Flask-SocketIO side: {info['peer']}")
    for result in results:
        print(show(result))
    found = {r["key"]: r for r in results if r.get("median_ms")}
    for ours, theirs, what in (("wsio", "flask", "defaults"), ("wsio-stat", "flask", "both stat")):
        if ours in found and theirs in found:
            a, b = found[ours], found[theirs]
            print(
                f"ratio ({what}): Flask-SocketIO / {a['label']} = "
                f"{b['median_ms'] / a['median_ms']:.1f}x at the median, "
                f"{b['p90_ms'] / a['p90_ms']:.1f}x at p90"
            )
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    report = json.dumps({"info": info, "results": results}, indent=2)
    (out / "reload-latest.json").write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
