"""Channel history in one process (the in-memory store), through the real
engine and dispatcher with the in-process test client: positions on every
message, the subscribe ack, recovery with ``since`` and every reason it is
refused, bad ``since`` values, authorization on re-subscribe, the server
API. Real servers, Redis and browsers: tests/test_history_servers.py."""

from __future__ import annotations

import pytest

import webpy_socketio
from webpy_socketio import _history, broadcast_channel, engine, events, history, settings
from webpy_socketio.exceptions import ImproperlyConfigured
from webpy_socketio.testing import SocketIOTestClient

HISTORY = {"^room-": {"size": 5, "ttl": 600}, "^brief-": {"size": 100, "ttl": 0.2}}


@pytest.fixture(autouse=True)
def configured():
    engine.reset()
    _history.reset()
    webpy_socketio.configure(SOCKETIO_HISTORY=HISTORY)
    yield
    settings.reset()
    engine.reset()
    _history.reset()


@pytest.fixture
def relay():
    def relay(request, socket, context, message):
        socket.broadcast_channel(message)

    events.on_message(relay)
    yield relay
    events.on_message.disconnect(relay)


def positions(client: SocketIOTestClient) -> list[tuple[object, int]]:
    """(payload, offset) of each message received since the last call."""
    out = []
    for event in client.get_received():
        assert event["name"] == "message"
        payload, meta = event["args"]
        out.append((payload, meta[_history.POSITION_KEY]["offset"]))
    return out


def test_setting_is_checked():
    for bad in (
        ["^room-"],
        {"^room-": 5},
        {"(": {}},
        {"^a": {"size": 0}},
        {"^a": {"ttl": -1}},
        {"^a": {"size": 1, "keep": 2}},
    ):
        with pytest.raises(ImproperlyConfigured, match="SOCKETIO_HISTORY"):
            webpy_socketio.configure(SOCKETIO_HISTORY=bad)


def test_messages_carry_their_position_and_the_ack_the_channels(relay):
    alice, bob = SocketIOTestClient(), SocketIOTestClient()
    first = alice.subscribe("room-1")
    assert first["ok"] and first["offset"] == 0 and first["epoch"]
    assert bob.subscribe("room-1") == {"ok": True, "epoch": first["epoch"], "offset": 0}
    for n in range(3):
        alice.send({"n": n})
    assert positions(bob) == [({"n": 0}, 1), ({"n": 1}, 2), ({"n": 2}, 3)]
    assert positions(alice) == []  # broadcast_channel: others only
    # a channel without history is as before
    assert alice.subscribe("other") == {"ok": True}


def test_out_of_band_sends_are_numbered_too(relay):
    bob = SocketIOTestClient()
    bob.subscribe("room-1")
    SocketIOTestClient().send("warm-up")  # the server exists from here on
    broadcast_channel({"notice": 1}, "room-1")
    SocketIOTestClient().subscribe("room-1")
    broadcast_channel({"notice": 2}, "room-1")
    assert positions(bob) == [({"notice": 1}, 1), ({"notice": 2}, 2)]


def test_out_of_band_to_nobody_is_recorded_and_says_so(relay):
    from webpy_socketio import NoSocket

    ack = SocketIOTestClient().subscribe("room-2")  # gone again below
    SocketIOTestClient().send("warm-up")
    from webpy_socketio import clients

    for client in list(clients.CLIENTS.values()):
        client.socket.unsubscribe("room-2")
    with pytest.raises(NoSocket, match="in its history"):
        broadcast_channel({"notice": "while away"}, "room-2")
    back = SocketIOTestClient()
    assert back.subscribe("room-2", since=ack)["recovered"] is True
    assert positions(back) == [({"notice": "while away"}, 1)]


def test_resubscribe_with_since_replays_in_order_and_then_goes_on(relay):
    alice, bob = SocketIOTestClient(), SocketIOTestClient()
    alice.subscribe("room-1")
    ack = bob.subscribe("room-1")
    alice.send("a")
    since = {"epoch": ack["epoch"], "offset": 1}
    positions(bob)
    bob.disconnect()  # gone while three more are sent
    for text in ("b", "c", "d"):
        alice.send(text)
    back = SocketIOTestClient()
    reply = back.subscribe("room-1", since=since)
    assert reply == {"ok": True, "epoch": ack["epoch"], "offset": 4, "recovered": True}
    assert positions(back) == [("b", 2), ("c", 3), ("d", 4)]
    alice.send("e")
    assert positions(back) == [("e", 5)]


def test_nothing_missed_is_recovered_with_nothing(relay):
    bob = SocketIOTestClient()
    ack = bob.subscribe("room-1")
    again = SocketIOTestClient().subscribe("room-1", since={"epoch": ack["epoch"], "offset": 0})
    assert again["recovered"] is True


@pytest.mark.parametrize(
    ("since", "reason"),
    [
        ({"epoch": "another", "offset": 1}, _history.EPOCH_CHANGED),
        ({"offset": 0}, None),  # epoch filled in below: more missed than kept
        ({"offset": 99}, _history.AHEAD),
    ],
)
def test_recovery_refused_with_a_reason(relay, since, reason):
    alice = SocketIOTestClient()
    ack = alice.subscribe("room-1")
    for n in range(8):  # the history keeps 5
        alice.send(n)
    since = {"epoch": ack["epoch"], **since} if "epoch" not in since else since
    back = SocketIOTestClient()
    reply = back.subscribe("room-1", since=since)
    assert reply["ok"] and reply["recovered"] is False
    assert reply["reason"] == (reason or _history.GAP_TOO_LARGE)
    assert reply["offset"] == 8 and reply["epoch"] == ack["epoch"]
    assert positions(back) == []  # nothing replayed
    alice.send("next")
    assert positions(back) == [("next", 9)]


