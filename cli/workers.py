"""The processes of ``wsio serve``: a supervisor (the command's own
process: no gevent, no app) and N workers, each a fresh interpreter that
patches with gevent before it imports anything else, then serves the
project on its own port.

The supervisor restarts a worker that crashes (not more than
:data:`MAX_RESTARTS_PER_MINUTE` times a minute) and stops them all
gracefully on SIGTERM or SIGINT: a worker stops accepting, closes every
socket at the Engine.IO level (:func:`webpy_socketio.lifecycle.close_sockets`:
``on_disconnect``, the channels' ``on_unsubscribe`` and ``on_finish`` run
for each; clients see a transport close and reconnect, to another worker or
to the restarted server), waits for them up to ``--graceful-timeout``
seconds, then exits. A worker whose supervisor vanished stops the same way
by itself.

The development server's processes are in :mod:`webpy_socketio.cli.dev`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from .addresses import show_host
from .loading import describe_error, load_app
from .output import say, speak_as

#: Seconds a new worker has to start listening.
START_TIMEOUT = 60.0
#: A worker that crashes more often than this many times a minute is not
#: restarted again: something is wrong that a restart will not fix.
MAX_RESTARTS_PER_MINUTE = 5
#: What a worker process runs, with its WorkerSpec as JSON in argv[1].
WORKER_ENTRY = (
    "from gevent import monkey; monkey.patch_all()\n"
    "import sys\n"
    "from webpy_socketio.cli.workers import worker_main\n"
    "worker_main(sys.argv[1:])\n"
)


# -- a worker (a gevent-patched process) ------------------------------------


@dataclass
class WorkerSpec:
    """What a worker needs; passed to worker processes as JSON."""

    app: str
    host: str
    port: int
    root: str = "."
    index: int = 0
    graceful_timeout: float = 10.0
    access_log: bool = True

    def to_json(self) -> str:
        return json.dumps(self.__dict__)


def run_serve_worker(spec: WorkerSpec) -> int:
    """Serve ``spec.app`` until SIGTERM or SIGINT; return the exit status."""
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        # before the app (and web.py) is imported: see server.check_monkey_patched
        monkey.patch_all()
    import gevent
    from gevent.event import Event

    from webpy_socketio.exceptions import WebpySocketIOError
    from webpy_socketio.lifecycle import close_sockets
    from webpy_socketio.server import SocketIOServer

    tag = f"[worker {spec.index} pid {os.getpid()}]"
    try:
        application = load_app(spec.app, spec.root)
        server = SocketIOServer(
            (spec.host, spec.port), application, log="default" if spec.access_log else None
        )
        server.start()
    except WebpySocketIOError as exc:
        # a project mistake, the queue, the port: one line says it
        say(f"{tag} {exc}")
        return 1
    except Exception as exc:
        # the application's own code failed: its traceback is what helps
        say(f"{tag} the application failed to load:")
        sys.stderr.write(describe_error(exc))
        return 1
    stop = Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stop.set)
    gevent.spawn(_stop_when_orphaned, os.getppid(), stop)
    say(f"{tag} listening on http://{show_host(spec.host)}:{spec.port}/")
    stop.wait()
    say(f"{tag} stopping: closing sockets")
    server.close()  # no new connections from here on
    left = close_sockets(spec.graceful_timeout)
    if left:
        say(f"{tag} {left} sockets did not close in time")
    server.stop(timeout=1)
    say(f"{tag} stopped")
    return 0


def _stop_when_orphaned(parent: int, stop: Any) -> None:
    """Stop gracefully if the supervisor dies without stopping this worker
    (killed with SIGKILL, say): nobody would restart or stop it otherwise."""
    import gevent

    while not stop.is_set():
        if os.getppid() != parent:
            say(f"[worker pid {os.getpid()}] the supervisor is gone; stopping")
            stop.set()
            return
        gevent.sleep(1)


# -- the supervisor (a plain process: no gevent, no app) --------------------


class WorkerSupervisor:
    """Starts N workers, restarts one that crashes, stops all on a signal
    (the development server's is
    :class:`webpy_socketio.cli.dev.supervisor.ReloadSupervisor`)."""

    def __init__(self, specs: list[WorkerSpec], metrics_dir: str | None = None) -> None:
        self.specs = specs
        #: where the workers write their metrics, summed by whichever is scraped
        self.metrics_dir = metrics_dir
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.restarts: list[float] = []
        self.stopping = False

    def _spawn(self, spec: WorkerSpec) -> subprocess.Popen[bytes]:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # the workers run in the project's folder and import from it first
        env["PYTHONPATH"] = os.pathsep.join(p for p in (spec.root, env.get("PYTHONPATH", "")) if p)
        if self.metrics_dir is not None:
            env["WSIO_METRICS_DIR"] = self.metrics_dir
            # a metrics port of its own is opened by the first worker only
            env["WSIO_METRICS_LISTEN"] = "1" if spec.index == 0 else "0"
        # patch first of all, before even webpy_socketio is imported (its
        # modules create locks at import time)
        command = [sys.executable, "-c", WORKER_ENTRY, spec.to_json()]
        return subprocess.Popen(command, env=env, cwd=spec.root)

    def _wait_listening(self, spec: WorkerSpec, proc: subprocess.Popen[bytes]) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        host = "127.0.0.1" if spec.host in ("0.0.0.0", "") else spec.host
        host = "::1" if host == "::" else host
        while time.monotonic() < deadline and not self.stopping:
            if proc.poll() is not None:
                return False
            try:
                socket.create_connection((host, spec.port), timeout=0.5).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        # all at once: each spends most of its start importing
        for spec in self.specs:
            self.procs[spec.index] = self._spawn(spec)
        for spec in self.specs:
            if not self._wait_listening(spec, self.procs[spec.index]):
                if not self.stopping:
                    say(f"worker {spec.index} (port {spec.port}) did not start; stopping.")
                self.stop_all()
                return 0 if self.stopping else 1
        first, last = self.specs[0], self.specs[-1]
        ports = f"{first.port}-{last.port}" if last is not first else str(first.port)
        count = f"{len(self.specs)} worker{'s' if len(self.specs) > 1 else ''}"
        say(f"{count} on {show_host(first.host)}:{ports}, supervisor pid {os.getpid()}")
        while not self.stopping:
            time.sleep(0.2)
            for spec in self.specs:
                proc = self.procs[spec.index]
                if proc.poll() is None or self.stopping:
                    continue
                if not self._restart(spec, proc.returncode):
                    self.stop_all()
                    return 1
        self.stop_all()
        return 0

    def _restart(self, spec: WorkerSpec, code: int) -> bool:
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t < 60] + [now]
        if len(self.restarts) > MAX_RESTARTS_PER_MINUTE:
            say(f"workers crashed {len(self.restarts)} times within a minute; giving up.")
            return False
        say(f"worker {spec.index} (port {spec.port}) exited with status {code}; restarting it.")
        self.procs[spec.index] = proc = self._spawn(spec)
        if not self._wait_listening(spec, proc):
            if not self.stopping:
                say(f"worker {spec.index} (port {spec.port}) did not start again.")
            return self.stopping
        return True

    def stop_all(self) -> None:
        """SIGTERM every worker, wait for its graceful stop, then SIGKILL."""
        alive = [p for p in self.procs.values() if p.poll() is None]
        for proc in alive:
            proc.send_signal(signal.SIGTERM)
        grace = max(s.graceful_timeout for s in self.specs) + 5
        deadline = time.monotonic() + grace
        for proc in alive:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"worker pid {proc.pid} did not stop within {grace:g} s; killing it.")
                proc.kill()
                proc.wait(5)


def worker_main(argv: list[str]) -> None:
    """Entry point of a worker process (see :data:`WORKER_ENTRY`)."""
    spec = WorkerSpec(**json.loads(argv[0]))
    speak_as("wsio serve")
    sys.exit(run_serve_worker(spec))
