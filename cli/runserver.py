"""``wsio runserver [ADDR:]PORT``: the development server, reloading on
every change.

Three kinds of process (see :mod:`webpy_socketio.cli.reloader`)::

    supervisor  (this command: no gevent; owns the socket, watches files)
      zygote    (gevent patched, web.py and python-socketio imported once)
        worker  (forked per (re)start: imports the project, serves)

Forking a process that has already paid for ``patch_all()`` and the
imports (about half a second) leaves the worker only the project's own
modules to import, so a reload takes tens of milliseconds. The project's
modules are imported only in workers, never in the zygote, and always
compiled from source (a ``.pyc`` can hide a quick edit).

A worker that cannot import the project prints the traceback and answers
every request with a "503: see the terminal" page, which refreshes itself,
until a change brings a worker that can.
"""

from __future__ import annotations

import errno
import json
import os
import platform
import signal
import socket
import sys
import time
import traceback
from importlib import metadata
from typing import Any

import click

from .loading import DEFAULT_APP, NoAppError, find_project_root
from .reloader import GRACE, WATCHERS, say

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
    "webpy_socketio.fastpath",
    "webpy_socketio.fastjson",
    "webpy_socketio.middleware",
    "webpy_socketio.urls",
    "webpy_socketio.templating",
    "webpy_socketio.cli.loading",
    "webpy_socketio.cli.serve",
)


