"""The official Socket.IO Admin UI (npm @socket.io/admin-ui, fetched at test
time; its built UI is served from a local folder) against a real server:
the login, the sockets and their channels listed, read-only; and the admin
namespace's protocol with the official client. Screenshot in
test-output/browser/."""

from __future__ import annotations

import functools
import http.server
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import chromium, playwright_available
from support import (
    ROOT,
    AppServer,
    free_port,
    output_dir,
    require,
    require_executable,
    wait_until,
)

pytestmark = [pytest.mark.server, pytest.mark.node]

ADMIN_UI = "0.5.1"
CACHE = ROOT / ".cache" / f"admin-ui-{ADMIN_UI}"
CREDENTIALS = {"username": "admin", "password": "not-the-default"}


def admin_ui_dist() -> Path:
    """ui/dist of the npm package, fetched once into an ignored folder."""
    dist = CACHE / "package" / "ui" / "dist"
    if not (dist / "index.html").is_file():
        npm = require_executable("npm", "install npm to fetch @socket.io/admin-ui")
        CACHE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [npm, "pack", f"@socket.io/admin-ui@{ADMIN_UI}", "--pack-destination", str(CACHE)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        require(done.returncode == 0, f"npm pack @socket.io/admin-ui failed: {done.stderr[-300:]}")
        tarball = next(CACHE.glob("*.tgz"))
        with tarfile.open(tarball) as archive:
            archive.extractall(CACHE, filter="data")
    return dist


@pytest.fixture(scope="module")
def ui() -> Iterator[str]:
    """The Admin UI's files on a local static server (another origin)."""
    dist = admin_ui_dist()
    handler = functools.partial(
        type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}),
        directory=str(dist),
    )
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def server(ui, engine_path) -> Iterator[AppServer]:
    app = AppServer(
        "basic_app.py",
        f"admin-ui-{engine_path}",
        {
            "WSIO_SETTINGS_MODULE": "admin_settings",
            "WSIO_TEST_ADMIN_ORIGIN": ui,
            "WSIO_TEST_PATH": engine_path,
        },
    )
    yield app
    app.stop()


def events_of(agent, client: str, name: str) -> list:
    return [e["args"] for e in agent.events if e["client"] == client and e["event"] == name]


def test_the_admin_namespace_speaks_the_admin_ui_protocol(server, agent):
    agent.connect("user", server.url + "/?name=ada", "websocket")
    assert agent.call("subscribe", "user", channel="room-42")["ok"]
    # a wrong password is refused
    ok, error = agent.try_call(
        "connect",
        "intruder",
        url=server.url + "/admin",
        options={"transports": ["websocket"], "auth": {"username": "admin", "password": "x"}},
    )
    assert not ok and "invalid credentials" in error
    agent.connect("admin", server.url + "/admin", "websocket", auth=CREDENTIALS)
    assert wait_until(lambda: events_of(agent, "admin", "all_sockets"), timeout=5)
    (config,) = events_of(agent, "admin", "config")[0]
    assert "EMIT" not in config["supportedFeatures"]  # read-only by default
    (sockets,) = events_of(agent, "admin", "all_sockets")[0]
    (ada,) = [s for s in sockets if s["handshake"]["query"].get("name") == "ada"]
    assert "room-42" in ada["rooms"] and ada["nsp"] == "/" and ada["transport"] == "websocket"
    assert "cookie" not in ada["handshake"]["headers"]
    assert events_of(agent, "admin", "session")  # a session id for a page reload
    # live: a join, an event, a disconnect, and the server's figures
    assert agent.call("subscribe", "user", channel="room-43")["ok"]
    agent.call("send", "user", data="hello")
    agent.call("disconnect", "user")
    for name in ("room_joined", "event_received", "socket_disconnected", "server_stats"):
        assert wait_until(lambda n=name: events_of(agent, "admin", n), timeout=6), name
    assert ["/", "room-43"] == events_of(agent, "admin", "room_joined")[-1][:2]
    stats = events_of(agent, "admin", "server_stats")[-1][0]
    assert (
        stats["clientsCount"] >= 1 and {"name": "/admin", "socketsCount": 1} in stats["namespaces"]
    )
    # read-only: a request to disconnect everybody does nothing
    agent.connect("other", server.url + "/?name=bob", "websocket")
    agent.call("emit", "admin", event="_disconnect", args=["/", False], timeout=2)
    assert agent.call("send", "other", data="still here") == {"echo": "still here"}


@pytest.mark.browser
def test_the_official_admin_ui_lists_sockets_and_their_channels(server, ui, agent, engine_path):
    require(playwright_available(), "playwright is not installed")
    ada = agent.connect("ada", server.url + "/?name=ada", "websocket")["id"]
    bob = agent.connect("bob", server.url + "/?name=bob", "polling")["id"]
    assert agent.call("subscribe", "ada", channel="room-42")["ok"]
    assert agent.call("subscribe", "bob", channel="lobby")["ok"]
    shots = output_dir("browser")
    with chromium() as browser:
        page = browser.new_page()
        # the UI asks fonts and icons of CDNs this machine cannot reach
        page.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith("http://127.0.0.1")
                else route.abort()
            ),
        )
        page.goto(ui + "/")
        page.get_by_label("Server URL").fill(server.url)
        page.get_by_label("Username").fill(CREDENTIALS["username"])
        page.get_by_label("Password").fill(CREDENTIALS["password"])
        page.get_by_role("button", name="Connect").click()
        page.wait_for_selector("text=Connected", timeout=15000)
        # the sockets, with their transports
        page.goto(ui + "/#/sockets")
        page.wait_for_selector(f"text={ada}", timeout=15000)
        page.wait_for_selector(f"text={bob}", timeout=15000)
        text = page.inner_text("body")
        assert "WebSocket" in text and "HTTP long-polling" in text
        page.screenshot(path=str(shots / f"admin-ui-sockets-{engine_path}.png"), full_page=True)
        # one socket's page lists its channels
        page.click(f"text={ada}")
        page.wait_for_selector("text=room-42", timeout=15000)
        assert "lobby" not in page.inner_text("body")
        page.screenshot(path=str(shots / f"admin-ui-socket-{engine_path}.png"), full_page=True)
        # and the rooms page, every channel
        page.goto(ui + "/#/rooms")
        page.wait_for_selector("text=room-42", timeout=15000)
        page.wait_for_selector("text=lobby", timeout=15000)
        page.screenshot(path=str(shots / f"admin-ui-rooms-{engine_path}.png"), full_page=True)
