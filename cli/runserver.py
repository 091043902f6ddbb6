"""``wsio runserver [ADDR:]PORT``: the development server, reloading on
every change.

Three kinds of process::

    wsio runserver   this module: no gevent; binds the port, watches the
                     files (reloader.py), orders restarts (Supervisor)
      zygote         zygote.py: gevent patched, libraries imported once
        worker       forked per (re)start: imports the project, serves

The listening socket is bound here once and inherited by every worker, so
it never closes: a request made during a restart waits in the kernel's
backlog for the new worker instead of being refused.
"""

from __future__ import annotations

import errno
import json
import os
import platform
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any

import click

from .loading import DEFAULT_APP, NoAppError, resolve_project
from .reloader import GRACE, WATCHERS, Changes, Watcher, say


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


def _read_address(addrport: str | None) -> tuple[str, int]:
    from .loading import read_settings
    from .serve import parse_addrport

    values = read_settings(fresh=True)
    return parse_addrport(addrport, values["SOCKETIO_HOST"], values["SOCKETIO_PORT"])


@click.command("runserver", short_help="Serve for development, reloading on every change.")
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
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="One line per HTTP request on stderr.",
)
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

    app_spec, root = resolve_project(app_spec, "runserver")
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
        from .zygote import preload, run_worker

        # the worker's gevent socket takes the descriptor over
        config = _config(app_spec, root, listener.detach(), False, access_log)
        preload()
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
    from .reloader import ProjectFiles, make_watcher

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
        module = "webpy_socketio.cli.zygote"
        return [sys.executable, "-m", module, json.dumps(config)]

    status = Supervisor(listener, zygote_command, env, watcher, browser_reload).run()
    listener.close()
    if status:
        sys.exit(status)


# -- the supervisor -----------------------------------------------------------------


class Supervisor:
    """Owns the listening socket and the zygote (:mod:`.zygote`), and
    orders a restart when the watcher reports changes.

    :param listener: the bound, listening socket (kept open throughout).
    :param zygote_command: the zygote's command line, given the number of
        its end of the control socket.
    :param env: the zygote's environment.
    :param watcher: a started watcher.
    :param browser_reload: tell pages to reload when templates or static
        files change.
    """

    #: zygote deaths tolerated within a minute before giving up
    MAX_ZYGOTE_RESTARTS = 3

    def __init__(
        self,
        listener: socket.socket,
        zygote_command: Callable[[int], list[str]],
        env: dict[str, str],
        watcher: Watcher,
        browser_reload: bool = True,
    ) -> None:
        self.listener = listener
        self.zygote_command = zygote_command
        self.env = env
        self.watcher = watcher
        self.browser_reload = browser_reload
        self.stopping = False
        self.zygote: subprocess.Popen[bytes] | None = None
        self.control: socket.socket | None = None
        self.reader: threading.Thread | None = None
        self.ready = False
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.workers: set[int] = set()
        self.current: int | None = None
        self.expected_exits: set[int] = set()
        self.zygote_deaths: list[float] = []

    # -- the zygote and its control socket

    def _spawn_zygote(self) -> None:
        ours, theirs = socket.socketpair()
        theirs.set_inheritable(True)
        self.zygote = subprocess.Popen(
            self.zygote_command(theirs.fileno()),
            env=self.env,
            pass_fds=(theirs.fileno(), self.listener.fileno()),
        )
        theirs.close()
        self.control = ours
        self.ready = False
        self.reader = threading.Thread(target=self._read_control, args=(ours,), daemon=True)
        self.reader.start()

    def _read_control(self, sock: socket.socket) -> None:
        with sock.makefile("r", encoding="utf-8") as lines:
            try:
                for line in lines:
                    self.messages.put(json.loads(line))
            except (OSError, ValueError):
                pass
        self.messages.put({"event": "eof"})
        self.watcher.wake()

    def send(self, **message: Any) -> None:
        """Send one command to the zygote (lost if it has just died: the
        loop notices the death and starts another one)."""
        if self.control is not None:
            try:
                self.control.sendall(json.dumps(message).encode() + b"\n")
            except OSError:
                pass

    def _handle(self, message: dict[str, Any]) -> bool:
        """Act on a message from the zygote; False when it is gone."""
        event = message.get("event")
        if event == "ready":
            self.ready = True
        elif event == "started":
            self.workers.add(message["pid"])
            self.current = message["pid"]
        elif event == "exited":
            pid, status = message["pid"], message["status"]
            self.workers.discard(pid)
            if pid in self.expected_exits:
                self.expected_exits.discard(pid)
            elif pid == self.current and not self.stopping:
                self.current = None
                say(
                    f"the worker (pid {pid}) exited with status {status}; fix the code and save "
                    "a file to restart it"
                )
                if message.get("mode") != "failed":
                    self.send(op="start", mode="failed", detail=f"exited with status {status}")
        elif event == "eof":
            return False
        return True

    # -- the loop

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stopping = True
        self.watcher.wake()

    def run(self) -> int:
        """Serve until SIGINT, SIGTERM or SIGHUP; return the exit status."""
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        self._spawn_zygote()
        self.send(op="start")
        try:
            while not self.stopping:
                changes = self.watcher.wait(timeout=0.5)
                if changes and not self.stopping:
                    self._apply(changes)
                alive = True
                while True:
                    try:
                        alive = self._handle(self.messages.get_nowait()) and alive
                    except queue.Empty:
                        break
                if not alive and not self.stopping and not self._replace_zygote():
                    return 1
            return 0
        finally:
            self.stop()

    def _apply(self, changes: Changes) -> None:
        reload_pages = self.browser_reload and changes.reload_browsers
        if changes.restart:
            say(f"{changes.summary()}; reloading")
            if self.current is not None:
                self.expected_exits.add(self.current)
            self.send(
                op="start", changed=changes.names(), reload=reload_pages, seen=changes.first_seen
            )
        elif reload_pages:
            say(f"{changes.summary()}; reloading the pages")
            self.send(op="notify", changed=changes.names(), reload=True)

    def _replace_zygote(self) -> bool:
        assert self.zygote is not None
        status = self.zygote.wait()
        if not self.ready:
            say(f"the server process exited while starting (status {status}); see above")
            return False
        now = time.monotonic()
        self.zygote_deaths = [t for t in self.zygote_deaths if now - t < 60] + [now]
        if len(self.zygote_deaths) > self.MAX_ZYGOTE_RESTARTS:
            say("the server process keeps dying; giving up")
            return False
        say(f"the server process exited (status {status}); starting it again")
        self._kill_workers()
        self._spawn_zygote()
        self.send(op="start")
        return True

    def _kill_workers(self) -> None:
        for pid in list(self.workers):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.workers.clear()
        self.current = None

    def stop(self) -> None:
        """Stop the workers and the zygote, at most ``GRACE`` + 2 seconds."""
        self.stopping = True
        zygote = self.zygote
        if zygote is not None and zygote.poll() is None:
            self.send(op="quit")
            try:
                zygote.wait(GRACE + 2)
            except subprocess.TimeoutExpired:
                say("the server process did not stop in time; killing it")
                zygote.kill()
                zygote.wait(5)
        # workers the zygote started and did not see exit (it was killed);
        # its last reports are read first
        if self.reader is not None:
            self.reader.join(2)
        while True:
            try:
                self._handle(self.messages.get_nowait())
            except queue.Empty:
                break
        self._kill_workers()
        if self.control is not None:
            self.control.close()
            self.control = None
        self.watcher.close()
