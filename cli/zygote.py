"""The gevent side of ``wsio runserver``: the zygote and its workers.

The command's process (:mod:`webpy_socketio.cli.runserver`) starts this
module as ``python -m webpy_socketio.cli.zygote CONFIG``. The zygote patches
with gevent and imports web.py, python-socketio and this package once
(:data:`PRELOAD`, about half a second), never the project's code. For each
start or restart the command asks for, it forks a worker, which imports the
project (its modules always compiled from source, see
:func:`~webpy_socketio.cli.loading.always_compile`) and serves on the
listening socket inherited from the command. Forking skips the half second
of imports, so a reload costs what the project's own modules cost.

A worker that cannot import the project prints the traceback and answers
every request with a "503: see the terminal" page, which refreshes itself,
until a change brings a worker that can.

Messages are JSON lines: command -> zygote on a socket pair (``start``,
``notify``, ``quit``), zygote -> command on the same socket (``ready``,
``started``, ``exited``), zygote -> worker on a pipe per worker (``stop``,
``notify``). Each side treats the end of its input as an order to stop, so
killing any process never leaves the others running.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
import traceback
from typing import Any

from .reloader import GRACE, say

#: Modules the zygote imports once so that workers need not.
PRELOAD = (
    "web",
    "web.httpserver",
    "mako.lookup",
    "mako.template",
    "socketio",
    "engineio",
    "engineio.async_drivers.gevent",
    "gevent.pywsgi",
    "gevent.pool",
    "gevent.event",
    "gevent.threadpool",
    "gevent.resolver.thread",
    "webpy_socketio.server",
    "webpy_socketio.engine",
    "webpy_socketio.dispatch",
    "webpy_socketio._engine.fastpath",
    "webpy_socketio._engine.sio_server",
    "webpy_socketio.middleware",
    "webpy_socketio.urls",
    "webpy_socketio.templating",
    "webpy_socketio.cli.loading",
    "webpy_socketio.cli.serve",
)


# -- the worker (in a gevent-patched process) ------------------------------------


def _failure_app(detail: str) -> Any:
    """A WSGI app answering 503 while the project does not load. The page
    refreshes itself, so the browser shows the app again once it loads; the
    error itself is only in the terminal (this server may be reachable by
    others)."""
    body = (
        "<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=2>"
        "<title>503 app not loaded</title><h1>The app did not load</h1>"
        f"<p>It {detail}. The traceback is in the terminal running "
        "<code>wsio runserver</code>; this page reloads when a change fixes it.</p>"
    ).encode()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(
            "503 Service Unavailable",
            [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
                ("Retry-After", "1"),
            ],
        )
        return [body]

    return app


def _emit_reload(message: dict[str, Any]) -> None:
    """Tell this worker's pages what changed (they reload when asked to)."""
    from webpy_socketio.engine import current_engine

    engine = current_engine()
    if engine is None:
        return
    payload = {"reload": bool(message.get("reload")), "changed": message.get("changed") or []}
    # this process's sockets only, never through a message queue: another
    # process's pages did not change
    engine.emit("wsio:reload", payload, namespace="/", ignore_queue=True)


class _Drain:
    """Stops a worker taking requests on kept-alive connections.

    A browser sends its next request (the reloaded page, the first request of
    a new Socket.IO session) on any idle connection it keeps. Served by the
    stopping worker, that request would get the old code, or split a new
    Socket.IO session between two processes ("Invalid session"). Once
    :meth:`start` is called, idle kept-alive connections are shut (the
    browser opens a new one, which the new worker accepts), responses still
    being made say ``Connection: close``, and no further request is read.
    A connection accepted just before the stop still gets its first request
    answered, if that arrives within :attr:`FIRST_REQUEST` seconds.
    """

    FIRST_REQUEST = 0.2

    def __init__(self) -> None:
        self.stopping = False
        self.idle: dict[Any, bool] = {}  # handler -> has served a request

    def handler_class(self, base: type) -> type:
        drain = self

        class DrainingHandler(base):  # type: ignore[valid-type,misc]
            served = False

            def read_requestline(self) -> str:
                if drain.stopping and self.served:
                    return ""  # as if the client closed: the connection ends
                drain.idle[self] = self.served
                try:
                    line: str = super().read_requestline()
                finally:
                    drain.idle.pop(self, None)
                self.served = True
                return line

            def start_response(self, status: str, headers: Any, exc_info: Any = None) -> Any:
                if drain.stopping and not status.startswith("101"):
                    headers = [(k, v) for k, v in headers if k.lower() != "connection"]
                    headers.append(("Connection", "close"))
                return super().start_response(status, headers, exc_info)

        return DrainingHandler

    def start(self) -> None:
        import gevent

        self.stopping = True
        for handler, kept_alive in list(self.idle.items()):
            if kept_alive:
                self._shut(handler)
            else:
                gevent.spawn_later(self.FIRST_REQUEST, self._shut, handler)

    def _shut(self, handler: Any) -> None:
        sock = getattr(handler, "socket", None)
        if handler in self.idle and sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # the blocked read returns: no request
            except OSError:
                pass


