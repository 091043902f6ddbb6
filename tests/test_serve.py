"""``wsio serve``: refusals with clear errors, N workers sharing broadcasts
through a real redis-server, graceful SIGTERM (every socket's on_disconnect
and on_finish run, clients are closed cleanly, no process is left), a
crashed worker restarted, and the workers behind the config that
``wsio nginx-config --workers N`` writes."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from nginx_support import Nginx, generate, listen_port
from redis_support import RedisServer
from support import (
    TESTS,
    AppServer,
    NodeAgent,
    Process,
    free_port,
    output_dir,
    python_env,
    wait_port,
    wait_until,
)

APPS = TESTS / "apps"
WSIO = str(Path(sys.executable).parent / "wsio")


def consecutive_free_ports(count: int) -> int:
    """A first port such that it and the next count-1 are free."""
    for _ in range(50):
        first = free_port()
        if first + count - 1 > 65535:
            continue
        taken = False
        for port in range(first, first + count):
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    taken = True
                    break
        if not taken:
            return first
    raise RuntimeError("no run of free ports found")


def run_wsio(
    *args: str, env: dict | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [WSIO, "serve", *args],
        cwd=APPS,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=python_env(**(env or {})),
    )


def queue_env(url: str) -> dict[str, str]:
    return {"WSIO_SETTINGS_MODULE": "queue_settings", "WSIO_TEST_QUEUE": url}


class Serve(Process):
    """``wsio serve PORT --workers N --app serve_app:app`` with the queue."""

    def __init__(self, workers: int, url: str, name: str = "serve") -> None:
        self.port = consecutive_free_ports(workers)
        self.ports = [self.port + i for i in range(workers)]
        log = output_dir("serve") / f"{name}-{self.port}.log"
        super().__init__(
            [
                WSIO,
                "serve",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(workers),
                "--app",
                "serve_app:app",
                "--graceful-timeout",
                "5",
            ],
            log,
            cwd=APPS,
            env=python_env(**queue_env(url)),
        )
        try:
            for port in self.ports:
                wait_port(port, proc=self.proc, timeout=60)
            assert wait_until(lambda: "supervisor pid" in self.output(), timeout=10)
        except Exception:
            self.stop()
            raise RuntimeError(f"wsio serve did not start:\n{self.output()}") from None

    def worker_pids(self) -> dict[int, int]:
        """worker index -> pid of its latest process."""
        found: dict[int, int] = {}
        for index, pid in re.findall(r"\[worker (\d+) pid (\d+)\] listening", self.output()):
            found[int(index)] = int(pid)
        return found

    def stats(self, index: int) -> dict:
        server = AppServer.__new__(AppServer)  # only its get() helper
        server.url = f"http://127.0.0.1:{self.ports[index]}"
        return server.stats()

    def terminate_supervisor(self, timeout: float = 30) -> int:
        """SIGTERM to the supervisor alone, as systemd's stop does."""
        os.kill(self.pid, signal.SIGTERM)
        return self.proc.wait(timeout)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie is gone too: only its parent's wait() was missing
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    return True


# -- refusals -----------------------------------------------------------------


def test_several_workers_without_a_queue_are_refused():
    result = run_wsio(str(free_port()), "--workers", "2", "--app", "basic_app:app")
    assert result.returncode == 2
    error = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1
    assert "--workers 2 needs SOCKETIO_MESSAGE_QUEUE" in error[0]


def test_queue_down_at_start_is_a_clear_error():
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = run_wsio(str(free_port()), "--app", "basic_app:app", env=queue_env(url))
    assert result.returncode == 1
    assert f"Error: Cannot reach the message queue {url}" in result.stderr
    assert "Traceback" not in result.stderr


