"""``wsio serve [ADDR:]PORT --workers N``: the production server.

No reloader. N worker processes (one by default) listen on consecutive
ports (PORT, PORT+1, ...) under a small supervisor that never imports
gevent or the app: it restarts a worker that crashes and stops them all
gracefully. Each worker is a fresh interpreter that patches with gevent
before it imports anything else.

Why consecutive ports and not one shared listening socket: with a shared
socket the kernel hands each *connection* to whichever worker accepts
first, and a Socket.IO long-polling session is many HTTP requests that must
all reach the process that created it; on another one they fail with
"Invalid session". Separate ports let nginx route each client to one worker
(``wsio nginx-config --workers N`` writes that sticky upstream), and a
message queue carries broadcasts between the workers, which is why N > 1
requires ``SOCKETIO_MESSAGE_QUEUE``.

Graceful shutdown (SIGTERM or SIGINT): a worker stops accepting, closes
every socket at the Engine.IO level (``on_disconnect``, the channels'
``on_unsubscribe`` and ``on_finish`` run for each; clients see a transport
close and reconnect, to another worker or to the restarted server), waits
for them up to ``--graceful-timeout`` seconds, then exits.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import click

from .loading import (
    DEFAULT_APP,
    NoAppError,
    add_to_path,
    describe_error,
    load_app,
    read_settings,
    resolve_project,
    select_settings,
)

#: Most workers one command may start.
MAX_WORKERS = 64
#: Seconds a new worker has to start listening.
START_TIMEOUT = 60.0
#: A worker that crashes more often than this many times a minute is not
#: restarted again: something is wrong that a restart will not fix.
MAX_RESTARTS_PER_MINUTE = 5
#: What a worker process runs, with its WorkerSpec as JSON in argv[1].
WORKER_ENTRY = (
    "from gevent import monkey; monkey.patch_all()\n"
    "import sys\n"
    "from webpy_socketio.cli.serve import worker_main\n"
    "worker_main(sys.argv[1:])\n"
)


def _say(message: str) -> None:
    click.echo(f"wsio serve: {message}", err=True)


# -- options ----------------------------------------------------------------


def parse_addrport(value: str | None, default_host: str, default_port: int) -> tuple[str, int]:
    """``PORT``, ``ADDR:PORT`` or ``[IPV6]:PORT`` (None: the defaults).

    :raises click.BadParameter: with a one-line reason.
    """
    if value is None:
        return default_host, default_port
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = default_host, value
    elif not host:
        raise click.BadParameter(f"{value!r} has an empty address; use 0.0.0.0:{port} or {port}.")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not re.fullmatch(r"[0-9]{1,5}", port) or not 1 <= int(port) <= 65535:
        raise click.BadParameter(f"{value!r}: the port must be a number from 1 to 65535.")
    if not re.fullmatch(r"[A-Za-z0-9.:_-]+", host):
        raise click.BadParameter(f"{value!r}: {host!r} is not a host name or an IP address.")
    return host, int(port)


def _check_ports_free(host: str, ports: list[int]) -> None:
    """Fail before any worker starts when one of the ports is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for port in ports:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # as the server binds: reusing an address in TIME_WAIT is fine
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                taken = exc.errno == errno.EADDRINUSE
                reason = "is already in use" if taken else f"cannot be used ({exc.strerror})"
                raise click.ClickException(
                    f"Port {port} on {host} {reason}; stop the other server or choose another port."
                ) from None


def _read_settings(settings_module: str | None, root: str) -> dict[str, Any]:
    from webpy_socketio.exceptions import ImproperlyConfigured

    try:
        select_settings(settings_module)
    except NoAppError as exc:
        raise click.BadParameter(str(exc), param_hint="--settings") from None
    add_to_path(root)
    try:
        return read_settings()
    except ImproperlyConfigured as exc:
        raise click.ClickException(str(exc)) from None


# -- the worker (runs in a gevent-patched process) ------------------------------


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


def close_sockets(timeout: float) -> int:
    """Close every connected socket of this process at the Engine.IO level
    and wait (at most ``timeout`` seconds) until their handlers have run.

    ``on_disconnect``, ``on_unsubscribe`` (per channel) and ``on_finish``
    run for each socket; clients are told the transport closed, so the
    official client reconnects by itself.

    :returns: how many sockets were still registered when the time was up.
    """
    import gevent
    from gevent.pool import Group

    from webpy_socketio import clients
    from webpy_socketio.engine import current_engine

    engine = current_engine()
    if engine is None:
        return 0
    group = Group()
    for sid in list(clients.CLIENTS):
        eio_sid = engine.manager.eio_sid_from_sid(sid, "/")
        if eio_sid is not None:
            # one greenlet per socket: closing a long-polling socket waits
            # for its client's next poll, and a vanished client never polls
            group.spawn(engine.eio.disconnect, eio_sid)
    deadline = time.monotonic() + timeout
    group.join(timeout=timeout)
    while clients.count() and time.monotonic() < deadline:
        gevent.sleep(0.05)
    group.kill(block=False)
    return clients.count()