def run_worker(config: dict[str, Any], control_fd: int | None, start: dict[str, Any]) -> int:
    """Load the project and serve on the inherited socket until told to
    stop (by the zygote through ``control_fd``, by SIGTERM or SIGINT).

    :param config: what the command was given (see
        ``webpy_socketio.cli.runserver._config``).
    :param control_fd: the read end of the zygote's pipe (None: no zygote,
        ``--noreload``).
    :param start: the zygote's start order (``mode``, ``seen``, ...).
    :returns: the exit status.
    """
    import gevent
    from gevent.event import Event
    from gevent.pool import Pool
    from gevent.pywsgi import WSGIHandler, WSGIServer
    from gevent.socket import wait_read

    from .loading import describe_error, load_app
    from .serve import close_sockets

    began = time.monotonic()
    listener = socket.socket(fileno=config["listen_fd"])
    log = "default" if config["access_log"] else None
    # handlers in a pool, so that stopping waits for the requests this
    # worker has accepted instead of resetting their connections
    handlers = Pool()
    drain = _Drain()
    server: Any = None
    loaded = False
    detail = start.get("detail") or "failed to import"
    if start.get("mode") != "failed":
        from webpy_socketio.server import SocketIOServer, websocket_handler_class

        try:
            application = load_app(config["app"], config["root"])
            server = SocketIOServer(
                listener,
                application,
                log=log,
                spawn=handlers,
                handler_class=drain.handler_class(websocket_handler_class()),
            )
            loaded = True
        except (Exception, SystemExit) as exc:
            sys.stderr.write(describe_error(exc))
            if control_fd is None:
                return 1
            detail = f"raised {type(exc).__name__} while loading"
    if server is None:
        say("serving a 503 page until a change is saved")
        server = WSGIServer(
            listener,
            _failure_app(detail),
            log=None,
            spawn=handlers,
            handler_class=drain.handler_class(WSGIHandler),
        )
    stop = Event()
    stop_order: dict[str, Any] = {}
    # SIGHUP too: a closed terminal stops the worker as cleanly as Ctrl-C
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        gevent.signal_handler(signum, stop.set)

    def follow_zygote(fd: int) -> None:
        buffered = b""
        while True:
            try:
                wait_read(fd)
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:  # the zygote is gone: stop rather than linger
                stop.set()
                return
            buffered += data
            while b"\n" in buffered:
                line, buffered = buffered.split(b"\n", 1)
                message = json.loads(line)
                if message.get("op") == "notify":
                    if loaded and config["browser_reload"]:
                        _emit_reload(message)
                elif message.get("op") == "stop":
                    stop_order.update(message)
                    stop.set()
                    return

    if control_fd is not None:
        gevent.spawn(follow_zygote, control_fd)
    server.start()
    if loaded:
        seen = start.get("seen")
        took = (time.monotonic() - (seen or began)) * 1000
        what = "reloaded" if seen else "started"
        say(f"worker {os.getpid()} {what} in {took:.0f} ms")
    stop.wait()
    server.close()  # the next worker accepts from here on
    drain.start()
    if loaded:
        if stop_order.get("changed") is not None and config["browser_reload"]:
            _emit_reload(stop_order)
        # every socket closes cleanly (its on_disconnect runs) and its page
        # reconnects, to the next worker, by itself
        left = close_sockets(GRACE - 0.5)
        if left:
            say(f"{left} sockets did not close in time")
    server.stop(timeout=1)
    return 0


# -- the zygote ------------------------------------------------------------------