def test_recovery_after_the_ttl_is_refused(relay, monkeypatch):
    alice = SocketIOTestClient()
    ack = alice.subscribe("brief-1")
    alice.send("old")
    import time

    later = time.time() + 1
    monkeypatch.setattr(_history.time, "time", lambda: later)
    reply = SocketIOTestClient().subscribe("brief-1", since={"epoch": ack["epoch"], "offset": 0})
    # a whole ttl without a message: the history and its epoch are gone
    assert reply["recovered"] is False and reply["reason"] == _history.EPOCH_CHANGED


@pytest.mark.parametrize(
    "since",
    [
        5,
        "x",
        [],
        {"epoch": 1, "offset": 0},
        {"epoch": "", "offset": 0},
        {"epoch": "e", "offset": -1},
        {"epoch": "e", "offset": True},
        {"epoch": "e", "offset": 1.5},
        {"epoch": "e", "offset": 2**60},
        {"epoch": "e" * 65, "offset": 0},
        {"epoch": "e", "offset": 0, "sids": "abc"},
    ],
)
def test_bad_since_is_refused_and_joins_nothing(relay, since):
    client = SocketIOTestClient()
    reply = client.emit("wsio:subscribe", "room-1", {"since": since})
    assert reply["ok"] is False and "since" in reply["error"]
    assert client.emit("wsio:subscribe", "room-1", "not options")["ok"] is False
    SocketIOTestClient().send("hello")
    assert client.get_received() == []


def test_since_of_another_channel_gets_only_this_channels_messages(relay):
    alice = SocketIOTestClient()
    other = alice.subscribe("room-2")
    alice.subscribe("room-1")
    alice.emit("message", "only room-1", ack=False)
    back = SocketIOTestClient()
    reply = back.subscribe("room-1", since={"epoch": other["epoch"], "offset": 0})
    assert reply["recovered"] is False and reply["reason"] == _history.EPOCH_CHANGED
    assert positions(back) == []


def test_a_refused_resubscribe_gets_nothing_from_the_history(relay):
    allowed = {"yes": True}

    def gate(request, socket, context, channel):
        return allowed["yes"]

    events.on_subscribe(gate, channel="^room-")
    try:
        alice = SocketIOTestClient()
        ack = alice.subscribe("room-1")
        for n in range(3):
            alice.send(n)
        allowed["yes"] = False
        back = SocketIOTestClient()
        reply = back.subscribe("room-1", since={"epoch": ack["epoch"], "offset": 0})
        assert reply["ok"] is False
        assert back.get_received() == []
    finally:
        events.on_subscribe.disconnect(gate)


def test_a_client_does_not_get_its_own_messages_back(relay):
    alice, bob = SocketIOTestClient(), SocketIOTestClient()
    ack = alice.subscribe("room-1")
    bob.subscribe("room-1")
    alice.send("mine")
    bob.send("theirs")
    back = SocketIOTestClient()
    since = {"epoch": ack["epoch"], "offset": 0, "sids": [alice.sid]}
    assert back.subscribe("room-1", since=since)["recovered"] is True
    assert positions(back) == [("theirs", 2)]


def test_sender_included_gets_the_same_numbered_message():
    def echo(request, socket, context, message):
        socket.send_and_broadcast_channel(message, "room-1")

    events.on_message(echo)
    try:
        alice, bob = SocketIOTestClient(), SocketIOTestClient()
        alice.subscribe("room-1")
        bob.subscribe("room-1")
        alice.send("hi")
        assert positions(alice) == [("hi", 1)] and positions(bob) == [("hi", 1)]
        outsider = SocketIOTestClient()
        outsider.send("from outside")  # not subscribed: a plain copy
        assert outsider.get_messages() == ["from outside"]
    finally:
        events.on_message.disconnect(echo)


def test_server_api_history_and_subscribe_since(relay):
    alice = SocketIOTestClient()
    alice.subscribe("room-1")
    for n in range(7):
        alice.send(n)
    page = history("room-1", limit=3)
    assert [m["data"] for m in page.messages] == [4, 5, 6]
    assert page.offset == 7 and page.position == {"epoch": page.epoch, "offset": 7}
    assert [m["offset"] for m in history("room-1").messages] == [3, 4, 5, 6, 7]  # size 5
    after = history("room-1", since={"epoch": page.epoch, "offset": 5})
    assert after.recovered and [m["data"] for m in after.messages] == [5, 6]
    with pytest.raises(ValueError, match="no history"):
        history("plain-channel")
    with pytest.raises(ValueError, match="since"):
        history("room-1", since={"offset": "x"})
    # from the server side: a socket subscribed with since gets the replay
    from webpy_socketio import clients

    bob = SocketIOTestClient()
    position = clients.get(bob.sid).socket.subscribe(
        "room-1", since={"epoch": page.epoch, "offset": 6}
    )
    assert position["recovered"] is True and positions(bob) == [(6, 7)]


def test_history_survives_a_dump_and_load():
    store = _history.MemoryStore()
    rule = _history.policy("room-1")
    store.append("/", "room-1", rule, "message", ["a"], None)
    position, _ = store.append("/", "room-1", rule, "message", ["b"], "sid1")
    copy = _history.MemoryStore()
    copy.load(store.dump())
    recovery = copy.recover("/", "room-1", rule, _history.Position(position.epoch, 0))
    assert recovery.recovered and [(e.offset, e.args, e.skip) for e in recovery.entries] == [
        (1, ["a"], None),
        (2, ["b"], "sid1"),
    ]
