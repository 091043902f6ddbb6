"""Engine.IO protocol v4 conformance, from the specification
(socketio/engine.io-protocol, README.md), checked with raw HTTP and raw
websocket clients against a real server process.

Each test is one rule of the specification, quoted in its docstring. The
server is tests/apps/conformance_app.py with conformance_settings: the
configuration the protocol authors give for their test suite
(pingInterval 300 ms, pingTimeout 200 ms, maxPayload 1,000,000), once per
code path (``fast`` and ``stock``). The server speaks Socket.IO on top, so
where a rule needs messages to flow the payloads are Socket.IO packets that
the conformance app echoes.

With a 200 ms ping timeout a long-polling session dies half a second after
it was opened unless it answers the first ping. The tests that drive the
requests by hand do it in that window and, when a ping gets in the way of
what they check (:class:`Race`), start again with a new session; the other
tests use clients whose reader threads answer pings at once.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from rawclient import (
    DEADLINE,
    HOST,
    RECORD_SEP,
    Closed,
    Pending,
    PollClient,
    Race,
    Stream,
    Timeout,
    WsClient,
    client,
    decode_payload,
    encode_payload,
    get,
    http_request,
    open_polling,
    parse_sio,
    post,
    read_response,
    read_ws_frame,
    request,
    retry_races,
    session_query,
    sio_connect,
    target,
    ws_handshake,
)

pytestmark = [pytest.mark.server, pytest.mark.timeout(60)]

PING_INTERVAL_MS = 300
PING_TIMEOUT_MS = 200
MAX_PAYLOAD = 1_000_000
OPEN_KEYS = {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
TRANSPORTS = ["polling", "websocket"]


@pytest.fixture
def port(conformance_server: Any) -> int:
    return int(conformance_server.port)


def open_info(port: int, transport: str) -> dict[str, Any]:
    if transport == "polling":
        return open_polling(port)[1]
    with WsClient(port) as ws:
        return ws.open_info


def poll(port: int, sid: str) -> tuple[int, list[str | bytes], bool]:
    """One GET: its status, its packets other than pings, and whether it
    carried a ping (answered at once with a POST of ``3``)."""
    response = get(port, sid)
    if response.status != 200:
        return response.status, [], False
    packets = decode_payload(response.body)
    pinged = "2" in packets
    if pinged:
        post(port, sid, "3")
    return 200, [p for p in packets if p != "2"], pinged


def drain(port: int, sid: str, until: Callable[[list[str | bytes]], bool]) -> list[str | bytes]:
    """GET until the packets received satisfy ``until``."""
    got: list[str | bytes] = []
    deadline = time.monotonic() + DEADLINE
    while not until(got):
        assert time.monotonic() < deadline, f"the server sent only {got!r}"
        status, packets, _ = poll(port, sid)
        assert status == 200, f"a poll was answered {status} after {got!r}"
        got += packets
    return got


def connect_polling(port: int) -> str:
    """A long-polling session joined to the main namespace, its CONNECT
    packet and the app's "auth" event read; the Engine.IO sid."""
    sid, _ = open_polling(port)
    assert post(port, sid, "40").status == 200
    drain(port, sid, lambda got: {str(p)[:2] for p in got} >= {"40", "42"})
    return sid


def echo(text: str) -> str:
    return "42" + json.dumps(["message", text], separators=(",", ":"))


def echoed(pkt: str | bytes) -> Any:
    """The argument of a ``message-back`` event, else None."""
    if not (isinstance(pkt, str) and pkt.startswith("42")):
        return None
    data = parse_sio(pkt).data
    return data[1] if data[:1] == ["message-back"] and len(data) == 2 else None


def is_ack(pkt: str | bytes, ack_id: int) -> bool:
    return isinstance(pkt, str) and pkt.startswith("43") and parse_sio(pkt).id == ack_id


