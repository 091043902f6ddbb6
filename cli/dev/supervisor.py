"""The supervisor of ``wsio runserver``: the command's own process.

It never imports gevent (watchdog's queue breaks in a patched process) nor
the project. It keeps the listening socket open for the whole run, starts
the zygote (:mod:`.zygote`), and turns the watcher's changes
(:mod:`.watcher`) into orders: ``start`` (a restart) for code and
templates, ``notify`` (pages reload, nothing restarts) for static files.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from ..output import say
from . import GRACE
from .watcher import Changes, Watcher


class ReloadSupervisor:
    """Owns the listening socket and the zygote (:mod:`.zygote`), and
    orders a restart when the watcher reports changes (the production
    server's supervisor is :class:`webpy_socketio.cli.workers.WorkerSupervisor`).

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
