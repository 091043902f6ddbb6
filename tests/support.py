"""Real processes for the tests: servers on 127.0.0.1 and the Node agent
around the official socket.io-client. Every wait here is bounded."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
NODE_DIR = TESTS / "node"
#: where tests write what they save (screenshots, figures, server logs);
#: WSIO_TEST_OUTPUT moves it (runs side by side, benchmarks/repeat_under_load.py)
OUTPUT = Path(os.environ.get("WSIO_TEST_OUTPUT") or ROOT / "test-output")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip locally when a tool is missing; in CI a missing tool fails."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: missing tools are failures)")
    pytest.skip(reason)


def require_executable(name: str, hint: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"{name} is not installed; {hint}")
    assert path is not None
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, host: str = "127.0.0.1", timeout: float = 20.0, proc: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on {host}:{port} within {timeout} s")


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(interval)


def output_dir(name: str) -> Path:
    path = OUTPUT / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def python_env(**extra: str) -> dict[str, str]:
    """The environment of a Python process the tests start. The checkout is
    not put on its path: the process imports webpy_socketio from where this
    interpreter does (an editable install maps it to the checkout, a normal
    one has its own copy, which the source folder must not shadow: there,
    ``webpy_socketio.cli`` only exists in the installed copy)."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class Process:
    """A child process with its output in a log file, stopped for sure."""

    def __init__(
        self, args: list[str], log: Path, cwd: Path | None = None, env: dict | None = None
    ):
        self.args = args
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def send_signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int | None:
        if self.proc.poll() is None:
            self.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.send_signal(signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


class AppServer(Process):
    """A web.py app from tests/apps served by SocketIOServer."""

    def __init__(self, app: str, name: str, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log = output_dir("servers") / f"{name}-{self.port}.log"
        super().__init__(
            [sys.executable, str(TESTS / "apps" / app), str(self.port)],
            log,
            cwd=TESTS / "apps",
            env=python_env(**(env or {})),
        )
        try:
            wait_port(self.port, proc=self.proc)
        except Exception:
            self.stop()
            raise RuntimeError(f"{app} did not start:\n{self.output()}") from None

    def get(self, path: str, headers: dict | None = None) -> tuple[int, Any]:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                body = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            body, status = exc.read(), exc.code
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode(errors="replace")

    def stats(self) -> dict:
        return self.get("/stats")[1]


def node_client_ready() -> bool:
    return (NODE_DIR / "node_modules" / "socket.io-client" / "package.json").is_file()


def ensure_node_client() -> str:
    """The node executable, with the official client installed by npm."""
    node = require_executable("node", "install Node.js 18+ to run the socket.io-client tests")
    if not node_client_ready():
        npm = require_executable("npm", "install npm to fetch socket.io-client")
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_DIR,
            check=True,
            timeout=300,
        )
    return node


class NodeAgent:
    """pytest's end of tests/node/agent.js.

    :param max_seconds: how long the agent may live whatever happens (its
        own bound, 300 s unless given): a test that runs longer, such as
        the fuzz test on a loaded machine, must say so.
    """

    def __init__(self, name: str = "agent", max_seconds: float | None = None) -> None:
        node = ensure_node_client()
        self.log_path = output_dir("agents") / f"{name}-{os.getpid()}-{id(self)}.log"
        self._stderr = open(self.log_path, "wb")  # noqa: SIM115 - closed in close()
        env = dict(os.environ)
        if max_seconds is not None:
            env["AGENT_MAX_SECONDS"] = str(int(max_seconds))
        self.proc = subprocess.Popen(
            [node, str(NODE_DIR / "agent.js")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
            start_new_session=True,
            env=env,
        )
        self._replies: dict[int, dict] = {}
        self._events: queue.Queue[dict] = queue.Queue()
        self.events: list[dict] = []
        self._cond = threading.Condition()
        self._next = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                item = json.loads(line)
            except ValueError:
                continue
            with self._cond:
                if "event" in item:
                    self.events.append(item)
                else:
                    self._replies[item.get("id")] = item
                self._cond.notify_all()

    def call(self, op: str, client: str, timeout: float = 5.0, **fields: Any) -> Any:
        """Run one command; return its result or raise AssertionError."""
        with self._cond:
            self._next += 1
            cmd_id = self._next
        cmd = {"id": cmd_id, "op": op, "client": client, "timeout": int(timeout * 1000), **fields}
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout + 2
        with self._cond:
            while cmd_id not in self._replies:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"agent gave no reply to {cmd}")
                self._cond.wait(remaining)
            reply = self._replies.pop(cmd_id)
        if not reply["ok"]:
            raise AssertionError(f"{op} failed for {client}: {reply['error']}")
        return reply["result"]

    def try_call(self, op: str, client: str, **fields: Any) -> tuple[bool, Any]:
        try:
            return True, self.call(op, client, **fields)
        except AssertionError as exc:
            return False, str(exc)

    def connect(self, client: str, url: str, transport: str = "websocket", **options: Any) -> dict:
        transports = ["polling", "websocket"] if transport == "default" else [transport]
        opts = {"transports": transports, **options}
        return self.call(
            "connect", client, url=url, options=opts, timeout=options.pop("timeout", 8)
        )

    def received(self, client: str, event: str = "message") -> list[Any]:
        with self._cond:
            return [
                e["args"][0] if len(e["args"]) == 1 else e["args"]
                for e in self.events
                if e["client"] == client and e["event"] == event
            ]

    def wait_for(
        self,
        client: str,
        predicate: Callable[[Any], bool],
        event: str = "message",
        timeout: float = 5.0,
    ) -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self.events:
                    if e["client"] == client and e["event"] == event:
                        value = e["args"][0] if len(e["args"]) == 1 else e["args"]
                        if predicate(value):
                            return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"{client} received no matching {event!r} within {timeout} s; got "
                        f"{[e for e in self.events if e['client'] == client]}"
                    )
                self._cond.wait(remaining)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self._stderr.close()


@contextlib.contextmanager
def node_agent(name: str = "agent", max_seconds: float | None = None) -> Iterator[NodeAgent]:
    agent = NodeAgent(name, max_seconds)
    try:
        yield agent
    finally:
        agent.close()
