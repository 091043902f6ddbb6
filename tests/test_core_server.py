"""The core API against a real SocketIOServer, driven by the official
socket.io-client in Node, over websocket and over long-polling."""

from __future__ import annotations

import itertools
import re
import time

import pytest
from support import AppServer, NodeAgent, wait_until

pytestmark = [pytest.mark.server, pytest.mark.node]


@pytest.fixture(scope="module")
def basic_server(engine_path):
    """tests/apps/basic_app.py on the engine path under test (both run)."""
    server = AppServer("basic_app.py", f"basic-{engine_path}", {"WSIO_TEST_PATH": engine_path})
    yield server
    server.stop()


TRANSPORTS = ["websocket", "polling"]
_names = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}{next(_names)}-{time.monotonic_ns()}"


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def connect(agent: NodeAgent, server: AppServer, transport: str, *names: str) -> list[str]:
    """Connect one client per name; return their session ids."""
    ids = []
    for name in names:
        result = agent.connect(name, server.url, transport, query={"name": name})
        assert result["transport"] == transport
        ids.append(result["id"])
    return ids


def barrier(agent: NodeAgent, server: AppServer, *clients: str) -> None:
    """Wait until every client got an out-of-band broadcast sent now. The
    server writes to each socket in order, so anything sent to a client
    before this call has arrived once the barrier message has."""
    assert server.get("/oob/broadcast")[0] == 200
    for client in clients:
        agent.wait_for(client, lambda m: m == {"oob": "broadcast"})


def test_connect_and_session_id_matches_browser(basic_server, agent, transport):
    (sid,) = connect(agent, basic_server, transport, "a")
    reply = agent.call("send", "a", data={"op": "whoami"})
    assert reply == {"session_id": sid, "same": sid}
    assert agent.call("transport", "a") == transport


def test_default_mode_upgrades_to_websocket(basic_server, agent):
    agent.connect("a", basic_server.url, "default")
    assert wait_until(lambda: agent.call("transport", "a") == "websocket", timeout=5)
    assert agent.call("send", "a", data="still here") == {"echo": "still here"}


def test_subscribe_and_unsubscribe_acks(basic_server, agent, transport):
    connect(agent, basic_server, transport, "a")
    room = unique("room-")
    assert agent.call("subscribe", "a", channel=room) == {"ok": True}
    assert agent.call("subscribe", "a", channel=room) == {"ok": True}  # idempotent
    assert agent.call("channels", "a") == [room]
    assert agent.call("send", "a", data={"op": "channels"}) == {"channels": [room]}
    assert agent.call("unsubscribe", "a", channel=room) == {"ok": True}
    assert agent.call("unsubscribe", "a", channel=room) == {"ok": False, "error": "not subscribed"}
    assert agent.call("send", "a", data={"op": "channels"}) == {"channels": []}
    log = basic_server.stats()["log"]
    assert ["subscribe", "a", room] in log and ["unsubscribe", "a", room] in log


@pytest.mark.parametrize(
    ("channel", "error"),
    [
        ("", "channel must not be empty"),
        ("x" * 201, "channel is longer than 200 characters"),
        ("bad\nname", "channel must not contain control characters"),
        (42, "channel must be a string, not int"),
        (None, "channel must be a string, not NoneType"),
    ],
)
def test_bad_channel_names_get_a_refused_ack(basic_server, agent, channel, error):
    connect(agent, basic_server, "websocket", "a")
    assert agent.call("subscribe", "a", channel=channel) == {"ok": False, "error": error}
    # the connection is fine afterwards
    assert agent.call("send", "a", data="ping") == {"echo": "ping"}


def test_broadcast_channel_reaches_other_subscribers_only(basic_server, agent, transport):
    connect(agent, basic_server, transport, "a", "b", "c")
    room, other = unique("room-"), unique("room-")
    for client in ("a", "b"):
        assert agent.call("subscribe", client, channel=room) == {"ok": True}
    assert agent.call("subscribe", "c", channel=other) == {"ok": True}
    agent.call("send", "a", data={"op": "broadcast_channel", "data": {"text": "hello"}})
    agent.wait_for("b", lambda m: m == {"text": "hello"})
    barrier(agent, basic_server, "a", "b", "c")
    assert {"text": "hello"} not in agent.received("a")
    assert {"text": "hello"} not in agent.received("c")


def test_broadcast_channel_to_named_channel_and_each_recipient_once(basic_server, agent, transport):
    connect(agent, basic_server, transport, "a", "b")
    one, two = unique("room-"), unique("room-")
    for client in ("a", "b"):
        for room in (one, two):
            assert agent.call("subscribe", client, channel=room) == {"ok": True}
    # no channel: every channel of the sender, but b gets the message once
    agent.call("send", "a", data={"op": "broadcast_channel", "data": "both"})
    agent.call("send", "a", data={"op": "broadcast_channel", "data": "just-two", "channel": two})
    barrier(agent, basic_server, "b")
    assert agent.received("b").count("both") == 1
    assert agent.received("b").count("just-two") == 1