def is_refused_websocket(port: int, query: str | dict[str, str]) -> tuple[bool, str]:
    """Whether a websocket with this query is refused: an HTTP error to the
    handshake, or a 101 followed by a close before any Engine.IO packet."""
    stream, response = ws_handshake(port, query)
    try:
        if response.status != 101:
            return response.status >= 400, f"HTTP {response.status}"
        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                _, opcode, payload = read_ws_frame(stream, deadline)
            except Closed:
                return True, "closed"
            if opcode == 0x8:
                return True, "close frame"
            if opcode in (0x1, 0x2):
                return False, f"accepted, sent {payload[:80]!r}"
    finally:
        stream.close()


# -- handshake -----------------------------------------------------------------------


def test_polling_handshake_answers_open_packet(port):
    """If the server accepts the connection, then it MUST respond with an
    `open` packet with the following JSON-encoded payload (sid, upgrades,
    pingInterval, pingTimeout, maxPayload)."""
    response = request(port, "GET", {"EIO": "4", "transport": "polling"})
    assert response.status == 200
    packets = decode_payload(response.body)
    assert isinstance(packets[0], str) and packets[0].startswith("0"), packets
    info = json.loads(packets[0][1:])
    assert set(info) == OPEN_KEYS
    assert isinstance(info["sid"], str) and info["sid"]


def test_polling_handshake_offers_websocket_upgrade(port):
    """`upgrades`: The list of available transport upgrades (over HTTP
    long-polling: ["websocket"])."""
    assert open_polling(port)[1]["upgrades"] == ["websocket"]


def test_websocket_handshake_answers_open_packet(port):
    """If the server accepts the connection, then it MUST respond with an
    `open` packet (WebSocket-only session: HTTP 101, then the packet)."""
    with WsClient(port) as ws:
        assert set(ws.open_info) == OPEN_KEYS
        assert isinstance(ws.open_info["sid"], str) and ws.open_info["sid"]


def test_websocket_handshake_offers_no_upgrade(port):
    """`upgrades`: The list of available transport upgrades (none from a
    websocket: [])."""
    with WsClient(port) as ws:
        assert ws.open_info["upgrades"] == []


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_open_packet_heartbeat_in_milliseconds(port, transport):
    """`pingInterval` / `pingTimeout`: The ping interval / timeout, used in
    the heartbeat mechanism (in milliseconds): 0.3 s and 0.2 s are 300 and
    200, not truncated to whole seconds."""
    info = open_info(port, transport)
    for key, expected in (("pingInterval", PING_INTERVAL_MS), ("pingTimeout", PING_TIMEOUT_MS)):
        assert isinstance(info[key], int | float) and not isinstance(info[key], bool)
        assert info[key] == expected, f"{key} is {info[key]!r}, expected {expected}"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_open_packet_max_payload(port, transport):
    """`maxPayload`: The maximum number of bytes per chunk, used by the
    client to aggregate packets into payloads."""
    assert open_info(port, transport)["maxPayload"] == MAX_PAYLOAD


# -- query parameters -----------------------------------------------------------------


def test_missing_eio_is_400(port):
    """If a mandatory query parameter is missing, then the server MUST
    respond with an HTTP 400 error status (EIO is mandatory)."""
    assert request(port, "GET", {"transport": "polling"}).status == 400


@pytest.mark.parametrize("eio", ["abc", "3", "5", ""])
def test_bad_eio_is_400(port, eio):
    """`EIO`: `4`, Mandatory, the version of the protocol (any other value
    is refused with 400, as the protocol's test suite checks)."""
    assert request(port, "GET", {"EIO": eio, "transport": "polling"}).status == 400


def test_missing_transport_is_400(port):
    """If a mandatory query parameter is missing, then the server MUST
    respond with an HTTP 400 error status (transport is mandatory: a GET
    without it is not served as polling)."""
    assert request(port, "GET", {"EIO": "4"}).status == 400


@pytest.mark.parametrize("transport", ["abc", "flashsocket", ""])
def test_unknown_transport_is_400(port, transport):
    """`transport`: Mandatory, the name of the transport (an unknown one is
    refused with 400, as the protocol's test suite checks)."""
    assert request(port, "GET", {"EIO": "4", "transport": transport}).status == 400


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("missing", ["EIO", "transport"])
def test_missing_parameter_in_session_request_is_400(port, method, missing):
    """If a mandatory query parameter is missing, then the server MUST
    respond with an HTTP 400 error status (EIO and transport stay
    mandatory once the session is established)."""
    sid, _ = open_polling(port)
    query = {k: v for k, v in session_query(sid).items() if k != missing}
    body = b"40" if method == "POST" else b""
    assert request(port, method, query, body).status == 400


