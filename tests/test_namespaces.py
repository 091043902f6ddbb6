"""Namespaces the Socket.IO way: handlers, channels, broadcasts and
out-of-band sends per namespace, several namespaces over one connection,
refusal per namespace, the client extension on ``io("/admin")``. Real
server (tests/apps/namespace_app.py) on both engine paths, official
socket.io-client in Node."""

from __future__ import annotations

import urllib.request

import pytest
from support import AppServer, wait_until

pytestmark = [pytest.mark.server, pytest.mark.node]

ADMIN = {"auth": {"token": "let-me-in"}}


@pytest.fixture(scope="module")
def server(engine_path):
    app = AppServer(
        "namespace_app.py", f"namespaces-{engine_path}", {"WSIO_TEST_PATH": engine_path}
    )
    yield app
    app.stop()


def oob(server, namespace: str, channel: str, text: str) -> None:
    with urllib.request.urlopen(f"{server.url}/oob/{namespace}/{channel}?text={text}", timeout=5):
        pass


def test_unknown_namespace_is_refused_with_invalid_namespace(server, agent):
    ok, error = agent.try_call(
        "connect", "x", url=server.url + "/nowhere", options={"transports": ["websocket"]}
    )
    assert not ok and "Invalid namespace" in error


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_on_connect_refuses_per_namespace(server, agent, transport):
    ok, error = agent.try_call(
        "connect", "intruder", url=server.url + "/admin", options={"transports": [transport]}
    )
    assert not ok and "admins only" in error
    # the default namespace of the same server is open
    agent.connect("visitor", server.url, transport)
    assert agent.call("send", "visitor", data="hi") == {"ns": "/"}


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_emit_in_on_connect_arrives_after_the_connect(server, agent, transport):
    agent.connect("admin", server.url + "/admin", transport, **ADMIN)
    # the client fires "connect" first, then the event the handler emitted
    # (a client that dropped events before its CONNECT would miss it)
    assert agent.wait_for("admin", lambda v: True, event="welcome") == "/admin"
    names = [e["event"] for e in agent.events if e["client"] == "admin"]
    assert names.index("connect") < names.index("welcome"), names


def test_channels_and_broadcasts_stay_in_their_namespace(server, agent):
    agent.connect("main-sub", server.url, "websocket")
    agent.connect("admin-sub", server.url + "/admin", "websocket", **ADMIN)
    agent.connect("main-pub", server.url, "websocket")
    agent.connect("admin-pub", server.url + "/admin", "websocket", **ADMIN)
    for client in ("main-sub", "admin-sub", "main-pub", "admin-pub"):
        assert agent.call("subscribe", client, channel="room-1") == {"ok": True}
    assert agent.call("send", "main-pub", data="to main") == {"ns": "/"}
    assert agent.call("send", "admin-pub", data="to admin") == {"ns": "/admin"}
    agent.wait_for("main-sub", lambda m: m == {"ns": "/", "text": "to main"})
    agent.wait_for("admin-sub", lambda m: m == {"ns": "/admin", "text": "to admin"})
    # out of band, to one namespace's channel
    oob(server, "admin", "room-1", "oob-admin")
    oob(server, "root", "room-1", "oob-main")
    agent.wait_for("admin-sub", lambda m: m == {"ns": "oob", "text": "oob-admin"})
    agent.wait_for("main-sub", lambda m: m == {"ns": "oob", "text": "oob-main"})
    assert [m["text"] for m in agent.received("main-sub")] == ["to main", "oob-main"]
    assert [m["text"] for m in agent.received("admin-sub")] == ["to admin", "oob-admin"]


def test_named_events_and_subscription_refusal_per_namespace(server, agent):
    agent.connect(
        "staff", server.url + "/admin", "websocket", auth={"token": "let-me-in", "staff": True}
    )
    agent.connect("guest", server.url + "/admin", "websocket", **ADMIN)
    assert agent.call("subscribe", "staff", channel="staff-room") == {"ok": True}
    reply = agent.call("subscribe", "guest", channel="staff-room")
    assert reply["ok"] is False
    assert agent.call("emit", "staff", event="whoami") == {
        "namespace": "/admin",
        "channels": ["staff-room"],
    }
    # a handler of /admin is not one of "/": no such event there
    agent.connect("main", server.url, "websocket")
    assert agent.call("emit", "main", event="whoami") is None


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_several_namespaces_over_one_connection(server, agent, transport):
    before = server.stats()["eio_sessions"]
    agent.connect("main", server.url, transport, forceNew=True)
    agent.call("namespace", "admin", parent="main", namespace="/admin", options=ADMIN)
    assert server.stats()["eio_sessions"] == before + 1  # one Engine.IO session for both
    assert agent.call("send", "main", data="a") == {"ns": "/"}
    assert agent.call("send", "admin", data="b") == {"ns": "/admin"}
    # leaving one namespace keeps the other, over the same connection
    agent.call("disconnect", "admin")
    assert agent.call("send", "main", data="c") == {"ns": "/"}
    assert server.stats()["eio_sessions"] == before + 1


def test_extension_subscribes_again_after_a_reconnect_on_a_namespace(server, agent):
    agent.connect(
        "admin",
        server.url + "/admin",
        "websocket",
        reconnection=True,
        reconnectionDelay=100,
        **ADMIN,
    )
    assert agent.call("subscribe", "admin", channel="room-2") == {"ok": True}
    agent.call("drop", "admin")
    agent.wait_for("admin", lambda v: True, event="reconnect", timeout=10)

    def delivered() -> bool:
        oob(server, "admin", "room-2", "after")
        return any(m.get("text") == "after" for m in agent.received("admin"))

    wait_until(delivered, timeout=10, interval=0.3)
    assert agent.call("channels", "admin") == ["room-2"]


def test_clients_leave_the_registry_per_namespace(server, agent):
    agent.connect("main", server.url, "websocket", forceNew=True)
    agent.call("namespace", "admin", parent="main", namespace="/admin", options=ADMIN)
    assert sorted(server.stats()["clients"].values()).count("/admin") >= 1
    agent.call("disconnect", "admin")
    agent.call("disconnect", "main")
    wait_until(lambda: not server.stats()["clients"], timeout=10)