def test_send_and_broadcast_channel_includes_sender(basic_server, agent, transport):
    connect(agent, basic_server, transport, "a", "b", "c")
    room = unique("room-")
    for client in ("a", "b"):
        agent.call("subscribe", client, channel=room)
    agent.call("send", "a", data={"op": "send_and_broadcast_channel", "data": "all of us"})
    agent.wait_for("a", lambda m: m == "all of us")
    agent.wait_for("b", lambda m: m == "all of us")
    barrier(agent, basic_server, "c")
    assert "all of us" not in agent.received("c")


def test_broadcast_and_send_and_broadcast(basic_server, agent, transport):
    connect(agent, basic_server, transport, "a", "b")
    agent.call("send", "a", data={"op": "broadcast", "data": "to others"})
    agent.wait_for("b", lambda m: m == "to others")
    agent.call("send", "a", data={"op": "send_and_broadcast", "data": "to everyone"})
    agent.wait_for("a", lambda m: m == "to everyone")
    agent.wait_for("b", lambda m: m == "to everyone")
    barrier(agent, basic_server, "a")
    assert "to others" not in agent.received("a")


def test_regex_bound_handlers_fire_only_where_they_match(basic_server, agent, transport):
    connect(agent, basic_server, transport, "inroom", "inlobby", "nowhere")
    agent.call("subscribe", "inroom", channel=unique("room-"))
    agent.call("subscribe", "inlobby", channel="lobby")
    agent.call("subscribe", "nowhere", channel=unique("roomless-"))
    for client in ("inroom", "inlobby", "nowhere"):
        agent.call("send", client, data={"op": "bound"})
    agent.wait_for("inroom", lambda m: isinstance(m, dict) and m.get("bound") == "room")
    agent.wait_for("inlobby", lambda m: m == {"bound": "lobby"})
    barrier(agent, basic_server, "inroom", "inlobby", "nowhere")
    bound = [m for m in agent.received("inroom") if isinstance(m, dict) and "bound" in m]
    assert [m["bound"] for m in bound] == ["room"]
    assert [m for m in agent.received("inlobby") if isinstance(m, dict) and "bound" in m] == [
        {"bound": "lobby"}
    ]
    assert not [m for m in agent.received("nowhere") if isinstance(m, dict) and "bound" in m]


def test_bound_subscribe_handler_matches_the_channel_being_subscribed(basic_server, agent):
    connect(agent, basic_server, "websocket", "a")
    # ^private- is refused by a bound handler, other names are not
    assert agent.call("subscribe", "a", channel="private-" + unique("x")) == {
        "ok": False,
        "error": "private channel",
    }
    assert agent.call("subscribe", "a", channel="public-" + unique("x")) == {"ok": True}


def test_named_event_returns_the_ack(basic_server, agent, transport):
    connect(agent, basic_server, transport, "a")
    assert agent.call("emit", "a", event="shout", args=["quiet"]) == "QUIET"
    # an event nobody handles is acked with nothing
    assert agent.call("emit", "a", event="nobody-listens", args=[1]) is None
    assert agent.call("emit", "a", event="wsio:bogus", args=[]) == {
        "ok": False,
        "error": "unknown request 'wsio:bogus'",
    }


def test_out_of_band_sends_from_a_web_handler(basic_server, agent, transport):
    sid_a, _ = connect(agent, basic_server, transport, "a", "b")
    room = unique("room-")
    agent.call("subscribe", "a", channel=room)
    assert basic_server.get(f"/oob/channel/{room}") == (200, {"sent": True})
    agent.wait_for("a", lambda m: m == {"oob": "channel", "channel": room})
    assert basic_server.get(f"/oob/send/{sid_a}") == (200, {"sent": True})
    agent.wait_for("a", lambda m: m == {"oob": "send"})
    assert basic_server.get("/oob/broadcast") == (200, {"sent": True})
    agent.wait_for("a", lambda m: m == {"oob": "broadcast"})
    agent.wait_for("b", lambda m: m == {"oob": "broadcast"})
    assert {"oob": "channel", "channel": room} not in agent.received("b")
    assert {"oob": "send"} not in agent.received("b")


def test_no_socket(basic_server):
    status, body = basic_server.get("/oob/send/not-a-session")
    assert status == 404
    assert body == {"nosocket": "There is no socket with session id 'not-a-session'."}
    status, body = basic_server.get("/oob/channel/" + unique("empty-"))
    assert status == 404 and "There are no sockets subscribed to channel" in body["nosocket"]


def test_handler_error_calls_on_error_and_connection_survives(basic_server, agent, transport):
    connect(agent, basic_server, transport, "a")
    agent.call("send", "a", data={"op": "raise"})
    agent.wait_for("a", lambda m: m == {"error": "RuntimeError('handler failed on purpose')"})
    assert agent.call("send", "a", data="after") == {"echo": "after"}
    # a raising on_subscribe handler refuses (closed by default) and says nothing more
    assert agent.call("subscribe", "a", channel="broken-" + unique("x")) == {
        "ok": False,
        "error": "server error",
    }
    assert agent.call("send", "a", data="still") == {"echo": "still"}
    output = basic_server.output()
    assert "on_message handler basic_app.message raised" in output
    assert 'raise RuntimeError("handler failed on purpose")' in output  # the traceback