@pytest.mark.parametrize(
    "query",
    ["transport=websocket", "EIO=abc&transport=websocket", "EIO=4", "EIO=4&transport=abc"],
    ids=["no-EIO", "bad-EIO", "no-transport", "bad-transport"],
)
def test_websocket_missing_or_bad_parameter_is_closed(port, query):
    """If a mandatory query parameter is missing, then the server MUST
    close the WebSocket connection (refusing the handshake does that too)."""
    refused, how = is_refused_websocket(port, query)
    assert refused, f"a websocket with {query!r} was {how}"


# -- methods --------------------------------------------------------------------------


def test_handshake_with_post_is_400(port):
    """To establish a connection, the client MUST send an HTTP `GET`
    request (a POST without a session is refused with 400, as the
    protocol's test suite checks)."""
    assert request(port, "POST", {"EIO": "4", "transport": "polling"}, b"40").status == 400


@pytest.mark.parametrize("with_session", [False, True], ids=["handshake", "session"])
@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_are_400(port, method, with_session):
    """HTTP long-polling consists of `GET` requests, for receiving data, and
    `POST` requests, for sending data (the protocol's test suite expects 400
    for PUT; python-engineio answered 405)."""
    query = session_query(open_polling(port)[0]) if with_session else "EIO=4&transport=polling"
    assert request(port, method, query, b"40").status == 400


def test_options_preflight_is_answered(port):
    """(Not a rule of the protocol: with SOCKETIO_CORS_ALLOWED_ORIGINS = "*"
    a browser's CORS preflight is allowed, so refusing other methods must
    not refuse OPTIONS.)"""
    sid, _ = open_polling(port)
    response = request(
        port,
        "OPTIONS",
        session_query(sid),
        headers={
            "Origin": "http://elsewhere.example",
            "Access-Control-Request-Method": "POST",
        },
    )
    assert 200 <= response.status < 300, response


# -- sending and receiving over HTTP long-polling ---------------------------------------


def test_post_answers_ok(port):
    """To indicate success, the server MUST return an HTTP 200 response,
    with the string `ok` in the response body."""
    sid, _ = open_polling(port)
    response = post(port, sid, "40")
    assert (response.status, response.body) == (200, b"ok")


def test_post_unknown_sid_is_400(port):
    """The server MUST return an HTTP 400 response if the session ID (from
    the `sid` query parameter) is not known (sending data)."""
    assert post(port, "no-such-session", "40").status == 400


def test_get_unknown_sid_is_400(port):
    """The server MUST return an HTTP 400 response if the session ID (from
    the `sid` query parameter) is not known (receiving data)."""
    assert get(port, "no-such-session").status == 400


def test_post_without_content_type_is_plaintext(port):
    """Without an explicit `Content-Type` header, the receiver SHOULD infer
    that the data is plaintext."""
    sid, _ = open_polling(port)
    response = request(port, "POST", session_query(sid), b"40")  # no Content-Type
    assert response.status == 200
    got = drain(port, sid, lambda got: any(str(p).startswith("40") for p in got))
    assert any(str(p).startswith('40{"sid"') for p in got), got


def test_several_packets_in_one_post_body(port):
    """Multiple packets might be concatenated in a single payload, separated
    by the record separator character `\\x1e` (client to server)."""
    sid = connect_polling(port)
    body = RECORD_SEP.join(echo(w) for w in ("one", "two", "three"))
    response = post(port, sid, body)
    assert response.status == 200
    got = drain(port, sid, lambda got: sum(echoed(p) is not None for p in got) >= 3)
    assert [echoed(p) for p in got if echoed(p) is not None] == ["one", "two", "three"]


