"""``urls += socketio_urls`` carries Socket.IO by itself under a server that
is not SocketIOServer, even when a processor has already read the body."""

from __future__ import annotations

import socket
import urllib.request

import pytest
from support import AppServer

pytestmark = [pytest.mark.server, pytest.mark.node]


@pytest.fixture(scope="module")
def route_server():
    server = AppServer("route_app.py", "route")
    yield server
    server.stop()


@pytest.mark.parametrize("transport", ["polling", "websocket"])
def test_route_carries_socketio(route_server, agent, transport):
    agent.connect("a", route_server.url, transport)
    agent.connect("b", route_server.url, transport)
    for client in ("a", "b"):
        assert agent.call("subscribe", client, channel="room") == {"ok": True}
    assert agent.call("send", "a", data="via route") == {"echo": "via route"}
    agent.wait_for("b", lambda m: m == {"relay": "via route"})
    agent.wait_for("a", lambda m: m == {"relay": "via route"})


def test_route_serves_the_extension(route_server):
    with urllib.request.urlopen(route_server.url + "/socket.io/wsio.js", timeout=5) as response:
        assert b"wsio:subscribe" in response.read()


def _raw_post(port: int, target: str, content_length: str) -> bytes:
    """The status line of a POST that announces a body it never sends."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(
            f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Length: {content_length}\r\nConnection: close\r\n\r\n".encode()
        )
        return conn.recv(4096).split(b"\r\n", 1)[0]


@pytest.mark.parametrize(
    "content_length, status",
    [("99999999999", b"413"), ("2000000000", b"413"), ("abc", b"400"), ("-1", b"400")],
)
def test_route_refuses_a_body_before_reading_it(route_server, content_length, status):
    # web.data() would try to read (and allocate) what Content-Length says
    target = "/socket.io/?EIO=4&transport=polling&sid=nosuchsession&greedy=no"
    line = _raw_post(route_server.port, target, content_length)
    assert line.split()[1] == status, line
    assert route_server.get("/") == (200, "route app")
    assert "Traceback" not in route_server.output()


def test_route_matches_the_dot_literally(route_server):
    # "/socketXio/" is an ordinary (here missing) page of the app
    status, _ = route_server.get("/socketXio/?EIO=4&transport=polling")
    assert status == 404
    status, _ = route_server.get("/socket.io/?EIO=4&transport=polling")
    assert status == 200
