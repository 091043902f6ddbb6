"""A worker of ``wsio runserver``: one process per (re)start, forked by the
zygote (:mod:`.zygote`), already patched by gevent and with the libraries
imported.

It imports the project (its modules always compiled from source, see
:func:`~webpy_socketio.cli.loading.always_compile`) and serves on the
listening socket inherited from the command. Told to stop (a change was
saved), it stops accepting, tells its pages what changed
(:func:`webpy_socketio.lifecycle.notify_reload`), closes their sockets
cleanly (:func:`webpy_socketio.lifecycle.close_sockets`) and exits; the
pages reconnect at once, to the next worker.

A worker that cannot import the project prints the traceback and answers
every request with a "503: see the terminal" page, which refreshes itself,
until a change brings a worker that can. Socket.IO requests get the same
503, so open pages keep retrying and come back when the code is fixed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from typing import Any

from ..output import say
from . import GRACE


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
        ``webpy_socketio.cli.runserver.worker_config``).
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

    from webpy_socketio.lifecycle import close_sockets, notify_reload

    from ..loading import describe_error, load_app

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
                        notify_reload(message.get("changed") or [], bool(message.get("reload")))
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
        changed = stop_order.get("changed")
        if changed is not None:
            # a restart for a change: the pages hear it before their socket
            # closes, so they reconnect at once instead of backing off (and
            # reload when a template or static file changed)
            reload = bool(stop_order.get("reload")) and config["browser_reload"]
            notify_reload(changed, reload)
        # every socket closes cleanly (its on_disconnect runs) and its page
        # reconnects, to the next worker, by itself
        left = close_sockets(GRACE - 0.5)
        if left:
            say(f"{left} sockets did not close in time")
    server.stop(timeout=1)
    if loaded:
        # after the last socket and request: nothing more can be published
        from webpy_socketio._history import hand_over

        hand_over()
    return 0
