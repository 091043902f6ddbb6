"""Security: cross-site websocket and polling refused by default (also in
a real browser), allowed origins honoured behind a proxy, refused
subscriptions that never receive, no broadcasting into another channel,
session ids that cannot be guessed or borrowed, the message size limit,
and no way for a client to call the server's own connect and disconnect
handlers."""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from rawsio import (
    OP_CONT,
    OP_TEXT,
    Closed,
    PollSession,
    Refused,
    Stream,
    WsSession,
    read_response,
    ws_frame,
)
from relsupport import RelServer, leftovers, save

pytestmark = [pytest.mark.reliability, pytest.mark.server]

EVIL = "http://evil.example"
LIMIT = 20_000  # SOCKETIO_MAX_MESSAGE_BYTES in rel_settings.py


@pytest.fixture(scope="module")
def cors_server() -> Iterator[RelServer]:
    server = RelServer("cors", settings="rel_cors_settings")
    yield server
    server.stop()


def session_with(server: RelServer, transport: str, headers: dict[str, str]):
    cls = WsSession if transport == "websocket" else PollSession
    return cls(server.host, server.port, headers=headers)


def accepted(server: RelServer, transport: str, headers: dict[str, str]) -> bool:
    """Whether the server opens a session for a request with these headers."""
    try:
        session = session_with(server, transport, headers)
    except Refused as exc:
        assert exc.status == 400 and b"Not an accepted origin" in exc.body, exc
        return False
    session.connect()
    session.close()
    return True


TRANSPORTS = ["websocket", "polling"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cross_origin_refused_by_default(rel_server, transport):
    own = f"http://127.0.0.1:{rel_server.port}"
    assert accepted(rel_server, transport, {"Origin": own})
    assert accepted(rel_server, transport, {})  # not a browser: no Origin at all
    for origin in (EVIL, f"http://127.0.0.1:{rel_server.port + 1}", "null", own + ".evil.example"):
        assert not accepted(rel_server, transport, {"Origin": origin}), origin


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_same_origin_behind_a_tls_proxy(rel_server, transport):
    # nginx (wsio nginx-config) passes the browser's scheme and host on
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "chat.example.com"}
    assert accepted(rel_server, transport, {"Origin": "https://chat.example.com", **forwarded})
    assert not accepted(rel_server, transport, {"Origin": EVIL, **forwarded})
    assert not accepted(rel_server, transport, {"Origin": "http://chat.example.com", **forwarded})


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_allowed_origins_setting(cors_server, transport):
    assert accepted(cors_server, transport, {"Origin": "https://allowed.example"})
    assert not accepted(cors_server, transport, {"Origin": EVIL})
    assert not accepted(cors_server, transport, {"Origin": "https://allowed.example.evil"})
    # a list adds to "same origin": the server's own pages still connect
    own = f"http://127.0.0.1:{cors_server.port}"
    assert accepted(cors_server, transport, {"Origin": own})
    # behind a proxy: the listed origin still passes, and the proxy's
    # forwarded host makes no other site acceptable
    for host in ("allowed.example", "chat.example.com"):
        forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": host}
        assert accepted(cors_server, transport, {"Origin": "https://allowed.example", **forwarded})
        assert not accepted(cors_server, transport, {"Origin": "https://evil.example", **forwarded})


@pytest.mark.browser
def test_cross_site_page_cannot_connect_in_a_real_browser(rel_server, cors_server):
    # the attack itself: a page on another origin opens a socket to the
    # server with the visitor's browser; the browser sends the page's Origin
    from browser import chromium

    outcomes = {}
    with chromium() as browser:
        page = browser.new_page()
        for label, host, target in [
            ("same-site", rel_server, rel_server),
            ("cross-site", cors_server, rel_server),
        ]:
            for transport in TRANSPORTS:
                page.goto(f"{host.url}/page?target={target.url}&transport={transport}")
                page.wait_for_function("window.result !== null", timeout=10_000)
                outcomes[f"{label} {transport}"] = page.evaluate("window.result")
                page.evaluate("socket.disconnect()")  # not left for the heartbeat
    save("cswsh-browser", outcomes)
    for transport in TRANSPORTS:
        assert outcomes[f"same-site {transport}"]["connected"], outcomes
        assert not outcomes[f"cross-site {transport}"]["connected"], outcomes