def test_disconnect_fires_events_and_leaves_every_channel(basic_server, agent, transport):
    name = unique("leaver")
    result = agent.connect(name, basic_server.url, transport, query={"name": name})
    sid = result["id"]
    rooms = [unique("room-"), unique("room-")]
    for room in rooms:
        agent.call("subscribe", name, channel=room)
    stats = basic_server.stats()
    assert sid in stats["clients"]
    assert all(sid in stats["channel_rooms"]["#" + room] for room in rooms)
    agent.call("disconnect", name)

    def finished():
        log = basic_server.stats()["log"]
        return [entry for entry in log if entry[1] == name and entry[0] != "connect"]

    events = wait_until(lambda: len(finished()) >= 5 and finished(), timeout=5)
    assert events[0] == ["subscribe", name, rooms[0]]
    assert events[2] == ["disconnect", name, "client disconnect"]
    assert sorted(e[2] for e in events[3:5]) == sorted(rooms)
    assert all(e[0] == "unsubscribe" for e in events[3:5])
    assert events[5:] == [["finish", name]]
    stats = basic_server.stats()
    assert sid not in stats["clients"]
    assert not any(sid in members for members in stats["channel_rooms"].values())


def test_message_log_line_in_default_format(basic_server, agent, transport):
    connect(agent, basic_server, transport, "a")
    marker = unique("logged-")
    agent.call("send", "a", data={"text": marker})
    pattern = (
        r'127\.0\.0\.1 - - \[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] "Socket\.IO message: '
        r'\{"text":"' + re.escape(marker) + r'"\}"'
    )
    assert wait_until(lambda: re.search(pattern, basic_server.output()), timeout=3)


def test_cross_origin_refused_by_default(basic_server, agent, transport):
    ok, error = agent.try_call(
        "connect",
        "evil",
        url=basic_server.url,
        options={"transports": [transport], "extraHeaders": {"Origin": "http://evil.example"}},
    )
    assert not ok
    assert "connect_error" in error
    same = {"Origin": basic_server.url}
    result = agent.connect("same", basic_server.url, transport, extraHeaders=same)
    assert result["transport"] == transport


def test_refused_connection(basic_server, agent, transport):
    ok, error = agent.try_call(
        "connect",
        "x",
        url=basic_server.url,
        options={"transports": [transport], "query": {"refuse": "1"}},
    )
    assert not ok and "go away" in error


def test_refused_subscription_never_receives_channel_messages(basic_server, agent, transport):
    connect(agent, basic_server, transport, "member", "outsider")
    # 'forbidden' is refused for everybody by an on_subscribe returning False
    assert agent.call("subscribe", "outsider", channel="forbidden") == {
        "ok": False,
        "error": "subscription refused",
    }
    private = "private-" + unique("x")
    assert agent.call("subscribe", "outsider", channel=private)["ok"] is False
    # the server subscribes member itself (no handler runs for server-side subscriptions)
    agent.call("send", "member", data={"op": "server_subscribe", "channel": private})
    assert basic_server.get(f"/oob/channel/{private}") == (200, {"sent": True})
    agent.wait_for("member", lambda m: m == {"oob": "channel", "channel": private})
    barrier(agent, basic_server, "outsider")
    assert all(
        not (isinstance(m, dict) and m.get("channel") == private)
        for m in agent.received("outsider")
    )
    assert agent.call("channels", "outsider") == []


@pytest.fixture(scope="module")
def custom_server():
    """A server whose settings module changes the log format, the allowed
    origins and the channel limit (tests/apps/custom_settings.py)."""
    server = AppServer("basic_app.py", "custom", env={"WSIO_SETTINGS_MODULE": "custom_settings"})
    yield server
    server.stop()


class TestCustomSettings:
    @pytest.fixture
    def server(self, custom_server):
        return custom_server

    def test_custom_log_format(self, server, agent, transport):
        agent.connect("a", server.url, transport, extraHeaders={"X-Test": "hdr"})
        marker = unique("m")
        agent.call("send", "a", data=marker)
        line = f'MSG 127.0.0.1 hdr - "{marker}"'
        assert wait_until(lambda: line in server.output(), timeout=3), server.output()[-2000:]

    def test_allowed_origin(self, server, agent, transport):
        allowed = {"Origin": "http://allowed.example"}
        assert agent.connect("a", server.url, transport, extraHeaders=allowed)["transport"]
        ok, _ = agent.try_call(
            "connect",
            "b",
            url=server.url,
            options={"transports": [transport], "extraHeaders": {"Origin": "http://evil.example"}},
        )
        assert not ok

    def test_channel_limit(self, server, agent):
        agent.connect("a", server.url, "websocket")
        for i in range(3):
            assert agent.call("subscribe", "a", channel=f"c{i}") == {"ok": True}
        assert agent.call("subscribe", "a", channel="c3") == {
            "ok": False,
            "error": "too many channels (at most 3 per socket)",
        }