def _versions() -> str:
    parts = []
    for label, dist in (
        ("webpy-socketio", "webpy-socketio"),
        ("web.py", "web.py"),
        ("python-socketio", "python-socketio"),
        ("gevent", "gevent"),
    ):
        try:
            parts.append(f"{label} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{label} (not installed)")
    return f"Python {platform.python_version()}, " + ", ".join(parts)


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` that child processes inherit.

    :raises click.ClickException: one line naming the port when it is taken
        or cannot be used.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise click.ClickException(f"Cannot listen on {host!r}: {exc.strerror}.") from None
    sock = socket.socket(family, kind, proto)
    # as every server does: a port left in TIME_WAIT by the last run is free
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            reason = "is already in use; stop the other server or choose another port"
        elif exc.errno == errno.EACCES:
            reason = "needs privileges (ports below 1024 do); choose a port above 1023"
        else:
            reason = f"cannot be used ({exc.strerror})"
        raise click.ClickException(f"Port {port} on {host} {reason}.") from None
    sock.set_inheritable(True)
    return sock


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


def run_worker(config: dict[str, Any], control_fd: int | None, start: dict[str, Any]) -> int:
    """Load the project and serve on the inherited socket until told to
    stop (by the zygote through ``control_fd``, by SIGTERM or SIGINT).

    :param config: what the command was given (see :func:`_config`).
    :param control_fd: the read end of the zygote's pipe (None: no zygote,
        ``--noreload``).
    :param start: the zygote's start order (``mode``, ``seen``, ...).
    :returns: the exit status.
    """
    import gevent
    from gevent.event import Event
    from gevent.pywsgi import WSGIServer
    from gevent.socket import wait_read

    from .loading import describe_error, load_app
    from .serve import close_sockets

    began = time.monotonic()
    listener = socket.socket(fileno=config["listen_fd"])
    log = "default" if config["access_log"] else None
    server: Any = None
    loaded = False
    detail = start.get("detail") or "failed to import"
    if start.get("mode") != "failed":
        from webpy_socketio.server import SocketIOServer

        try:
            application = load_app(config["app"], config["root"])
            server = SocketIOServer(listener, application, log=log)
            loaded = True
        except (Exception, SystemExit) as exc:
            sys.stderr.write(describe_error(exc))
            if control_fd is None:
                return 1
            detail = f"raised {type(exc).__name__} while loading"
    if server is None:
        say("serving a 503 page until a change is saved")
        server = WSGIServer(listener, _failure_app(detail), log=None)
    stop = Event()
    stop_order: dict[str, Any] = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
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
    if loaded:
        if stop_order.get("changed") is not None and config["browser_reload"]:
            _emit_reload(stop_order)
        # every socket closes cleanly (its on_disconnect runs) and its page
        # reconnects, to the next worker, by itself
        left = close_sockets(GRACE - 0.5)
        if left:
            say(f"{left} sockets did not close in time")
    server.stop(timeout=0.5)
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
                for signum in (signal.SIGINT, signal.SIGTERM):
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


def _preload() -> None:
    from gevent import monkey

    # before web.py is imported (see webpy_socketio.server.check_monkey_patched)
    monkey.patch_all()
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)


def zygote_main(config: dict[str, Any]) -> int:
    """The zygote process: preload, then fork workers on request."""
    import gc

    # Ctrl-C reaches every process of the terminal's group; the supervisor
    # decides, and tells the zygote to quit
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    zygote: Zygote | None = None

    def quit_soon(signum: int, frame: Any) -> None:
        if zygote is not None:
            zygote.quitting = True
        else:
            raise SystemExit(0)

    signal.signal(signal.SIGTERM, quit_soon)
    _preload()
    from .loading import always_compile

    always_compile(config["root"])
    # objects made so far are shared with every worker; keep the collector
    # from touching (and so copying) their pages
    gc.freeze()
    zygote = Zygote(config)
    return zygote.run()


# -- the command -------------------------------------------------------------------


def _config(
    app_spec: str, root: str, listen_fd: int, browser_reload: bool, access_log: bool
) -> dict[str, Any]:
    return {
        "app": app_spec,
        "root": root,
        "listen_fd": listen_fd,
        "browser_reload": browser_reload,
        "access_log": access_log,
    }


def _resolve_project(app_spec: str | None) -> tuple[str, str]:
    """The app spec and the project folder; the folder becomes the current
    one (static files and templates are found from it)."""
    if app_spec is None:
        root = find_project_root()
        if root is None:
            raise click.ClickException(
                f"No app.py in {os.getcwd()} or a folder above it. Run wsio runserver in the "
                "folder of a project made by 'wsio new', or pass --app MODULE:ATTR."
            )
        os.chdir(root)
        return DEFAULT_APP, str(root)
    from .loading import parse_app_spec

    try:
        parse_app_spec(app_spec)
    except NoAppError as exc:
        raise click.BadParameter(str(exc), param_hint="--app") from None
    return app_spec, os.getcwd()


def _read_address(addrport: str | None) -> tuple[str, int]:
    from .loading import read_settings
    from .serve import parse_addrport

    values = read_settings(fresh=True)
    return parse_addrport(addrport, values["SOCKETIO_HOST"], values["SOCKETIO_PORT"])


@click.command("runserver")
@click.argument("addrport", required=False, metavar="[ADDR:]PORT")
@click.option(
    "--app",
    "app_spec",
    metavar="MODULE:ATTR",
    help=f"The web.py application or WSGI callable [default: {DEFAULT_APP} of the project "
    "found from the current folder].",
)
@click.option("--settings", "settings_module", metavar="MODULE", help="The settings module.")
@click.option("--noreload", is_flag=True, help="Serve without watching files or reloading.")
@click.option(
    "--browser-reload/--no-browser-reload",
    default=True,
    show_default=True,
    help="Make open pages reload when a template or static file changes.",
)
@click.option(
    "--reloader",
    type=click.Choice(sorted(WATCHERS)),
    default="watchdog",
    show_default=True,
    help="How changes are noticed: file system events, or polling modification times.",
)
@click.option("--access-log/--no-access-log", default=True, show_default=True)
def runserver(
    addrport: str | None,
    app_spec: str | None,
    settings_module: str | None,
    noreload: bool,
    browser_reload: bool,
    reloader: str,
    access_log: bool,
) -> None:
    """Serve the project for development, restarting on every change.

    [ADDR:]PORT defaults to SOCKETIO_HOST:SOCKETIO_PORT from the settings,
    then 127.0.0.1:8000. A change to a .py file or a template restarts the
    server in well under a second; open pages reconnect and rejoin their
    channels by themselves, and reload when a template or static file
    changed. An error in the code prints its traceback and the server
    waits for the next change. Not for production: use wsio serve.
    """
    from .loading import add_to_path, describe_error, select_settings

    app_spec, root = _resolve_project(app_spec)
    try:
        select_settings(settings_module)
    except NoAppError as exc:
        raise click.BadParameter(str(exc), param_hint="--settings") from None
    # the supervisor reads settings.py, and must leave no .pyc behind that a
    # later, quicker edit could be mistaken for
    sys.dont_write_bytecode = True
    add_to_path(root)
    say(_versions())
    settings_name = os.environ.get("WSIO_SETTINGS_MODULE") or "settings"
    say(f"project {root}: app {app_spec}, settings module {settings_name!r}")
    if noreload:
        try:
            host, port = _read_address(addrport)
        except click.ClickException:
            raise
        except Exception as exc:
            message = describe_error(exc).strip().removeprefix("Error: ")
            raise click.ClickException(message) from None
        listener = bind(host, port)
        say(f"serving on {_url(host, port)} without reloading (Ctrl-C to stop)")
        config = _config(app_spec, root, listener.fileno(), False, access_log)
        _preload()
        sys.exit(run_worker(config, None, {"mode": "app"}))
    _supervise(addrport, app_spec, root, browser_reload, reloader, access_log)


def _supervise(
    addrport: str | None,
    app_spec: str,
    root: str,
    browser_reload: bool,
    reloader: str,
    access_log: bool,
) -> None:
    from webpy_socketio.templating import BROWSER_RELOAD_ENV

    from .loading import describe_error
    from .reloader import ProjectFiles, Supervisor, make_watcher

    files = ProjectFiles(root, watch_static=browser_reload)
    watcher = make_watcher(reloader, files)
    try:
        while True:
            try:
                host, port = _read_address(addrport)
                break
            except click.BadParameter:
                raise
            except Exception as exc:
                # a broken settings.py: wait for it to be fixed, like code
                sys.stderr.write(describe_error(exc))
                say("waiting for a change to read the settings again")
                while not watcher.wait(timeout=None):
                    pass
        listener = bind(host, port)
    except BaseException:
        watcher.close()
        raise
    say(f"watching {files.describe()} ({watcher.name})")
    say(f"serving on {_url(host, port)} (Ctrl-C to stop)")
    env = dict(os.environ)
    if browser_reload:
        env[BROWSER_RELOAD_ENV] = "1"
    else:
        env.pop(BROWSER_RELOAD_ENV, None)

    def zygote_command(control_fd: int) -> list[str]:
        config = _config(app_spec, root, listener.fileno(), browser_reload, access_log)
        config["control_fd"] = control_fd
        module = "webpy_socketio.cli.runserver"
        return [sys.executable, "-m", module, "--zygote", json.dumps(config)]

    status = Supervisor(listener, zygote_command, env, watcher, browser_reload).run()
    listener.close()
    if status:
        sys.exit(status)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--zygote"]:
        sys.exit(zygote_main(json.loads(sys.argv[2])))
    sys.exit("usage: wsio runserver (this module is not run by hand)")