def test_refused_subscription_never_receives(rel_server):
    member = WsSession(rel_server.host, rel_server.port)
    member.connect()
    intruder = WsSession(rel_server.host, rel_server.port)
    intruder.connect()
    channel = "forbidden-vault"
    assert member.call("message", {"op": "join", "channel": channel}) == [{"joined": channel}]
    sent = 0
    stop = threading.Event()

    def flood() -> None:
        nonlocal sent
        while not stop.is_set() and sent < 400:
            assert rel_server.get_json(f"/oob/channel/{channel}") == {"sent": True}
            sent += 1

    sender = threading.Thread(target=flood)
    sender.start()
    try:
        # refused over and over while the channel is busy: the dispatcher
        # joins a socket only after every handler agreed, never before
        refusals = [intruder.call("wsio:subscribe", channel) for _ in range(200)]
        refusals += [intruder.call("wsio:subscribe", "denied-vault") for _ in range(20)]
    finally:
        stop.set()
        sender.join(30)
    assert all(r[0]["ok"] is False for r in refusals), refusals[:3]
    probe = intruder.call("message", {"op": "whoami"})[0]
    assert probe["channels"] == []
    assert not [e for e in intruder.inbox.events if "oob" in str(e)], intruder.inbox.events[:3]
    member.pump(lambda: len([e for e in member.inbox.events if "oob" in str(e)]) >= sent, 10)
    member.close()
    intruder.close()


def test_client_cannot_send_into_a_channel_it_is_not_in(rel_server):
    # the wire protocol has no "send to channel X": a client only sends
    # messages and events, and handlers decide; a channel-bound handler and
    # broadcast_channel() without a channel reach the sender's own channels
    listener = WsSession(rel_server.host, rel_server.port)
    listener.connect()
    assert listener.call("wsio:subscribe", "room-private") == [{"ok": True}]
    outsider = WsSession(rel_server.host, rel_server.port)
    outsider.connect()
    assert outsider.call("wsio:subscribe", "room-other") == [{"ok": True}]
    tries = [
        ("message", {"op": "relay", "data": "x", "channel": "room-private"}),
        ("message", {"op": "relay", "data": "x", "room": "room-private"}),
        ("wsio:broadcast", "room-private", "x"),
        ("wsio:subscribe", "#room-private"),  # a different channel: "##room-private"
        ("room-private", "x"),
        ("#room-private", "x"),
    ]
    for event, *args in tries:
        outsider.call(event, *args)
    outsider.send_packet('42["message",{"op":"relay","data":"y"}]')
    assert outsider.call("message", {"op": "probe", "n": 1}) == [{"probe": 1}]
    # a namespace, not a room, and one it has not connected: the connection
    # is closed (strict, as Node socket.io)
    outsider.send_packet('42/#room-private,["message","x"]')
    with pytest.raises(Closed):
        outsider.call("message", {"op": "probe", "n": 3})
    assert listener.call("message", {"op": "probe", "n": 2}) == [{"probe": 2}]
    assert listener.inbox.events == [], listener.inbox.events
    listener.close()
    outsider.close("fin")


def test_reserved_event_names_do_not_reach_the_servers_handlers(rel_server):
    # python-socketio registers its connect and disconnect handlers beside
    # the events: a client could call them. "connect" re-ran on_connect with
    # an environ of the client's making (and replaced the registry entry);
    # "disconnect" ran on_disconnect and dropped the socket from the
    # registry while it stayed connected and subscribed
    session = WsSession(rel_server.host, rel_server.port, query={"name": "honest"})
    sid = session.connect()
    assert session.call("wsio:subscribe", "room-kept") == [{"ok": True}]
    before = rel_server.registry()["counts"]
    forged = {"REMOTE_ADDR": "10.6.6.6", "QUERY_STRING": "name=forged"}
    session.send_packet('42["connect",' + json.dumps(forged) + "]")
    session.send_packet('42["disconnect","client namespace disconnect"]')
    session.send_packet('42["disconnecting"]')
    session.send_packet('42["connect_error",{}]')
    me = session.call("message", {"op": "whoami"})[0]
    assert me == {
        "sid": sid,
        "remote_addr": "127.0.0.1",
        "name": "honest",
        "channels": ["room-kept"],
    }
    after = rel_server.registry()["counts"]
    for event in ("connect", "disconnect", "finish", "unsubscribe"):
        assert after.get(event, 0) == before.get(event, 0), (event, before, after)
    session.close()