def test_several_packets_in_one_get_response(port):
    """Once there are some packets to be sent, the server SHOULD encode
    them and send them in the response body; several are concatenated with
    the record separator `\\x1e`."""
    sid = connect_polling(port)
    assert post(port, sid, RECORD_SEP.join(echo(w) for w in ("one", "two", "three"))).status == 200
    # the three echoes are buffered (no GET was pending): one GET takes them
    status, packets, _ = poll(port, sid)
    assert status == 200
    assert [echoed(p) for p in packets] == ["one", "two", "three"], packets


def test_binary_payload_is_base64_with_b_prefix(port):
    """Binary payloads MUST be base64-encoded and prefixed with a `b`
    character (both ways: the server decodes the client's and encodes its
    own)."""
    sid = connect_polling(port)
    body = '451-["message",{"_placeholder":true,"num":0}]' + RECORD_SEP + "bAQIDBA=="
    assert post(port, sid, body).status == 200
    raw = []
    deadline = time.monotonic() + DEADLINE
    while not any(p.startswith("b") for p in raw):
        assert time.monotonic() < deadline, raw
        response = get(port, sid)
        assert response.status == 200
        parts = response.body.decode("utf-8").split(RECORD_SEP)
        if "2" in parts:
            post(port, sid, "3")
        raw += [p for p in parts if p != "2"]
    header = parse_sio(raw[0])
    assert (header.type, header.attachments) == (5, 1), raw
    assert header.data == ["message-back", {"_placeholder": True, "num": 0}]
    assert raw[1] == "bAQIDBA==", raw


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_text_is_utf8(port, transport):
    """The character encoding is UTF-8 for plain text (no character
    counting: the record separator delimits packets)."""
    text = "€ é ü 😀 \u2028 ﷽"
    with client(port, transport) as c:
        sio_connect(c)
        c.send(echo(text))
        assert echoed(c.recv()) == text


def test_payload_of_max_payload_bytes_is_accepted(port):
    """`maxPayload`: The maximum number of bytes per chunk, used by the
    client to aggregate packets into payloads (a POST body of exactly that
    many bytes is accepted)."""
    with PollClient(port) as c:
        sio_connect(c)
        limit = c.open_info["maxPayload"]
        parts = [echo("x" * 200_000) for _ in range(4)]
        used = len(RECORD_SEP.join(parts)) + len(RECORD_SEP) + len(echo(""))
        parts.append(echo("y" * (limit - used)))
        body = encode_payload(parts)
        assert len(body) == limit
        response = c.post(parts)
        assert response.status == 200
        got = [echoed(c.recv()) for _ in range(5)]
        assert [len(g) for g in got] == [200_000] * 4 + [limit - used]


@pytest.mark.parametrize(
    "body",
    [b"abc", b"b!!not base64!!", b"\xff\xfe\xfd"],
    ids=["unknown-type", "bad-base64", "not-utf8"],
)
def test_invalid_polling_body_is_400_and_closes(port, body):
    """The server closes the session upon an invalid packet format: the POST
    is answered 400 and the session is unknown afterwards (as the protocol's
    test suite checks)."""
    sid, _ = open_polling(port)
    assert post(port, sid, body).status == 400
    assert get(port, sid).status == 400


def test_concurrent_post_is_400_and_closes(port):
    """A client MUST NOT have more than one active `POST` request. Should it
    happen, the server MUST return an HTTP 400 error status and close the
    session."""

    def attempt() -> None:
        sid, _ = open_polling(port)
        # the first POST announces two bytes and sends one: the server is
        # still reading it when the second arrives
        first = Stream(HOST, port, DEADLINE)
        try:
            first.send(
                http_request("POST", target(session_query(sid)), f"{HOST}:{port}", None, b"40")[:-1]
            )
            time.sleep(0.15)
            second = post(port, sid, "40")
            first.send(b"0")
            # the first POST's own answer does not matter (nor whether it has one)
            with contextlib.suppress(Closed, Timeout):
                read_response(first, time.monotonic() + DEADLINE)
        finally:
            first.close()
        if second.status == 200:
            raise Race(f"the second POST was answered {second.status} {second.body!r}")
        assert second.status == 400
        assert get(port, sid).status == 400, "the session outlived the overlapping POST"

    retry_races(attempt)


