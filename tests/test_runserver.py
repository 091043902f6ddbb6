"""``wsio runserver``: a real supervisor, zygote and workers on a copy of
``tests/apps/reload_project``, edited while it runs. The official
socket.io-client (Node) and headless Chromium check what connected clients
see across a reload; the process table is checked after every stop."""

from __future__ import annotations

import json
import os
import py_compile
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from support import (
    TESTS,
    NodeAgent,
    Process,
    free_port,
    output_dir,
    python_env,
    wait_until,
)
from webpy_socketio.cli.runserver import runserver

TIMESTAMP = py_compile.PycInvalidationMode.TIMESTAMP

PROJECT = TESTS / "apps" / "reload_project"
WSIO = str(Path(sys.executable).parent / "wsio")
EVENTS_PY = 'VALUE = "{value}"'


# -- helpers -------------------------------------------------------------------------


def wsio_env() -> dict[str, str]:
    """The environment of a ``wsio`` process: the project's own settings
    module, whatever the shell (or another test) selected."""
    env = python_env()
    env.pop("WSIO_SETTINGS_MODULE", None)
    env.pop("WSIO_BROWSER_RELOAD", None)
    return env


def copy_project(dest: Path) -> Path:
    shutil.copytree(PROJECT, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def set_value(project: Path, value: str) -> None:
    """Rewrite VALUE in events.py in place (same as an editor's save)."""
    path = project / "events.py"
    text = re.sub(r'VALUE = "[^"]*"', EVENTS_PY.format(value=value), path.read_text())
    path.write_text(text)


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) for every process, from /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name is in parentheses and may contain spaces
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), fields[0])
    return table


def descendants(pid: int) -> set[int]:
    table = process_table()
    found, frontier = set(), {pid}
    while frontier:
        children = {p for p, (ppid, _) in table.items() if ppid in frontier}
        frontier = children - found
        found |= children
    return found


def alive(pids: set[int]) -> set[int]:
    table = process_table()
    return {p for p in pids if p in table and table[p][1] != "Z"}


class DevServer(Process):
    """``wsio runserver 127.0.0.1:PORT [args]`` in a project folder."""

    def __init__(self, project: Path, *args: str, name: str = "runserver") -> None:
        self.project = project
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log = output_dir("runserver") / f"{name}-{self.port}.log"
        super().__init__(
            [WSIO, "runserver", f"127.0.0.1:{self.port}", *args],
            log,
            cwd=project,
            env=wsio_env(),
        )
        # fail fast when it reports a problem instead of starting
        problems = ("waiting for a change", "Traceback", "Error:")

        def settled() -> bool:
            out = self.output()
            return (
                "started in" in out
                or any(p in out for p in problems)
                or (self.proc.poll() is not None)
            )

        wait_until(settled, timeout=30)
        if "started in" not in self.output():
            self.stop()
            raise RuntimeError(f"runserver did not start:\n{self.output()}")

    def request(self, path: str, timeout: float = 10) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read().decode()

    def value(self) -> dict[str, Any]:
        status, body = self.request("/value")
        assert status == 200, body
        return json.loads(body)  # type: ignore[no-any-return]

    def wait_value(self, expected: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status, body = self.request("/value")
            if status == 200 and json.loads(body)["value"] == expected:
                return json.loads(body)  # type: ignore[no-any-return]
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"/value never became {expected!r}; last {status} {body[:200]}\n{self.output()}"
                )
            time.sleep(0.05)

    def wait_output(self, text: str, timeout: float = 10) -> str:
        if not wait_until(lambda: text in self.output(), timeout=timeout):
            raise AssertionError(f"{text!r} not in the output:\n{self.output()}")
        return self.output()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "proj")


@pytest.fixture
def dev(project: Path) -> Iterator[DevServer]:
    server = DevServer(project)
    yield server
    server.stop()


def connects(agent: NodeAgent, client: str) -> list[str]:
    events = list(agent.events)
    return [e["args"][0] for e in events if e["client"] == client and e["event"] == "connect"]