def test_session_ids_are_not_guessable(rel_server):
    ids = []
    for _ in range(1500):
        session = WsSession(rel_server.host, rel_server.port)
        ids.append(session.eio_sid)
        ids.append(session.connect())
        session.close("reset")
    assert len(set(ids)) == len(ids)
    assert {len(i) for i in ids} == {20}
    # python-engineio: 12 bytes from the secrets module, then a 3-byte
    # counter (for uniqueness); the first 16 characters carry the 96 random
    # bits. Each of them must look uniform over the 64 symbols.
    positions = []
    for pos in range(16):
        counts = Counter(i[pos] for i in ids)
        total = len(ids)
        entropy = -sum(n / total * math.log2(n / total) for n in counts.values())
        expected = total / 64
        chi2 = sum((counts.get(c, 0) - expected) ** 2 / expected for c in ALPHABET)
        positions.append({"entropy_bits": round(entropy, 3), "chi2": round(chi2, 1)})
    # consecutive ids share no structure: they differ in nearly every position
    differing = [
        sum(a != b for a, b in zip(x[:16], y[:16], strict=True))
        for x, y in zip(ids, ids[1:], strict=False)
    ]
    save(
        "session-ids",
        {
            "ids": len(ids),
            "random_bits_estimated": round(sum(p["entropy_bits"] for p in positions), 1),
            "positions": positions,
            "mean_differing_positions": round(sum(differing) / len(differing), 2),
        },
    )
    # 63 degrees of freedom: chi2 above 130 happens by chance less than once
    # in a million; 3000 samples estimate 6 bits as about 5.99
    assert all(p["chi2"] < 130 for p in positions), positions
    assert sum(p["entropy_bits"] for p in positions) > 94
    assert sum(differing) / len(differing) > 15


ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def test_another_clients_id_cannot_be_used_to_read_its_messages(rel_server):
    victim_ws = WsSession(rel_server.host, rel_server.port)
    ws_sid = victim_ws.connect()
    victim_poll = PollSession(rel_server.host, rel_server.port)
    poll_sid = victim_poll.connect()
    host, port = rel_server.host, rel_server.port

    def poll_with(sid: str) -> int:
        stream = Stream(host, port)
        try:
            stream.send(
                f"GET /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n"
                f"Host: {host}\r\n\r\n".encode()
            )
            return read_response(stream, time.monotonic() + 5).status
        finally:
            stream.close()

    # the ids handlers and other clients may see (socket.id) are Socket.IO
    # ids; Engine.IO sessions are keyed by other ids, never shown
    for visible in (ws_sid, poll_sid):
        assert poll_with(visible) == 400
        with pytest.raises(Refused):
            WsSession(host, port, query={"sid": visible})
    # a websocket session cannot be read over polling, even with its own id
    assert poll_with(victim_ws.eio_sid) == 400
    # a channel named like the victim's id is just a channel ("#" + id)
    thief = WsSession(host, port)
    thief.connect()
    for name in (ws_sid, poll_sid):
        assert thief.call("wsio:subscribe", name) == [{"ok": True}]
    for sid in (ws_sid, poll_sid):
        assert rel_server.get_json(f"/oob/send/{sid}") == {"sent": True}
    victim_ws.pump(lambda: any("oob" in str(e) for e in victim_ws.inbox.events), 5)
    victim_poll.pump(lambda: any("oob" in str(e) for e in victim_poll.inbox.events), 5)
    assert thief.call("message", {"op": "probe", "n": 0}) == [{"probe": 0}]
    assert not [e for e in thief.inbox.events if "oob" in str(e)]
    for session in (victim_ws, victim_poll, thief):
        session.close()


def test_message_size_limit(rel_server):
    listener = WsSession(rel_server.host, rel_server.port)
    listener.connect()
    assert listener.call("wsio:subscribe", "room-size") == [{"ok": True}]

    def relay_of(size: int) -> str:
        # a packet of exactly ``size`` bytes on the wire
        head = '42["message",{"op":"relay","data":"'
        tail = '"}]'
        return head + "x" * (size - len(head) - len(tail)) + tail

    sender = WsSession(rel_server.host, rel_server.port)
    sender.connect()
    assert sender.call("wsio:subscribe", "room-size") == [{"ok": True}]
    sender.send_packet(relay_of(LIMIT))  # at the limit: delivered
    listener.pump(lambda: len(listener.inbox.events) == 1, 5)
    sender.send_packet(relay_of(LIMIT + 1))  # one byte more: the connection closes
    with pytest.raises(Closed) as closed:
        sender.pump(lambda: False, 5)
    assert closed.value.code == 1009
    # the same split into fragments, and a header that announces 1 TB
    for frames in (
        ws_frame(OP_TEXT, relay_of(LIMIT + 1)[:9000].encode(), fin=False)
        + ws_frame(OP_CONT, relay_of(LIMIT + 1)[9000:].encode()),
        ws_frame(OP_TEXT, b"", length=10**12),
    ):
        rss = rel_server.rss_kb()
        attacker = WsSession(rel_server.host, rel_server.port)
        attacker.connect()
        assert attacker.call("wsio:subscribe", "room-size") == [{"ok": True}]
        start = time.monotonic()
        attacker.send_raw(frames)
        with pytest.raises(Closed) as closed:
            attacker.pump(lambda: False, 5)
        assert closed.value.code == 1009 and time.monotonic() - start < 2
        assert rel_server.rss_kb() < rss + 2048  # nothing of it was buffered
    # long-polling: the body length is checked before the body is read
    poller = PollSession(rel_server.host, rel_server.port)
    poller.connect()
    assert poller.post(relay_of(LIMIT + 1).encode()).status == 400
    assert listener.call("message", {"op": "probe", "n": 0}) == [{"probe": 0}]
    # of all those, only the message at the limit arrived
    assert [len(e[1]) for e in listener.inbox.events] == [len(relay_of(LIMIT)) - 38]
    listener.close()
    reading = rel_server.wait_idle(15)
    assert not leftovers(reading), reading["eio_states"]