def test_duplicate_get_is_400_and_closes(port):
    """A client MUST NOT have more than one active `GET` request. Should it
    happen, the server MUST return an HTTP 400 error status and close the
    session (the waiting GET ends; Node answers the duplicate with 500, the
    spec says 400: only 400 is accepted)."""

    def attempt() -> None:
        sid, _ = open_polling(port)
        a = Pending(port, "GET", session_query(sid))
        b = Pending(port, "GET", session_query(sid))
        try:
            ra, rb = a.result(), b.result()
        finally:
            a.close()
            b.close()
        for r in (ra, rb):
            if r.status == 200 and "2" in decode_payload(r.body):
                raise Race(
                    f"a ping answered one GET ({ra.status} {ra.body!r}, {rb.status} {rb.body!r})"
                )
        statuses = sorted((ra.status, rb.status))
        assert statuses[0] in (200, 400) and statuses[1] == 400, (ra, rb)
        assert get(port, sid).status == 400, "the session outlived the duplicate GET"

    retry_races(attempt)


def test_websocket_one_packet_per_frame(port):
    """Each Engine.IO packet is sent in its own WebSocket frame (no record
    separators, no concatenation)."""
    with WsClient(port) as ws:
        sio_connect(ws)
        ws.send_many([echo(w) for w in ("one", "two", "three")])
        frames = [ws.recv() for _ in range(3)]
        assert all(isinstance(f, str) and RECORD_SEP not in f for f in frames), frames
        assert [echoed(f) for f in frames] == ["one", "two", "three"]


# -- heartbeat ------------------------------------------------------------------------


def test_heartbeat_polling(port):
    """At a given interval (the `pingInterval` value sent in the handshake)
    the server sends a `ping` packet and the client has a few seconds (the
    `pingTimeout` value) to send a `pong` packet back (three rounds over
    HTTP long-polling)."""

    def attempt() -> None:
        sid, _ = open_polling(port)
        for _ in range(3):
            response = get(port, sid)
            packets = decode_payload(response.body) if response.status == 200 else []
            if response.status == 400 or packets == ["1"]:
                raise Race(f"the session ended ({response.status} {packets!r}): a late pong?")
            assert (response.status, packets) == (200, ["2"])
            assert post(port, sid, "3").status == 200

    retry_races(attempt)


def test_heartbeat_websocket(port):
    """At a given interval the server sends a `ping` packet and the client
    has `pingTimeout` to send a `pong` packet back (three rounds over a
    websocket)."""

    def attempt() -> None:
        with WsClient(port, auto_pong=False) as ws:
            for _ in range(3):
                try:
                    assert ws.recv() == "2"
                except AssertionError:
                    if ws.closed.is_set():
                        raise Race(f"the session ended ({ws.close_reason}): a late pong?") from None
                    raise
                ws.send("3")

    retry_races(attempt)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_answered_pings_keep_session_open(port, transport):
    """Once the handshake is completed, a heartbeat mechanism is started to
    check the liveness of the connection (a client that answers every ping
    stays connected over many intervals)."""

    def attempt() -> None:
        with client(port, transport) as c:
            sio_connect(c)
            if c.closed.wait(2.0):
                raise Race(f"the session ended ({c.close_reason}): a late pong?")
            c.send(echo("still here"))
            assert echoed(c.recv()) == "still here"
            assert c.pings >= 3

    retry_races(attempt)


def test_ping_timeout_closes_polling_session(port):
    """If the server does not receive a `pong` packet back, then it SHOULD
    consider that the connection is closed (a GET well after pingInterval +
    pingTimeout is refused with 400, and carries no ping)."""
    sid = connect_polling(port)
    time.sleep((PING_INTERVAL_MS + PING_TIMEOUT_MS) / 1000 + 1.5)
    response = get(port, sid)
    assert response.status == 400, f"an expired session answered {response.body!r}"