def test_queue_without_its_client_library_is_a_clear_error(tmp_path):
    """As on a machine without the redis package: a package of that name
    that fails to import the way a missing one does comes first on the path."""
    shadow = tmp_path / "no-redis"
    (shadow / "redis").mkdir(parents=True)
    (shadow / "redis" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'redis'\", name='redis')\n"
    )
    url = f"redis://127.0.0.1:{free_port()}/0"
    env = {**queue_env(url), "PYTHONPATH": str(shadow)}
    result = run_wsio(str(free_port()), "--app", "basic_app:app", env=env)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [
        f"Error: SOCKETIO_MESSAGE_QUEUE='{url}' needs the redis package, which is not "
        "installed: pip install 'webpy-socketio[redis]'."
    ], result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_wsio(f"127.0.0.1:{port}", "--app", "basic_app:app")
    assert result.returncode == 1
    assert f"Error: Port {port} on 127.0.0.1 is already in use" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["99999"], "the port must be a number from 1 to 65535"),
        (["127.0.0.1:http"], "the port must be a number from 1 to 65535"),
        ([":8000"], "has an empty address"),
        (["8000", "--workers", "0"], "must be from 1 to 64, not 0"),
        (["65535", "--workers", "2"], "run past 65535"),
    ],
)
def test_bad_arguments(args, message):
    result = run_wsio(*args, "--app", "basic_app:app")
    assert result.returncode == 2
    assert message in result.stderr


def test_bad_app_spec():
    result = run_wsio("8000", "--app", "app:app;rm")
    assert result.returncode == 2
    assert "'app;rm' is not a Python name" in result.stderr


def test_outside_a_project_without_app_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [WSIO, "serve", str(free_port())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=python_env(),
    )
    assert result.returncode == 1
    assert f"No app.py in {tmp_path} or a folder above it" in result.stderr


def test_a_project_is_found_from_a_subfolder(tmp_path):
    """Run from templates/ of a project: the app is found above, and the
    workers run in the project's folder."""
    project = tmp_path / "proj"
    (project / "templates").mkdir(parents=True)
    (project / "settings.py").write_text(f"SOCKETIO_PORT = {free_port()}\n")
    (project / "app.py").write_text(
        "import os\nimport web\n"
        "class Where:\n    def GET(self):\n        return os.getcwd()\n"
        "app = web.application(('/', 'Where'), globals())\n"
    )
    port = free_port()
    log = output_dir("serve") / f"subfolder-{port}.log"
    serve = Process([WSIO, "serve", str(port)], log, cwd=project / "templates", env=python_env())
    try:
        wait_port(port, proc=serve.proc, timeout=60)
        server = AppServer.__new__(AppServer)
        server.url = f"http://127.0.0.1:{port}"
        assert server.get("/") == (200, str(project))
    finally:
        serve.stop()


def test_an_app_that_does_not_import_stops_everything():
    result = run_wsio(str(free_port()), "--app", "no_such_module:app", timeout=90)
    assert result.returncode == 1
    # the worker says which module is missing
    assert re.search(
        r"No module named 'no_such_module'|Could not import 'no_such_module'", result.stderr
    ), result.stderr
    assert "did not start; stopping." in result.stderr


# -- with Redis -----------------------------------------------------------------


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    server = RedisServer("serve")
    yield server
    server.stop()


def connect(agent: NodeAgent, client: str, port: int, transport: str, room: str) -> str:
    sid = agent.connect(client, f"http://127.0.0.1:{port}", transport, query={"name": client})
    assert agent.call("subscribe", client, channel=room) == {"ok": True}
    return str(sid["id"])