def reload_events(agent: NodeAgent, client: str) -> list[Any]:
    return agent.received(client, "wsio:reload")


# -- options --------------------------------------------------------------------------


def test_option_defaults():
    ctx = runserver.make_context("runserver", [])
    assert ctx.params == {
        "addrport": None,
        "app_spec": None,
        "settings_module": None,
        "noreload": False,
        "browser_reload": True,
        "reloader": "watchdog",
        "access_log": True,
    }


def test_options_parsed():
    ctx = runserver.make_context(
        "runserver",
        [
            "0.0.0.0:9000",
            "--app",
            "mysite.wsgi:application",
            "--settings",
            "settings_dev",
            "--noreload",
            "--no-browser-reload",
            "--reloader",
            "stat",
            "--no-access-log",
        ],
    )
    assert ctx.params == {
        "addrport": "0.0.0.0:9000",
        "app_spec": "mysite.wsgi:application",
        "settings_module": "settings_dev",
        "noreload": True,
        "browser_reload": False,
        "reloader": "stat",
        "access_log": False,
    }


def test_unknown_reloader_refused():
    with pytest.raises(click.BadParameter, match="'inotify' is not one of"):
        runserver.make_context("runserver", ["--reloader", "inotify"])


def run_wsio(cwd: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WSIO, "runserver", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=wsio_env(),
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["abc"], "'abc': the port must be a number from 1 to 65535."),
        (["127.0.0.1:70000"], "the port must be a number from 1 to 65535."),
        (["--app", "my-app:app"], "'my-app:app' is not MODULE:ATTR"),
        (["--app", "app:1x"], "'1x' is not a Python name"),
        (["--settings", "settings.py"], "is a file name; give the module name 'settings'"),
        (["--settings", "my-settings"], "is not a Python module name such as 'settings'"),
    ],
)
def test_bad_values_are_one_line_errors(project: Path, args: list[str], message: str):
    result = run_wsio(project, *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_no_project_here(tmp_path: Path):
    result = run_wsio(tmp_path)
    assert result.returncode == 1
    assert f"No app.py in {tmp_path}" in result.stderr
    assert "--app MODULE:ATTR" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.server
def test_port_in_use_is_one_line(project: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        result = run_wsio(project, f"127.0.0.1:{port}")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert errors == [
        f"Error: Port {port} on 127.0.0.1 is already in use; stop the other server or choose "
        "another port."
    ]
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 15  # refused up front, not after a start


def test_include_marked_only_under_runserver(monkeypatch: pytest.MonkeyPatch):
    from webpy_socketio.templating import BROWSER_RELOAD_ENV, DEV_SERVER_ENV, script_tags

    monkeypatch.delenv(BROWSER_RELOAD_ENV, raising=False)
    monkeypatch.delenv(DEV_SERVER_ENV, raising=False)
    assert "data-wsio-reload" not in script_tags() and "data-wsio-dev" not in script_tags()
    monkeypatch.setenv(DEV_SERVER_ENV, "1")
    monkeypatch.setenv(BROWSER_RELOAD_ENV, "1")
    assert re.search(
        r'<script src="/socket.io/wsio.js" data-client="[^"]+" data-wsio-dev '
        r"data-wsio-reload></script>",
        script_tags(),
    )


# -- reloading ------------------------------------------------------------------------


@pytest.mark.server
def test_edited_handler_is_served(dev: DevServer):
    first = dev.value()
    assert first["value"] == "v1"
    set_value(dev.project, "v2")
    second = dev.wait_value("v2")
    assert second["pid"] != first["pid"]  # a new worker
    output = dev.wait_output("events.py changed; reloading")
    assert re.search(r"worker \d+ reloaded in \d+ ms", output)
    # again, and a new file the app starts importing
    (dev.project / "extra.py").write_text('VALUE = "from extra"\n')
    events = dev.project / "events.py"
    events.write_text(events.read_text() + "\nfrom extra import VALUE  # noqa\n")
    dev.wait_value("from extra")


@pytest.mark.server
def test_no_request_refused_during_reloads(dev: DevServer):
    """A client requesting without pause through three reloads: every
    request is answered (the socket stays open; requests wait in the
    backlog), and the values only move forward."""
    import threading

    answers: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set() and len(answers) < 20000:
            try:
                with urllib.request.urlopen(dev.url + "/value", timeout=10) as response:
                    answers.append(json.loads(response.read())["value"])
            except Exception as exc:  # noqa: BLE001 - every failure is the finding
                failures.append(repr(exc))

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        for value in ("v2", "v3", "v4"):
            time.sleep(0.3)
            set_value(dev.project, value)
            dev.wait_value(value)
    finally:
        stop.set()
        thread.join(15)
    assert failures == []
    assert len(answers) > 30, answers  # it did keep requesting
    assert answers[0] == "v1" and answers[-1] == "v4"
    order = ["v1", "v2", "v3", "v4"]
    assert [order.index(a) for a in answers] == sorted(order.index(a) for a in answers)


@pytest.mark.server
def test_kept_alive_connection_never_gets_the_old_code(dev: DevServer):
    """Browsers reuse idle connections: one kept alive by the old worker
    must not be answered by it once the new worker is up."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", dev.port, timeout=10)
    try:
        conn.request("GET", "/value")
        response = conn.getresponse()
        assert json.loads(response.read())["value"] == "v1"
        assert not response.will_close  # kept alive
        set_value(dev.project, "v2")
        dev.wait_value("v2")
        try:
            conn.request("GET", "/value")
            body = json.loads(conn.getresponse().read())
        except (http.client.RemoteDisconnected, ConnectionError):
            body = None  # closed: the client opens a new connection
        assert body is None or body["value"] == "v2", body
    finally:
        conn.close()


@pytest.mark.server
def test_banner(dev: DevServer):
    output = dev.output()
    versions = r"Python 3\.\d+\.\d+, webpy-socketio \S+, web\.py \S+, python-socketio \S+"
    assert re.search(versions, output)
    assert f"serving on http://127.0.0.1:{dev.port}/" in output
    assert re.search(r"watching 5 files in .*proj: \*\.py, templates", output)


@pytest.mark.server
def test_syntax_error_then_fix(dev: DevServer):
    events = dev.project / "events.py"
    good = events.read_text()
    events.write_text(good + "\ndef broken(:\n")
    output = dev.wait_output("SyntaxError")
    assert 'events.py", line' in output
    # the traceback starts at the project's code, not in the command
    traceback_text = output[output.rindex("Traceback") :]
    assert "cli/loading.py" not in traceback_text
    assert "importlib" not in traceback_text
    # the server answers, with a page that says where the error is
    status, body = dev.request("/value")
    assert status == 503
    assert "The app did not load" in body and "refresh" in body
    assert dev.proc.poll() is None
    events.write_text(good.replace('"v1"', '"fixed"'))
    dev.wait_value("fixed")


@pytest.mark.server
def test_error_in_a_module_the_app_imports(dev: DevServer):
    events = dev.project / "events.py"
    good = events.read_text()
    events.write_text("import no_such_dependency\n" + good)
    output = dev.wait_output("ModuleNotFoundError: No module named 'no_such_dependency'")
    assert "no such module. Run the command" not in output  # not blamed on --app
    assert dev.request("/value")[0] == 503
    events.write_text(good)
    dev.wait_value("v1")


@pytest.mark.server
def test_crashed_worker_is_restarted_on_next_change(dev: DevServer):
    with pytest.raises(OSError):  # the connection dies with the worker
        dev.request("/crash", timeout=5)
    dev.wait_output("exited with status 3; fix the code and save a file to restart it")
    status, body = dev.request("/value")
    assert status == 503 and "exited with status 3" in body
    set_value(dev.project, "after-crash")
    dev.wait_value("after-crash")


@pytest.mark.server
def test_worker_stuck_in_the_project_is_killed(dev: DevServer):
    events = dev.project / "events.py"
    good = events.read_text()
    # blocks the import for good: the worker never reads its stop order
    events.write_text("import time\ntime.sleep(3600)\n" + good)
    dev.wait_output("events.py changed; reloading")
    assert wait_until(lambda: len(descendants(dev.pid)) == 2, timeout=10)  # old one gone
    events.write_text(good.replace('"v1"', '"v2"'))
    dev.wait_value("v2")
    dev.wait_output("did not stop within 4 s; killing it", timeout=15)
    assert wait_until(lambda: len(descendants(dev.pid)) == 2, timeout=10), process_table()


@pytest.mark.server
def test_killed_zygote_is_replaced(dev: DevServer):
    table = process_table()
    zygote = next(p for p, (ppid, _) in table.items() if ppid == dev.pid)
    worker = next(p for p, (ppid, _) in table.items() if ppid == zygote)
    os.kill(zygote, signal.SIGKILL)
    dev.wait_output("the server process exited (status -9); starting it again")
    assert dev.wait_value("v1")["pid"] != worker
    # the old worker saw its zygote go and stopped by itself
    assert wait_until(lambda: not alive({worker}), timeout=10)
    assert wait_until(lambda: len(descendants(dev.pid)) == 2, timeout=10)
    set_value(dev.project, "v2")
    dev.wait_value("v2")


@pytest.mark.server
def test_stale_bytecode_never_served(project: Path):
    """A .pyc written for events.py, then an edit with the same size and the
    same mtime second: a plain interpreter serves the old code from the
    .pyc; runserver must not."""
    events = project / "events.py"
    stat = events.stat()
    # timestamp-checked, as Python writes them (SOURCE_DATE_EPOCH would pick hashes)
    py_compile.compile(str(events), doraise=True, invalidation_mode=TIMESTAMP)
    set_value(project, "v9")  # same length as "v1"
    os.utime(events, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    plain = subprocess.run(
        [sys.executable, "-c", "import events; print(events.VALUE)"],
        cwd=project,
        capture_output=True,
        text=True,
        env={**wsio_env(), "PYTHONDONTWRITEBYTECODE": "1"},
        timeout=30,
    )
    assert plain.stdout.strip() == "v1", "the trap did not reproduce"
    server = DevServer(project)
    try:
        assert server.value()["value"] == "v9"
    finally:
        server.stop()


@pytest.mark.server
def test_noreload(project: Path):
    server = DevServer(project, "--noreload")
    try:
        first = server.value()
        set_value(project, "v2")
        time.sleep(1.0)
        assert server.value() == first
        assert "without reloading" in server.output()
        assert not descendants(server.pid)  # one process, nothing forked
    finally:
        assert server.stop(signal.SIGINT) == 0


@pytest.mark.server
def test_address_from_settings_and_from_a_subfolder(project: Path):
    port = free_port()
    (project / "settings.py").write_text(f"SOCKETIO_PORT = {port}\n")
    log = output_dir("runserver") / f"settings-port-{port}.log"
    server = Process([WSIO, "runserver"], log, cwd=project / "templates", env=wsio_env())
    try:
        assert wait_until(lambda: "started in" in server.output(), timeout=30), server.output()
        assert f"serving on http://127.0.0.1:{port}/" in server.output()
        assert f"project {project}" in server.output()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/value", timeout=10) as response:
            assert json.loads(response.read())["value"] == "v1"
    finally:
        server.stop()


@pytest.mark.server
@pytest.mark.parametrize("variant", ["chat", "minimal"])
def test_serves_a_wsio_new_project_as_made(tmp_path: Path, variant: str):
    from webpy_socketio.cli.new import render

    port = free_port()
    made = render("devchat", tmp_path, variant=variant, port=port)
    log = output_dir("runserver") / f"new-{variant}-{port}.log"
    server = Process([WSIO, "runserver"], log, cwd=made, env=wsio_env())
    try:
        assert wait_until(lambda: "started in" in server.output(), timeout=30), server.output()
        url = f"http://127.0.0.1:{port}/"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            assert "data-wsio-reload" in response.read().decode()
        events = made / "events.py"
        events.write_text(events.read_text() + "\n# edited\n")
        assert wait_until(lambda: "reloaded in" in server.output(), timeout=15), server.output()
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
        assert "Traceback" not in server.output()
    finally:
        server.stop()


@pytest.mark.server
def test_broken_settings_wait_for_a_fix(project: Path):
    settings = project / "settings.py"
    settings.write_text("SOCKETIO_PORTT = 8000\n")
    log = output_dir("runserver") / f"bad-settings-{os.getpid()}.log"
    server = Process([WSIO, "runserver"], log, cwd=project, env=wsio_env())
    try:
        assert wait_until(lambda: "waiting for a change" in server.output(), timeout=30)
        assert "Did you mean SOCKETIO_PORT?" in server.output()
        assert "Traceback" not in server.output()
        port = free_port()
        settings.write_text(f"SOCKETIO_PORT = {port}\n")
        assert wait_until(lambda: "started in" in server.output(), timeout=30), server.output()
        assert f"serving on http://127.0.0.1:{port}/" in server.output()
    finally:
        server.stop()


# -- stopping ---------------------------------------------------------------------------


@pytest.mark.server
@pytest.mark.parametrize(
    ("signame", "target"),
    [
        ("SIGINT", "group"),  # Ctrl-C in a terminal reaches every process
        ("SIGHUP", "group"),  # and so does closing the terminal
        ("SIGINT", "supervisor"),
        ("SIGTERM", "supervisor"),
        ("SIGKILL", "supervisor"),  # no clean-up code runs in the supervisor
    ],
)
def test_no_orphans(project: Path, signame: str, target: str):
    server = DevServer(project, name=f"stop-{signame}-{target}")
    try:
        server.value()
        set_value(project, "v2")  # a reload first: the old worker is gone too
        server.wait_value("v2")
        # the zygote and one worker, once the old worker has finished
        assert wait_until(lambda: len(descendants(server.pid)) == 2, timeout=10)
        children = descendants(server.pid)
        sig = getattr(signal, signame)
        if target == "group":
            os.killpg(server.pid, sig)
        else:
            os.kill(server.pid, sig)
        server.proc.wait(15)
        if signame != "SIGKILL":
            assert server.proc.returncode == 0, server.output()
        assert wait_until(lambda: not alive(children), timeout=10), (
            f"left running: {alive(children)}\n{server.output()}"
        )
        with socket.socket() as probe:  # and the port is free again
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", server.port))
    finally:
        server.stop(signal.SIGKILL)


# -- connected clients ----------------------------------------------------------------


@pytest.mark.server
@pytest.mark.node
@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_client_reconnects_and_keeps_its_channel(dev: DevServer, agent: NodeAgent, transport):
    first = agent.connect(
        "a", dev.url, transport, reconnection=True, reconnectionDelay=100, reconnectionDelayMax=500
    )
    assert agent.call("subscribe", "a", channel="room-1") == {"ok": True}
    assert agent.call("send", "a", data="hi") == {"echo": "hi", "value": "v1"}
    set_value(dev.project, "v2")
    dev.wait_value("v2")
    assert wait_until(lambda: len(connects(agent, "a")) >= 2, timeout=15), agent.events
    new_sid = connects(agent, "a")[-1]
    assert new_sid != first["id"]
    # the extension subscribed again: the new worker has it in the room
    assert wait_until(
        lambda: new_sid in json.loads(dev.request("/rooms")[1]).get("#room-1", []), timeout=10
    ), dev.request("/rooms")
    assert json.loads(dev.request("/say/room-1")[1]) == {"sent": True}
    assert agent.wait_for("a", lambda m: m == {"said": "v2"}, timeout=10)
    assert agent.call("send", "a", data="again") == {"echo": "again", "value": "v2"}
    # the old worker told the page what changed (Python only: no reload)
    assert reload_events(agent, "a") == [{"reload": False, "changed": ["events.py"]}]


@pytest.mark.server
@pytest.mark.node
def test_template_and_static_changes_tell_pages(dev: DevServer, agent: NodeAgent):
    agent.connect("a", dev.url, "websocket", reconnection=True, reconnectionDelay=100)
    pid = dev.value()["pid"]
    # a static file: no restart, the running worker tells its pages
    (dev.project / "static" / "page.js").write_text("// changed\n")
    assert agent.wait_for("a", lambda m: True, event="wsio:reload", timeout=10) == {
        "reload": True,
        "changed": ["static/page.js"],
    }
    assert dev.value()["pid"] == pid
    assert "static/page.js changed; reloading the pages" in dev.output()
    # a template: a restart, and the pages reload
    template = dev.project / "templates" / "index.html"
    template.write_text(template.read_text().replace("first title", "second title"))
    assert wait_until(lambda: len(reload_events(agent, "a")) == 2, timeout=10), agent.events
    assert reload_events(agent, "a")[1] == {"reload": True, "changed": ["templates/index.html"]}
    assert wait_until(lambda: dev.value()["pid"] != pid, timeout=10)
    assert "second title" in dev.request("/")[1]


@pytest.mark.server
@pytest.mark.node
def test_no_browser_reload(project: Path, agent: NodeAgent):
    server = DevServer(project, "--no-browser-reload")
    try:
        agent.connect("a", server.url, "websocket", reconnection=True, reconnectionDelay=100)
        status, page = server.request("/")
        assert status == 200 and "data-wsio-reload" not in page
        (project / "static" / "page.js").write_text("// changed\n")
        template = project / "templates" / "index.html"
        template.write_text(template.read_text().replace("first title", "second title"))
        assert wait_until(lambda: len(connects(agent, "a")) >= 2, timeout=15), agent.events
        assert "second title" in server.request("/")[1]
        # the restart is announced (pages reconnect at once), never as a reload
        assert reload_events(agent, "a") == [{"reload": False, "changed": ["templates/index.html"]}]
        assert "static/page.js" not in server.output()  # not even watched
    finally:
        server.stop()


# -- browsers -------------------------------------------------------------------------


@pytest.mark.server
@pytest.mark.browser
def test_browser_page_reloads_itself(tmp_path: Path):
    from browser import chromium
    from browser import copy_project as copy_with_client

    project = copy_with_client(PROJECT, tmp_path / "proj")
    server = DevServer(project)
    try:
        with chromium() as browser:
            page = browser.new_page()
            page.set_default_timeout(10000)
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.goto(server.url + "/")
            page.wait_for_function("window.state && window.state.subscribed === true")
            assert page.locator("script[data-wsio-reload]").count() == 1
            loaded_at = page.evaluate("window.state.loadedAt")
            # Python only: the page stays, reconnects and rejoins its channel
            set_value(project, "v2")
            server.wait_value("v2")
            page.wait_for_function("window.state.connects >= 2")
            assert page.evaluate("window.state.loadedAt") == loaded_at
            # a template: the page reloads by itself and shows the new text
            template = project / "templates" / "index.html"
            template.write_text(template.read_text().replace("first title", "second title"))
            page.wait_for_function(
                "document.getElementById('title').textContent === 'second title'"
            )
            assert page.evaluate("window.state.loadedAt") != loaded_at
            page.wait_for_function("window.state.subscribed === true")
            page.screenshot(path=str(output_dir("browser") / "runserver-reloaded.png"))
            assert problems == []
    finally:
        server.stop()


#: A page whose client would wait a minute before reconnecting on its own.
PATIENT_PAGE_JS = """
window.state = { connects: 0, loadedAt: Date.now() };
const socket = io({ reconnectionDelay: 60000, reconnectionDelayMax: 60000,
                    randomizationFactor: 0 });
socket.on("connect", () => {
  window.state.connects += 1;
  socket.emit("value", (value) => { window.state.value = value; });
});
socket.subscribe("room-1").then((reply) => { window.state.subscribed = reply.ok; });
"""


@pytest.mark.server
@pytest.mark.browser
def test_open_page_reconnects_at_once_after_a_restart(tmp_path: Path):
    """The client's own back-off is a minute here: the page is back within
    the test's wait only because the restart notice makes it reconnect at
    once (without it the second connect would come 60 s later)."""
    from browser import chromium
    from browser import copy_project as copy_with_client

    project = copy_with_client(PROJECT, tmp_path / "proj")
    (project / "static" / "page.js").write_text(PATIENT_PAGE_JS)
    server = DevServer(project)
    try:
        with chromium() as browser:
            page = browser.new_page()
            page.set_default_timeout(15000)
            page.goto(server.url + "/")
            page.wait_for_function("window.state.value === 'v1' && window.state.subscribed")
            assert page.locator("script[data-wsio-dev]").count() == 1
            loaded_at = page.evaluate("window.state.loadedAt")
            for value in ("v2", "v3"):
                set_value(project, value)
                page.wait_for_function(f"window.state.value === '{value}'")
            assert page.evaluate("window.state.loadedAt") == loaded_at  # not reloaded
            assert page.evaluate("window.state.connects") == 3
            # and the channel was joined again on the new worker
            sid = page.evaluate("socket.id")
            assert wait_until(
                lambda: sid in json.loads(server.request("/rooms")[1]).get("#room-1", []),
                timeout=10,
            )
    finally:
        server.stop()


@pytest.mark.server
@pytest.mark.browser
def test_open_chat_survives_a_broken_load_and_rejoins(tmp_path: Path):
    """A ``wsio new`` chat, open in a room, while events.py gets a syntax
    error and then its fix: the page stays in the room, says the app failed
    to load, and is back in the room (members, messages) after the fix."""
    from browser import chromium
    from browser import copy_project as copy_with_client
    from webpy_socketio.cli.new import render

    (tmp_path / "made").mkdir()
    made = render("devchat", tmp_path / "made")
    project = copy_with_client(made, tmp_path / "devchat")
    server = DevServer(project)
    events = project / "events.py"
    good = events.read_text()
    try:
        with chromium() as browser:
            page = browser.new_page()
            page.set_default_timeout(15000)
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.goto(server.url + "/")
            page.fill("input[name=name]", "Ann")
            page.fill("input[name=room]", "lobby")
            page.click("#join button")
            page.wait_for_selector("#room:not([hidden])")
            page.locator("#members li", has_text="Ann").wait_for()

            events.write_text(good + "\ndef broken(:\n")
            failed = page.locator("#wsio-notice[data-state=error]", has_text="failed to load")
            failed.wait_for()
            assert "wsio runserver" in failed.inner_text()
            assert page.locator("#room").is_visible()  # not thrown out to the join form
            assert page.locator("#join").is_hidden()
            page.screenshot(path=str(output_dir("browser") / "runserver-app-failed.png"))

            events.write_text(good + "\n# fixed\n")
            page.locator("#wsio-notice").wait_for(state="detached")
            page.locator("#status.online").wait_for()
            page.locator("#members li", has_text="Ann").wait_for()
            page.fill("#composer input", "back after the fix")
            page.press("#composer input", "Enter")
            page.locator("#messages li", has_text="back after the fix").wait_for()
            assert page.locator("#join-error").inner_text() == ""
            assert problems == []
    finally:
        server.stop()


@pytest.mark.server
@pytest.mark.browser
def test_the_demo_room_survives_a_broken_load_under_its_csp(tmp_path: Path):
    """The same for example_chat, whose pages allow no inline script or
    style (Content-Security-Policy): the notice appears all the same, and
    nothing is reported as a violation."""
    from browser import chromium
    from browser import copy_project as copy_with_client
    from support import ROOT

    project = copy_with_client(ROOT / "example_chat", tmp_path / "example_chat")
    server = DevServer(project, name="demo-broken")
    events = project / "events.py"
    good = events.read_text()
    try:
        with chromium() as browser:
            page = browser.new_page()
            page.set_default_timeout(15000)
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.goto(server.url + "/rooms/1")
            page.fill("#join-name", "Ann")
            page.click("#join button[type=submit]")
            page.wait_for_selector("#chat:not([hidden])")
            page.locator("#members .name", has_text="Ann").wait_for()
            events.write_text(good + "\ndef broken(:\n")
            page.locator("#wsio-notice[data-state=error]", has_text="failed to load").wait_for()
            assert page.locator("#chat").is_visible()
            events.write_text(good + "\n# fixed\n")
            page.locator("#wsio-notice").wait_for(state="detached")
            page.locator("#status.online").wait_for()
            page.locator("#members .name", has_text="Ann").wait_for()
            page.fill("#composer input[name=text]", "back in the demo")
            page.press("#composer input[name=text]", "Enter")
            page.locator("#messages .text", has_text="back in the demo").wait_for()
            # the failed polls while the app was broken are the browser's own
            # network errors; anything else (a CSP violation) is a problem
            assert [p for p in problems if "503" not in p] == []
    finally:
        server.stop()


@pytest.mark.server
def test_warns_at_start_when_pages_cannot_get_the_client(project: Path):
    """No static/socket.io.min.js and a client URL nothing answers (an
    offline machine and the CDN): one warning naming ``wsio client``. With
    a local copy, none."""
    unreachable = f"http://127.0.0.1:{free_port()}/socket.io.min.js"
    with open(project / "settings.py", "a") as f:
        f.write(f"SOCKETIO_CLIENT_URL = {unreachable!r}\n")
    server = DevServer(project, name="client-warning")
    try:
        output = server.wait_output("warning: pages load the socket.io client from")
        (line,) = [ln for ln in output.splitlines() if "warning: pages load" in ln]
        assert unreachable in line and "cannot be reached" in line
        assert f"Run 'wsio client' in {project}" in line
    finally:
        server.stop()
    (project / "static" / "socket.io.min.js").write_text("// a local copy\n")
    server = DevServer(project, name="client-local")
    try:
        server.value()
        assert "warning" not in server.output()
    finally:
        server.stop()


@pytest.mark.node
def test_channel_history_survives_reloads(project: Path, agent: NodeAgent):
    # a page stays open while events.py is edited twice and messages keep
    # going to its channel: it misses nothing and sees nothing twice (the
    # in-memory history passes from each worker to the next). They are sent
    # out of band, each retried until the server answers: a message a
    # client emits just as the server stops is lost before it reaches the
    # channel, which no history can help
    settings = project / "settings.py"
    settings.write_text(
        settings.read_text() + '\nSOCKETIO_HISTORY = {"^room-": {"size": 500, "ttl": 600}}\n'
    )
    server = DevServer(project, name="runserver-history")
    try:
        fast = {"reconnection": True, "reconnectionDelay": 50, "randomizationFactor": 0}
        agent.connect("rx", server.url, "websocket", **fast)
        assert agent.call("subscribe", "rx", channel="room-live")["offset"] == 0
        for n in range(120):
            if n in (30, 80):
                set_value(project, f"v{n}")
            deadline = time.monotonic() + 20
            while True:
                try:
                    status, body = server.request(f"/say/room-live?n={n}")
                except OSError as exc:  # the connection failed: not sent
                    status, body = 0, str(exc)
                if status == 200 and json.loads(body)["sent"]:
                    break
                assert time.monotonic() < deadline, (n, status, body)
                time.sleep(0.02)
            time.sleep(0.01)
        server.wait_value("v80", timeout=20)

        def complete() -> bool:
            return len([m for m in agent.received("rx") if "n" in m]) >= 120

        assert wait_until(complete, timeout=30), agent.received("rx")[-5:]
        assert [m["n"] for m in agent.received("rx") if "n" in m] == list(range(120))
        assert [e for e in agent.events if e["event"] == "wsio:recovery-failed"] == []
        assert len(connects(agent, "rx")) >= 3  # it did reconnect, twice
    finally:
        server.stop()