def test_ping_timeout_closes_websocket(port):
    """If the server does not receive a `pong` packet back, then it SHOULD
    consider that the connection is closed (the websocket is closed)."""
    with WsClient(port, auto_pong=False) as ws:
        ws.send("40")
        got = ws.wait_closed()
        assert "2" in got, f"closed without having pinged: {got!r}"


# -- close ------------------------------------------------------------------------------


def test_close_packet_answers_pending_get_with_noop(port):
    """close (1): Used to indicate that a transport can be closed (a POST of
    `1` while a GET waits answers that GET with the noop packet `6`, as the
    protocol's test suite checks; the session is then unknown)."""

    def attempt() -> None:
        sid, _ = open_polling(port)
        waiting = Pending(port, "GET", session_query(sid))
        try:
            if waiting.answered(0.1):
                raise Race("the GET was answered before the close")
            closing = post(port, sid, "1")
            answer = waiting.result()
        finally:
            waiting.close()
        if answer.status != 200 or "2" in decode_payload(answer.body):
            raise Race(f"the waiting GET was answered {answer.status} {answer.body!r}")
        assert closing.status == 200
        assert decode_payload(answer.body) == ["6"]
        assert get(port, sid).status == 400

    retry_races(attempt)


def test_close_packet_closes_polling_session(port):
    """close (1): Used to indicate that a transport can be closed (with no
    GET pending: the POST succeeds and the session is unknown afterwards)."""
    sid = connect_polling(port)
    response = post(port, sid, "1")
    assert response.status == 200
    assert get(port, sid).status == 400
    assert post(port, sid, "3").status == 400


def test_close_packet_closes_websocket(port):
    """close (1): Used to indicate that a transport can be closed (over a
    websocket the server closes the connection)."""
    with WsClient(port) as ws:
        sio_connect(ws)
        ws.send("1")
        ws.wait_closed()


# -- upgrade ----------------------------------------------------------------------------


def upgrade(port: int) -> tuple[str, WsClient, list[str | bytes]]:
    """A long-polling session joined to "/", upgraded to a websocket with a
    GET pending during the probe: the sid, the websocket (answering pings)
    and what the pending GET was answered."""

    def attempt() -> tuple[str, WsClient, list[str | bytes]]:
        sid = connect_polling(port)
        waiting = Pending(port, "GET", session_query(sid))
        ws = WsClient(port, sid=sid, auto_pong=False)
        try:
            if waiting.answered():
                raise Race("the GET was answered before the probe")
            ws.send("2probe")
            assert ws.recv() == "3probe"
            ws.auto_pong = True
            answer = waiting.result()
            packets = decode_payload(answer.body) if answer.status == 200 else []
            if "2" in packets:
                raise Race(f"a ping answered the pending GET: {packets!r}")
            assert answer.status == 200, f"the pending GET was answered {answer.status}"
            ws.send("5")
        except BaseException:
            ws.close()
            raise
        finally:
            waiting.close()
        return sid, ws, packets

    return retry_races(attempt)


def test_upgrade_from_polling_to_websocket(port):
    """The server MUST send a `noop` packet to any pending `GET` request and
    respond with a `pong` packet with the string `probe` in the payload;
    after the client's `upgrade` packet, messages flow over the websocket."""
    sid, ws, packets = upgrade(port)
    with ws:
        assert packets == ["6"]
        ws.send(echo("over websocket"))
        assert echoed(ws.recv()) == "over websocket"


def test_no_packet_lost_during_upgrade(port):
    """The client MUST pause the HTTP long-polling transport, to ensure that
    no packet gets lost (a packet buffered before the upgrade arrives once,
    by the last poll or over the websocket)."""
    sid = connect_polling(port)
    assert post(port, sid, echo("buffered")).status == 200
    with WsClient(port, sid=sid, auto_pong=False) as ws:
        ws.send("2probe")
        assert ws.recv() == "3probe"
        ws.auto_pong = True
        response = get(port, sid)
        assert response.status == 200
        polled = decode_payload(response.body)
        assert "6" in polled, polled
        ws.send("5")
        if "2" in polled:
            ws.send("3")
        ws.send('421["message-with-ack","sync"]')
        got = list(polled)
        while not (got and is_ack(got[-1], 1)):
            got.append(ws.recv())
        assert [echoed(p) for p in got].count("buffered") == 1, got


