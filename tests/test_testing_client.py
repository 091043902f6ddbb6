"""webpy_socketio.testing: the in-process client app authors use."""

from __future__ import annotations

import pytest

import webpy_socketio
from webpy_socketio import Denied, broadcast, broadcast_channel, events, send
from webpy_socketio.exceptions import ImproperlyConfigured, NoSocket
from webpy_socketio.testing import SocketIOTestClient


@pytest.fixture
def handlers():
    """Register handlers for one test and remove them afterwards."""
    added: list[tuple[events.Event, object]] = []

    def register(event, func=None, channel=None):
        def decorate(f):
            event(f, channel=channel)
            added.append((event, f))
            return f

        return decorate(func) if func else decorate

    yield register
    for event, func in added:
        event.disconnect(func)


def test_connect_subscribe_and_channel_broadcast(handlers):
    @handlers(events.on_message, channel="^room-")
    def relay(request, socket, context, message):
        socket.broadcast_channel(message)

    alice, bob, carol = SocketIOTestClient(), SocketIOTestClient(), SocketIOTestClient()
    assert alice.connected and alice.sid and alice.sid != bob.sid
    assert alice.subscribe("room-1") == {"ok": True}
    assert bob.subscribe("room-1") == {"ok": True}
    assert carol.subscribe("elsewhere") == {"ok": True}
    alice.send({"text": "hi"})
    assert bob.get_messages() == [{"text": "hi"}]
    assert alice.get_messages() == []
    assert carol.get_messages() == []
    for client in (alice, bob, carol):
        client.disconnect()


def test_refused_connection_and_connect_error(handlers):
    @handlers(events.on_connect)
    def gate(request, socket, context):
        if request.headers.get("x-token") != "secret":
            raise Denied("bad token")
        context["user"] = request.auth["user"]

    refused = SocketIOTestClient()
    assert not refused.connected
    assert refused.connect_error == {"message": "bad token"}
    welcome = SocketIOTestClient(headers={"X-Token": "secret"}, auth={"user": "ada"})
    assert welcome.connected
    welcome.disconnect()


def test_named_event_ack_and_emit_to_self(handlers):
    @webpy_socketio.on("add")
    def add(request, socket, context, a, b):
        socket.emit("sum", a + b)
        return a + b

    try:
        with SocketIOTestClient() as client:
            assert client.emit("add", 2, 3) == 5
            assert client.get_received() == [{"name": "sum", "args": [5]}]
    finally:
        events.named["add"].disconnect(add)


def test_request_details_reach_handlers(handlers):
    seen = {}

    @handlers(events.on_connect)
    def look(request, socket, context):
        seen.update(
            addr=request.remote_addr,
            query=request.query,
            cookie=request.cookies.get("flavour"),
            agent=request.headers["User-Agent"],
        )

    client = SocketIOTestClient(
        headers={"Cookie": "flavour=mint; broken", "User-Agent": "pytest"},
        query={"room": "7"},
        remote_addr="10.1.2.3",
    )
    assert seen == {
        "addr": "10.1.2.3",
        "query": {"EIO": "4", "transport": "websocket", "room": "7"},
        "cookie": "mint",
        "agent": "pytest",
    }
    client.disconnect()


def test_out_of_band_sends_reach_test_clients():
    a, b = SocketIOTestClient(), SocketIOTestClient()
    a.subscribe("news")
    broadcast_channel("headline", "news")
    broadcast("all")
    send(b.sid, "just b")
    assert a.get_messages() == ["headline", "all"]
    assert b.get_messages() == ["all", "just b"]
    with pytest.raises(NoSocket, match="no sockets subscribed to channel 'sports'"):
        broadcast_channel("score", "sports")
    with pytest.raises(NoSocket, match="no socket with session id 'gone'"):
        send("gone", "hello")
    a.disconnect()
    b.disconnect()


def test_handler_error_is_isolated(handlers, caplog):
    @handlers(events.on_message)
    def boom(request, socket, context, message):
        raise KeyError("oops")

    @handlers(events.on_message)
    def fine(request, socket, context, message):
        return "second handler ran"

    @handlers(events.on_error)
    def report(request, socket, context, exc):
        socket.send({"error": type(exc).__name__})

    with SocketIOTestClient() as client:
        assert client.send("x") == "second handler ran"
        assert client.get_messages() == [{"error": "KeyError"}]
        assert client.connected
    assert "on_message handler" in caplog.text and "KeyError" in caplog.text


def test_disconnect_runs_disconnect_unsubscribe_finish_in_order(handlers):
    order = []
    handlers(events.on_disconnect)(
        lambda r, s, c: order.append(("disconnect", s.disconnect_reason))
    )
    handlers(events.on_unsubscribe)(lambda r, s, c, ch: order.append(("unsubscribe", ch)))
    handlers(events.on_finish)(lambda r, s, c: order.append(("finish", sorted(s.channels))))
    client = SocketIOTestClient()
    client.subscribe("a")
    client.subscribe("b")
    client.disconnect()
    assert order[0] == ("disconnect", "transport close")
    assert sorted(order[1:3]) == [("unsubscribe", "a"), ("unsubscribe", "b")]
    # rooms are left after on_finish, so it still sees the channels
    assert order[3] == ("finish", ["a", "b"])
    assert webpy_socketio.clients.get(client.sid or "") is None


def test_server_side_disconnect(handlers):
    @handlers(events.on_message)
    def kick(request, socket, context, message):
        socket.disconnect()

    client = SocketIOTestClient()
    client.send("bye", ack=False)
    assert not client.connected


def test_refuses_a_message_queue():
    # a fresh engine (the autouse clean_global_state resets it afterwards)
    webpy_socketio.configure(SOCKETIO_MESSAGE_QUEUE="redis://127.0.0.1:1/0")
    with pytest.raises(ImproperlyConfigured, match="SOCKETIO_MESSAGE_QUEUE"):
        SocketIOTestClient()


def test_session_snapshot(tmp_path):
    import web

    store = web.session.DiskStore(str(tmp_path))
    session = web.session.Session(None, store)
    webpy_socketio.use_session(session)
    sid = "0123456789abcdef0123456789abcdef01234567"
    store[sid] = {"user": "ada", "admin": True}
    seen = {}

    def look(request, socket, context):
        seen["session"] = request.session

    events.on_connect(look)
    try:
        SocketIOTestClient(headers={"Cookie": f"webpy_session_id={sid}"}).disconnect()
        assert seen["session"] == {"user": "ada", "admin": True}
        assert seen["session"].user == "ada"
        SocketIOTestClient(headers={"Cookie": "webpy_session_id=../../etc/passwd"}).disconnect()
        assert seen["session"] is None
        SocketIOTestClient().disconnect()
        assert seen["session"] is None
    finally:
        events.on_connect.disconnect(look)
        webpy_socketio.use_session(None)


def test_event_named_star_is_refused_not_dispatched(caplog):
    # python-socketio would hand an event named "*" straight to the catch-all
    # handler without its name, shifting every argument by one
    with SocketIOTestClient() as client:
        assert client.emit("*", ["not", "a", "sid"]) is None
        assert client.connected
    assert "Traceback" not in caplog.text
    assert "'*' is a reserved event name" in caplog.text
