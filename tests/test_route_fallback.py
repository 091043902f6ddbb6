"""``urls += socketio_urls`` carries Socket.IO by itself under a server that
is not SocketIOServer, even when a processor has already read the body."""

from __future__ import annotations

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