@pytest.mark.redis
@pytest.mark.server
@pytest.mark.node
def test_two_workers_share_broadcasts_and_stop_gracefully(redis, agent):
    serve = Serve(2, redis.url, "graceful")
    try:
        pids = serve.worker_pids()
        assert sorted(pids) == [0, 1]
        room = "room-graceful"
        connect(agent, "a", serve.ports[0], "websocket", room)
        connect(agent, "b", serve.ports[1], "websocket", room)
        connect(agent, "c", serve.ports[1], "polling", room)
        agent.call("send", "a", data={"op": "broadcast_channel", "data": "hello workers"})
        for client in ("b", "c"):
            agent.wait_for(client, lambda m: m == "hello workers")

        assert serve.terminate_supervisor() == 0
        output = serve.output()
        for client in ("a", "b", "c"):
            # the handlers ran in the stopping worker, once per socket
            assert output.count(f"EVENT disconnect {client} server disconnect") == 1, output
            assert output.count(f"EVENT finish {client}") == 1, output
            # the client saw a clean transport close (so it would reconnect)
            reason = agent.wait_for(client, lambda _: True, event="disconnect")
            assert reason[0] == "transport close", reason
        assert "did not close in time" not in output
        assert all(gone(pid) for pid in pids.values())
    finally:
        serve.stop()


@pytest.mark.redis
@pytest.mark.server
@pytest.mark.node
def test_a_crashed_worker_is_restarted(redis, agent):
    serve = Serve(2, redis.url, "restart")
    try:
        old = serve.worker_pids()[1]
        os.kill(old, signal.SIGKILL)
        assert wait_until(lambda: serve.worker_pids().get(1, old) != old, timeout=30), (
            serve.output()
        )
        assert "worker 1 (port" in serve.output() and "restarting it" in serve.output()
        wait_port(serve.ports[1], timeout=30)
        room = "room-restart"
        connect(agent, "a", serve.ports[0], "websocket", room)
        connect(agent, "b", serve.ports[1], "websocket", room)
        agent.call("send", "b", data={"op": "broadcast_channel", "data": "from the new worker"})
        agent.wait_for("a", lambda m: m == "from the new worker")
        assert serve.terminate_supervisor() == 0
    finally:
        serve.stop()


@pytest.mark.redis
@pytest.mark.server
def test_workers_stop_when_the_supervisor_is_killed(redis):
    serve = Serve(2, redis.url, "orphans")
    try:
        pids = serve.worker_pids()
        os.kill(serve.pid, signal.SIGKILL)  # the supervisor alone
        serve.proc.wait(10)
        assert wait_until(lambda: all(gone(pid) for pid in pids.values()), timeout=15)
        assert serve.output().count("the supervisor is gone; stopping") == 2
    finally:
        serve.stop()


@pytest.mark.redis
@pytest.mark.server
@pytest.mark.node
@pytest.mark.nginx
def test_workers_behind_the_generated_nginx_config(redis, agent):
    with contextlib.ExitStack() as cleanup:
        serve = Serve(2, redis.url, "nginx")
        cleanup.callback(serve.stop)
        nginx_port, listen = listen_port()
        text = generate(
            "--listen", listen, "--workers", "2", "--upstream", f"127.0.0.1:{serve.port}"
        )
        cleanup.callback(Nginx(text, "http", "serve", [nginx_port]).stop)
        url = f"http://127.0.0.1:{nginx_port}"
        room = "room-nginx"
        # clients from several loopback addresses until each worker has one;
        # the default sticky policy hashes the whole client address
        placed: dict[int, str] = {}
        for i in range(2, 32):
            client = f"c{i}"
            transport = "polling" if i % 2 else "websocket"
            sid = agent.connect(client, url, transport, localAddress=f"127.0.0.{i}")["id"]
            assert agent.call("subscribe", client, channel=room) == {"ok": True}
            for index in range(2):
                if sid in serve.stats(index)["clients"]:
                    placed.setdefault(index, client)
            if len(placed) == 2:
                break
        assert len(placed) == 2, placed
        one, two = placed[0], placed[1]
        agent.call("send", one, data={"op": "broadcast_channel", "data": "via nginx"})
        agent.wait_for(two, lambda m: m == "via nginx")
        agent.call("send", two, data={"op": "broadcast_channel", "data": "and back"})
        agent.wait_for(one, lambda m: m == "and back")
        for worker in serve.worker_pids().values():
            assert not gone(worker)
        assert "Invalid session" not in serve.output()