def test_http_requests_refused_after_upgrade(port):
    """The client MUST pause the HTTP long-polling transport (no more HTTP
    request gets sent): once upgraded, GET and POST with the sid are refused
    with 400 and the websocket keeps working."""
    sid, ws, _ = upgrade(port)
    with ws:
        assert get(port, sid).status == 400
        assert post(port, sid, echo("over polling")).status == 400
        ws.send(echo("over websocket"))
        got = ws.recv()
        assert echoed(got) == "over websocket", got


def test_second_websocket_refused_after_upgrade(port):
    """A client MUST NOT open more than one WebSocket connection per
    session. Should it happen, the server MUST close the WebSocket
    connection (the first one keeps working)."""
    sid, ws, _ = upgrade(port)
    with ws:
        refused, how = is_refused_websocket(port, session_query(sid, "websocket"))
        assert refused, f"a second websocket for the session was {how}"
        ws.send(echo("first websocket"))
        assert echoed(ws.recv()) == "first websocket"


def test_second_websocket_refused_for_websocket_session(port):
    """A client MUST NOT open more than one WebSocket connection per
    session. Should it happen, the server MUST close the WebSocket
    connection (for a session opened over a websocket)."""
    with WsClient(port) as ws:
        sio_connect(ws)
        refused, how = is_refused_websocket(port, session_query(ws.eio_sid, "websocket"))
        assert refused, f"a second websocket for the session was {how}"
        ws.send(echo("first websocket"))
        assert echoed(ws.recv()) == "first websocket"


# -- HTTP/1.1 underneath ---------------------------------------------------------------


def test_connection_close_request_is_honoured(port):
    """(HTTP/1.1, RFC 9112 9.6: a server that receives a "close" connection
    option MUST initiate closure of the connection after it sends the final
    response; it SHOULD send "close" in that response.)"""
    stream = Stream(HOST, port, DEADLINE)
    try:
        stream.send(
            http_request(
                "GET", target("EIO=4&transport=polling"), f"{HOST}:{port}", {"Connection": "close"}
            )
        )
        response = read_response(stream, time.monotonic() + DEADLINE)
        assert response.status == 200
        assert "close" in response.headers.get("connection", "").lower(), response.headers
        assert stream.wait_eof(DEADLINE), "the server kept the connection open"
    finally:
        stream.close()


@pytest.mark.parametrize(
    ("method", "query", "body"),
    [
        ("GET", "EIO=abc&transport=polling", b""),
        ("GET", "EIO=4&transport=polling&sid=unknown", b""),
        ("POST", "EIO=4&transport=polling&sid=unknown", b'42["message","x"]'),
        ("PUT", "EIO=4&transport=polling", b"40"),
    ],
    ids=["bad-EIO", "unknown-sid-get", "unknown-sid-post", "put"],
)
def test_error_answer_keeps_or_announces_closing_connection(port, method, query, body):
    """(HTTP/1.1, RFC 9112 9.3 and 9.6: connections persist unless "close"
    is announced; a server MUST read the whole request body or close the
    connection after its response.) After a refused request the same
    connection either carries the next request or was announced closing."""
    stream = Stream(HOST, port, DEADLINE)
    try:
        headers = {"Content-Length": str(len(body))} if body else {}
        stream.send(http_request(method, target(query), f"{HOST}:{port}", headers, body))
        first = read_response(stream, time.monotonic() + DEADLINE)
        assert first.status >= 400
        if "close" in first.headers.get("connection", "").lower():
            assert stream.wait_eof(DEADLINE)
            return
        stream.send(http_request("GET", target("EIO=4&transport=polling"), f"{HOST}:{port}"))
        try:
            second = read_response(stream, time.monotonic() + DEADLINE)
        except Closed as exc:
            raise AssertionError(
                f"the server closed a persistent connection unannounced: {exc}"
            ) from None
        assert second.status == 200
        assert decode_payload(second.body)[0].startswith("0")
    finally:
        stream.close()