def run_worker(spec: WorkerSpec) -> int:
    """Serve ``spec.app`` until SIGTERM or SIGINT; return the exit status."""
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        # before the app (and web.py) is imported: see server.check_monkey_patched
        monkey.patch_all()
    import gevent
    from gevent.event import Event

    from webpy_socketio.exceptions import WebpySocketIOError
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
        click.echo(f"{tag} {exc}", err=True)
        return 1
    except Exception as exc:
        # the application's own code failed: its traceback is what helps
        click.echo(f"{tag} the application failed to load:", err=True)
        sys.stderr.write(describe_error(exc))
        return 1
    stop = Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stop.set)
    gevent.spawn(_stop_when_orphaned, os.getppid(), stop)
    click.echo(f"{tag} listening on http://{_show(spec.host)}:{spec.port}/", err=True)
    stop.wait()
    click.echo(f"{tag} stopping: closing sockets", err=True)
    server.close()  # no new connections from here on
    left = close_sockets(spec.graceful_timeout)
    if left:
        click.echo(f"{tag} {left} sockets did not close in time", err=True)
    server.stop(timeout=1)
    click.echo(f"{tag} stopped", err=True)
    return 0


def _stop_when_orphaned(parent: int, stop: Any) -> None:
    """Stop gracefully if the supervisor dies without stopping this worker
    (killed with SIGKILL, say): nobody would restart or stop it otherwise."""
    import gevent

    while not stop.is_set():
        if os.getppid() != parent:
            click.echo(f"[worker pid {os.getpid()}] the supervisor is gone; stopping", err=True)
            stop.set()
            return
        gevent.sleep(1)


def _show(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# -- the supervisor (a plain process: no gevent, no app) ------------------------


class Supervisor:
    """Starts N workers, restarts one that crashes, stops all on a signal."""

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
                    _say(f"worker {spec.index} (port {spec.port}) did not start; stopping.")
                self.stop_all()
                return 0 if self.stopping else 1
        first, last = self.specs[0], self.specs[-1]
        ports = f"{first.port}-{last.port}" if last is not first else str(first.port)
        count = f"{len(self.specs)} worker{'s' if len(self.specs) > 1 else ''}"
        _say(f"{count} on {_show(first.host)}:{ports}, supervisor pid {os.getpid()}")
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
            _say(f"workers crashed {len(self.restarts)} times within a minute; giving up.")
            return False
        _say(f"worker {spec.index} (port {spec.port}) exited with status {code}; restarting it.")
        self.procs[spec.index] = proc = self._spawn(spec)
        if not self._wait_listening(spec, proc):
            if not self.stopping:
                _say(f"worker {spec.index} (port {spec.port}) did not start again.")
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
                _say(f"worker pid {proc.pid} did not stop within {grace:g} s; killing it.")
                proc.kill()
                proc.wait(5)


# -- the command --------------------------------------------------------------


@click.command("serve")
@click.argument("addrport", required=False, metavar="[ADDR:]PORT")
@click.option(
    "-w",
    "--workers",
    type=int,
    default=1,
    show_default=True,
    metavar="N",
    help="Worker processes, on consecutive ports from PORT. N > 1 needs "
    "SOCKETIO_MESSAGE_QUEUE, and nginx in front (wsio nginx-config --workers N).",
)
@click.option(
    "--app",
    "app_spec",
    metavar="MODULE:ATTR",
    help=f"The web.py application or WSGI callable [default: {DEFAULT_APP} of the project "
    "found from the current folder].",
)
@click.option("--settings", "settings_module", metavar="MODULE", help="The settings module.")
@click.option(
    "--graceful-timeout",
    type=click.FloatRange(0, 3600),
    default=10.0,
    show_default=True,
    help="Seconds a stopping worker waits for its sockets to close.",
)
@click.option("--access-log/--no-access-log", default=True, show_default=True)
def serve(
    addrport: str | None,
    workers: int,
    app_spec: str | None,
    settings_module: str | None,
    graceful_timeout: float,
    access_log: bool,
) -> None:
    """Serve the project in production: no reloader, N worker processes.

    [ADDR:]PORT defaults to SOCKETIO_HOST:SOCKETIO_PORT from the settings.
    SIGTERM (or Ctrl-C) stops gracefully: every socket is closed cleanly and
    its on_disconnect and on_finish handlers run.
    """
    if not 1 <= workers <= MAX_WORKERS:
        raise click.BadParameter(
            f"must be from 1 to {MAX_WORKERS}, not {workers}.", param_hint="--workers"
        )
    app_spec, root = resolve_project(app_spec, "serve")
    values = _read_settings(settings_module, root)
    host, port = parse_addrport(addrport, values["SOCKETIO_HOST"], values["SOCKETIO_PORT"])
    if port + workers - 1 > 65535:
        raise click.BadParameter(f"{workers} workers from port {port} run past 65535.")
    queue = values["SOCKETIO_MESSAGE_QUEUE"]
    if workers > 1 and not queue:
        raise click.UsageError(
            f"--workers {workers} needs SOCKETIO_MESSAGE_QUEUE (for example "
            "'redis://127.0.0.1:6379/0'): without a queue a broadcast reaches only the sockets "
            "of the process that sends it."
        )
    if queue:
        from webpy_socketio.exceptions import WebpySocketIOError
        from webpy_socketio.messagequeue import check_reachable

        try:
            check_reachable(queue)
        except WebpySocketIOError as exc:
            raise click.ClickException(str(exc)) from None
    ports = [port + i for i in range(workers)]
    _check_ports_free(host, ports)
    specs = [
        WorkerSpec(app_spec, host, p, root, i, graceful_timeout, access_log)
        for i, p in enumerate(ports)
    ]
    metrics_dir = None
    if values.get("SOCKETIO_METRICS"):
        import shutil
        import tempfile

        metrics_dir = tempfile.mkdtemp(prefix="wsio-metrics-")
    try:
        code = Supervisor(specs, metrics_dir).run()
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    sys.exit(code)


def worker_main(argv: list[str]) -> None:
    """Entry point of a worker process (see :data:`WORKER_ENTRY`)."""
    spec = WorkerSpec(**json.loads(argv[0]))
    sys.exit(run_worker(spec))