class Zygote:
    """Forks workers on the supervisor's orders and reports their exits.

    Everything here blocks in the original (unpatched) ``select`` and
    ``waitpid``: the zygote runs no gevent loop of its own, and each
    worker re-initialises gevent's hub after the fork.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        from gevent import monkey

        self.config = config
        self.control = config["control_fd"]
        self.select = monkey.get_original("select", "select")
        self.waitpid = monkey.get_original("os", "waitpid")
        self.pipes: dict[int, int] = {}  # worker pid -> write end of its pipe
        self.modes: dict[int, str] = {}
        # when a worker told to stop gets SIGKILL: one stuck in the project's
        # code (an endless loop at import) never reads its pipe
        self.deadlines: dict[int, float] = {}
        self.current: int | None = None
        self.quitting = False

    def report(self, **message: Any) -> None:
        try:
            os.write(self.control, json.dumps(message).encode() + b"\n")
        except OSError:
            self.quitting = True  # the supervisor is gone

    def tell(self, pid: int, **message: Any) -> None:
        fd = self.pipes.get(pid)
        if fd is not None:
            try:
                os.write(fd, json.dumps(message).encode() + b"\n")
            except OSError:
                pass  # it has exited; reap() reports it

    def run(self) -> int:
        self.report(event="ready", pid=os.getpid())
        buffered = b""
        while not self.quitting:
            readable, _, _ = self.select([self.control], [], [], 0.2)
            self.reap()
            self.kill_overdue()
            if not readable:
                continue
            data = os.read(self.control, 65536)
            if not data:
                break
            buffered += data
            while b"\n" in buffered and not self.quitting:
                line, buffered = buffered.split(b"\n", 1)
                self.handle(json.loads(line))
        self.shutdown()
        return 0

    def handle(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "start":
            if self.current is not None:
                order = {k: message[k] for k in ("changed", "reload") if k in message}
                self.tell(self.current, op="stop", **order)
                self.deadlines[self.current] = time.monotonic() + GRACE + 1
            self.fork(message)
        elif op == "notify" and self.current is not None:
            self.tell(self.current, **message)
        elif op == "quit":
            self.quitting = True

    def fork(self, start: dict[str, Any]) -> None:
        from gevent.os import fork_gevent

        read_end, write_end = os.pipe()
        pid = fork_gevent()
        if pid == 0:  # the worker
            status = 1
            try:
                os.close(write_end)
                os.close(self.control)
                for fd in self.pipes.values():  # the older workers' pipes
                    os.close(fd)
                for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                    signal.signal(signum, signal.SIG_DFL)
                status = run_worker(self.config, read_end, start)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        os.close(read_end)
        self.pipes[pid] = write_end
        self.modes[pid] = start.get("mode") or "app"
        self.current = pid
        self.report(event="started", pid=pid)

    def kill_overdue(self) -> None:
        now = time.monotonic()
        for pid, deadline in list(self.deadlines.items()):
            if now > deadline and pid in self.pipes:
                say(f"worker {pid} did not stop within {GRACE + 1:g} s; killing it")
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
                del self.deadlines[pid]

    def reap(self, block_pid: int | None = None) -> None:
        while True:
            try:
                pid, status = self.waitpid(block_pid or -1, 0 if block_pid else os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            fd = self.pipes.pop(pid, None)
            if fd is not None:
                os.close(fd)
            self.deadlines.pop(pid, None)
            if pid == self.current:
                self.current = None
            self.report(
                event="exited",
                pid=pid,
                status=os.waitstatus_to_exitcode(status),
                mode=self.modes.pop(pid, "app"),
            )
            if block_pid:
                return

    def shutdown(self) -> None:
        """Stop every worker: gracefully, then SIGKILL after ``GRACE``."""
        for pid in list(self.pipes):
            self.tell(pid, op="stop")
        deadline = time.monotonic() + GRACE
        while self.pipes and time.monotonic() < deadline:
            time.sleep(0.02)
            self.reap()
        for pid in list(self.pipes):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            self.reap(block_pid=pid)


def preload() -> None:
    from gevent import monkey

    # before web.py is imported (see webpy_socketio.server.check_monkey_patched)
    monkey.patch_all()
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)


def zygote_main(config: dict[str, Any]) -> int:
    """The zygote process: preload, then fork workers on request."""
    import gc

    # Ctrl-C and a closed terminal reach every process of the terminal's
    # group; the command decides, and tells the zygote to quit
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    zygote: Zygote | None = None

    def quit_soon(signum: int, frame: Any) -> None:
        if zygote is not None:
            zygote.quitting = True
        else:
            raise SystemExit(0)

    signal.signal(signal.SIGTERM, quit_soon)
    preload()
    from .loading import always_compile

    always_compile(config["root"])
    # objects made so far are shared with every worker; keep the collector
    # from touching (and so copying) their pages
    gc.freeze()
    zygote = Zygote(config)
    return zygote.run()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m webpy_socketio.cli.zygote CONFIG (started by wsio runserver)")
    sys.exit(zygote_main(json.loads(sys.argv[1])))
