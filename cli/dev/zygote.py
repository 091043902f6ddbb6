"""The zygote of ``wsio runserver``: the process that forks the workers.

The supervisor (:mod:`.supervisor`) starts this module as ``python -m
webpy_socketio.cli.dev.zygote CONFIG``. The zygote patches with gevent and
imports web.py, python-socketio and this package once (:data:`PRELOAD` and
the package's own modules, about half a second), never the project's code.
For each start or restart the supervisor asks for, it forks a worker
(:mod:`.worker`). Forking skips the half second of imports, so a reload
costs what the project's own modules cost.

Messages are JSON lines: supervisor -> zygote on a socket pair (``start``,
``notify``, ``quit``), zygote -> supervisor on the same socket (``ready``,
``started``, ``exited``), zygote -> worker on a pipe per worker (``stop``,
``notify``). Each side treats the end of its input as an order to stop, so
killing any process never leaves the others running.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from typing import Any

from ..output import say, speak_as
from . import GRACE
from .worker import run_worker

#: Third-party modules the zygote imports once so that workers need not
#: (every module of webpy_socketio itself is imported too, see preload()).
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
)
#: Parts of webpy_socketio the workers never need.
NOT_PRELOADED = ("webpy_socketio.cli", "webpy_socketio.project_template")


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
    """Patch with gevent, then import the libraries a worker needs."""
    from gevent import monkey

    # before web.py is imported (see webpy_socketio.server.check_monkey_patched)
    monkey.patch_all()
    import importlib
    import pkgutil

    import webpy_socketio

    for name in PRELOAD:
        importlib.import_module(name)
    # the package's own modules, found rather than listed: they may move
    # between subpackages without this list going stale
    for info in pkgutil.walk_packages(webpy_socketio.__path__, "webpy_socketio."):
        if info.name.startswith(NOT_PRELOADED):
            continue
        try:
            importlib.import_module(info.name)
        except ImportError:
            pass  # an optional dependency (redis): the worker imports it if used
    importlib.import_module("webpy_socketio.cli.loading")


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
    speak_as("wsio runserver")
    preload()
    from ..loading import always_compile

    always_compile(config["root"])
    # objects made so far are shared with every worker; keep the collector
    # from touching (and so copying) their pages
    gc.freeze()
    zygote = Zygote(config)
    return zygote.run()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m webpy_socketio.cli.dev.zygote CONFIG (from wsio runserver)")
    sys.exit(zygote_main(json.loads(sys.argv[1])))
