"""Socket.IO protocol v5 conformance, from the specification
(socketio/socket.io-protocol, Readme.md), checked with raw clients over
both Engine.IO transports against a real server process.

Each test is one rule of the specification, quoted in its docstring. The
server is tests/apps/conformance_app.py, the reference server of the
protocol's test suite written with webpy_socketio's API: it emits "auth"
with the CONNECT payload on connect (to "/" and to "/custom"), echoes
"message" as "message-back" and acknowledges "message-with-ack" with its
arguments. Every test runs over a websocket and over HTTP long-polling,
once per code path (``fast`` and ``stock``).

Packets are compared after a strict parse of the v5 format
(:func:`rawclient.parse_sio`), so the JSON's spacing does not matter but
the header does: ``<type>[<n>-][<nsp>,][<id>]``. Where a rule says the
server closes the connection, a packet the server would answer follows the
bad one on the same session: a conformant server never answers it.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from rawclient import (
    DEADLINE,
    PollClient,
    Race,
    SioPacket,
    client,
    get,
    parse_sio,
    placeholder,
    retry_races,
    sio_connect,
)

pytestmark = [pytest.mark.server, pytest.mark.timeout(60)]

TRANSPORTS = ["websocket", "polling"]
CONNECT_TIMEOUT = 1.0  # SOCKETIO_CONNECT_TIMEOUT of conformance_settings


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def port(conformance_server: Any) -> int:
    return int(conformance_server.port)


@pytest.fixture
def c(port: int, transport: str) -> Any:
    """A fresh Engine.IO session, no namespace joined yet."""
    session = client(port, transport)
    yield session
    session.close()


def sio(c: Any, timeout: float = DEADLINE) -> SioPacket:
    """The next Socket.IO packet."""
    return parse_sio(c.recv(timeout))


def is_ack(pkt: Any, ack_id: int = 1) -> bool:
    return isinstance(pkt, str) and pkt.startswith("43") and parse_sio(pkt).id == ack_id


def is_connect(pkt: Any) -> bool:
    return isinstance(pkt, str) and pkt.startswith("40")


def assert_closed(c: Any, port: int, answered: Any) -> list[Any]:
    """The server closes the session (and, over long-polling, forgets its
    sid) without sending a packet for which ``answered(packet)`` is true;
    return what it sent before closing."""
    got = c.wait_closed(fail_if=answered)
    if isinstance(c, PollClient):
        assert get(port, c.eio_sid).status == 400, "the closed session still answers polls"
    return got


# what follows a bad packet: answered by any server that is still listening
PROBE = '421["message-with-ack","still there?"]'


# -- connection to a namespace --------------------------------------------------------


def test_connect_main_namespace(c):
    """The server MUST respond with a `CONNECT` packet if the connection is
    successful, with the session ID in the payload (`40{"sid":...}`)."""
    connect, auth = sio_connect(c)
    assert (connect.type, connect.nsp, connect.id, connect.attachments) == (0, "/", None, None)
    assert set(connect.data) == {"sid"}
    assert isinstance(connect.data["sid"], str) and connect.data["sid"]
    assert auth.data == ["auth", {}]


def test_connect_main_namespace_with_payload(c):
    """The `CONNECT` packet now can contain a payload (the client's
    authentication, reaching the server's handler; the answer still holds
    only the sid)."""
    connect, auth = sio_connect(c, auth={"token": "123"})
    assert set(connect.data) == {"sid"}
    assert auth.data == ["auth", {"token": "123"}]


@pytest.mark.parametrize("packet", ["40/custom,", "40/custom"], ids=["comma", "no-comma"])
def test_connect_custom_namespace(c, packet):
    """A custom namespace: `0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}` (the
    server's answer names the namespace, with only the sid in the payload)."""
    connect, auth = sio_connect(c, "/custom", packet=packet)
    assert (connect.type, connect.nsp, connect.id) == (0, "/custom", None)
    assert connect.raw.startswith("40/custom,{")
    assert set(connect.data) == {"sid"}
    assert isinstance(connect.data["sid"], str) and connect.data["sid"]
    assert auth.data == ["auth", {}]


def test_connect_custom_namespace_with_payload(c):
    """With an additional payload: `{ type: CONNECT, namespace: "/admin",
    data: { "token": "123" } }` is answered `{ type: CONNECT, namespace:
    "/admin", data: { sid: "..." } }`."""
    connect, auth = sio_connect(c, "/custom", auth={"token": "abc"})
    assert set(connect.data) == {"sid"}
    assert auth.data == ["auth", {"token": "abc"}]


@pytest.mark.parametrize("nsp", ["/", "/custom"])
def test_connect_answer_precedes_events(c, nsp):
    """Once the connection to a namespace is established, the client and the
    server can begin exchanging data (the CONNECT answer comes first; the
    "auth" event emitted by the connect handler comes after it)."""
    c.send("40" if nsp == "/" else f"40{nsp},")
    first = sio(c)
    assert first.type == 0, f"{first.raw!r} came before the CONNECT packet"
    second = sio(c)
    assert (second.type, second.nsp, second.data[:1]) == (2, nsp, ["auth"])


def test_socketio_sid_differs_from_engineio_sid(c):
    """The ID of the Socket.IO connection will now be different from the ID
    of the underlying Engine.IO connection."""
    connect, _ = sio_connect(c)
    assert connect.data["sid"] != c.eio_sid


@pytest.mark.parametrize("packet", ["40/random", "40/random,"], ids=["no-comma", "comma"])
def test_unknown_namespace_is_refused(c, packet):
    """The server MUST respond with a `CONNECT_ERROR` packet if the
    connection is not allowed; its payload is an object (exactly
    `44/random,{"message":"Invalid namespace"}`, as the reference server)."""
    c.send(packet)
    assert c.recv() == '44/random,{"message":"Invalid namespace"}'


def test_unknown_namespace_keeps_session(c):
    """A client MAY be connected to multiple namespaces at the same time,
    with the same underlying WebSocket connection (a refused namespace does
    not end the session: the main one can still be joined)."""
    c.send("40/random,")
    assert sio(c).type == 4
    connect, _ = sio_connect(c)
    assert connect.type == 0


@pytest.mark.parametrize(
    "first",
    ["4abc", '42["message","too early"]', "41", "43[1]"],
    ids=["garbage", "event", "disconnect", "ack"],
)
def test_first_packet_not_connect_closes(c, port, first):
    """If the server does not receive a `CONNECT` packet first, then it
    MUST close the connection immediately (a CONNECT that follows is never
    answered)."""
    c.send_many([first, "40"])
    assert_closed(c, port, answered=is_connect)


def test_no_connect_within_timeout_closes(port, transport):
    """If the server does not receive a `CONNECT` packet first, then it MUST
    close the connection (a session that sends nothing but pongs is closed
    once the connect timeout, 1 s, has passed; an earlier close, which only
    a late pong on a starved machine explains, is tried again)."""

    def attempt() -> None:
        started = time.monotonic()
        with client(port, transport) as idle:
            got = idle.wait_closed(CONNECT_TIMEOUT + 5)
            elapsed = time.monotonic() - started
            assert got == [], f"the server sent {got!r} to a session that joined nothing"
            if elapsed < CONNECT_TIMEOUT - 0.1:
                raise Race(f"closed after {elapsed:.2f} s ({idle.close_reason})")

    retry_races(attempt)


@pytest.mark.parametrize(
    "packet",
    ["40[1]", '40"token"', "40/custom,[1]", '40/custom,"token"', "40true"],
    ids=["array", "string", "custom-array", "custom-string", "boolean"],
)
def test_connect_with_non_object_payload_closes(c, port, packet):
    """The `CONNECT` packet now can contain a payload (an object, as in
    `{"token":"123"}`; anything else is an invalid packet and the
    connection is closed, as the reference parser does)."""
    c.send_many([packet, "40"])
    assert_closed(c, port, answered=is_connect)


# -- disconnection from a namespace -------------------------------------------------------


def test_disconnect_main_namespace_gets_no_answer(port, transport):
    """At any time, one side can end the connection to a namespace by
    sending a `DISCONNECT` packet. No response is expected from the other
    side (what follows is the next ping, or the end of the session)."""
    with client(port, transport, auto_pong=False) as c:
        sio_connect(c)
        c.send("41")
        deadline = time.monotonic() + DEADLINE
        while c.inbox.empty() and not c.closed.is_set():
            assert time.monotonic() < deadline, "neither a ping nor a close followed"
            time.sleep(0.02)
        if not c.inbox.empty():
            assert c.recv() == "2"


@pytest.mark.parametrize("packet", ["41/custom", "41/custom,"], ids=["no-comma", "comma"])
def test_disconnect_custom_namespace_keeps_main(c, packet):
    """The low-level connection MAY be kept alive if the client is connected
    to another namespace (after `41/custom` the main namespace still works)."""
    sio_connect(c)
    sio_connect(c, "/custom", packet="40/custom")
    c.send_many([packet, '42["message","message to main namespace"]'])
    pkt = sio(c)
    assert (pkt.type, pkt.nsp, pkt.data) == (2, "/", ["message-back", "message to main namespace"])


# -- sending and receiving data -----------------------------------------------------------


def test_event_with_mixed_arguments(c):
    """Once the connection to a namespace is established, the client and the
    server can begin exchanging data (`EVENT`, `2["foo"]`; several arguments
    of any JSON type)."""
    sio_connect(c)
    c.send('42["message",1,"2",{"3":[true]}]')
    pkt = sio(c)
    assert (pkt.type, pkt.nsp, pkt.id, pkt.attachments) == (2, "/", None, None)
    assert pkt.data == ["message-back", 1, "2", {"3": [True]}]


def test_event_with_binary_attachments(c):
    """With binary data: `51-["baz",{"_placeholder":true,"num":0}]` +
    `<Buffer <01 02 03 04>>` (a BINARY_EVENT, its attachments each in the
    following packets, both ways)."""
    sio_connect(c)
    c.send_many(
        [
            '452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
            b"\x01\x02\x03",
            b"\x04\x05\x06",
        ]
    )
    header = sio(c)
    assert (header.type, header.attachments, header.nsp, header.id) == (5, 2, "/", None)
    assert header.data == ["message-back", placeholder(0), placeholder(1)]
    assert c.recv() == b"\x01\x02\x03"
    assert c.recv() == b"\x04\x05\x06"


def test_event_with_ack(c):
    """The sender MAY include an event ID in order to request an
    acknowledgement from the receiver. The receiver MUST respond with an
    `ACK` packet with the same event ID."""
    sio_connect(c)
    c.send('42456["message-with-ack",1,"2",{"3":[false]}]')
    pkt = sio(c)
    assert (pkt.type, pkt.nsp, pkt.id) == (3, "/", 456)
    assert pkt.data == [1, "2", {"3": [False]}]


def test_ack_payload_is_array_even_if_empty(c):
    """The payload is mandatory and MUST be an array (possibly empty):
    `{ type: ACK, namespace: "/", data: [], id: 12 }`."""
    sio_connect(c)
    c.send('4212["message-with-ack"]')
    pkt = sio(c)
    assert (pkt.type, pkt.id, pkt.data) == (3, 12, [])


def test_binary_event_with_ack(c):
    """With binary data: `61-15["bar",{"_placeholder":true,"num":0}]` + the
    attachment (an acknowledgement that carries binary data is a
    BINARY_ACK)."""
    sio_connect(c)
    c.send_many(
        [
            '452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
            b"\x01\x02\x03",
            b"\x04\x05\x06",
        ]
    )
    header = sio(c)
    assert (header.type, header.attachments, header.nsp, header.id) == (6, 2, "/", 789)
    assert header.data == [placeholder(0), placeholder(1)]
    assert c.recv() == b"\x01\x02\x03"
    assert c.recv() == b"\x04\x05\x06"


def test_custom_namespace_event_with_ack(c):
    """With a custom namespace: `3/admin,13["bar"]` (a packet of a namespace
    other than "/" is encoded `<type>/nsp,<id><json>`)."""
    sio_connect(c, "/custom")
    c.send('42/custom,13["message-with-ack","bar"]')
    pkt = sio(c)
    assert pkt.raw.startswith("43/custom,13[")
    assert (pkt.type, pkt.nsp, pkt.id, pkt.data) == (3, "/custom", 13, ["bar"])


def test_custom_namespace_binary_event(c):
    """With multiple attachments: `52-/admin,["baz",{"_placeholder":true,
    "num":0},...]` (the attachment count comes before the namespace)."""
    sio_connect(c, "/custom")
    c.send_many(['451-/custom,["message",{"_placeholder":true,"num":0}]', b"\x01\x02"])
    header = sio(c)
    assert header.raw.startswith("451-/custom,[")
    assert (header.type, header.attachments, header.nsp) == (5, 1, "/custom")
    assert header.data == ["message-back", placeholder(0)]
    assert c.recv() == b"\x01\x02"


def test_custom_namespace_binary_ack(c):
    """`461-/admin,1[{"_placeholder":true,"num":0}]` => Socket.IO "BINARY_ACK"
    packet with a placeholder, the binary attachment sent in the following
    frame (sample session)."""
    sio_connect(c, "/custom")
    c.send_many(['451-/custom,5["message-with-ack",{"_placeholder":true,"num":0}]', b"\xff\x00"])
    header = sio(c)
    assert header.raw.startswith("461-/custom,5[")
    assert (header.type, header.attachments, header.nsp, header.id) == (6, 1, "/custom", 5)
    assert header.data == [placeholder(0)]
    assert c.recv() == b"\xff\x00"


def test_namespaces_receive_their_own_events(c):
    """A client MAY be connected to multiple namespaces at the same time,
    with the same underlying WebSocket connection (each namespace's events
    reach it in its own namespace only)."""
    sio_connect(c)
    sio_connect(c, "/custom")
    c.send_many(
        [
            '42["message","to main"]',
            '42/custom,["message","to custom"]',
            '42/custom,7["message-with-ack","sync"]',
            '427["message-with-ack","sync"]',
        ]
    )
    got = [sio(c) for _ in range(4)]
    events = sorted((p.nsp, p.data[1]) for p in got if p.type == 2)
    assert events == [("/", "to main"), ("/custom", "to custom")]
    assert sorted((p.nsp, p.id) for p in got if p.type == 3) == [("/", 7), ("/custom", 7)]


# -- invalid packets close the connection ---------------------------------------------------


@pytest.mark.parametrize("packet", ["4abc", "47", '49["message"]'], ids=["abc", "7", "9"])
def test_unknown_packet_type_closes(c, port, packet):
    """Here is the list of available packet types: 0 to 6 (any other is an
    invalid packet, and the receiver closes the connection, as the protocol's
    test suite checks)."""
    sio_connect(c)
    c.send_many([packet, PROBE])
    assert_closed(c, port, answered=is_ack)


@pytest.mark.parametrize(
    "packet",
    ["42{}", '42"message"', "42[]", "42", "42null", "421{}"],
    ids=["object", "string", "empty-array", "no-payload", "null", "object-with-id"],
)
def test_invalid_event_payload_closes(c, port, packet):
    """The payload is mandatory and MUST be a non-empty array. If that's not
    the case, then the receiver MUST close the connection."""
    sio_connect(c)
    c.send_many([packet, PROBE])
    assert_closed(c, port, answered=is_ack)


def test_invalid_ack_id_closes(c, port):
    """`<packet type>[<# of binary attachments>-][<namespace>,][<acknowledgment
    id>][JSON-stringified payload]`: an id that is not a number makes the
    packet invalid, and the connection is closed."""
    sio_connect(c)
    c.send_many(['42abc["message-with-ack",1,"2",{"3":[false]}]', PROBE])
    assert_closed(c, port, answered=is_ack)


@pytest.mark.parametrize("packet", ["431{}", '431"x"', "431"], ids=["object", "string", "none"])
def test_invalid_ack_payload_closes(c, port, packet):
    """(ACK) The payload is mandatory and MUST be an array (possibly empty)
    (a client's ACK without one is an invalid packet, and the connection is
    closed, as for events)."""
    sio_connect(c)
    c.send_many([packet, PROBE])
    assert_closed(c, port, answered=is_ack)


@pytest.mark.parametrize("kind", ["text-instead-of-attachment", "unexpected-attachment"])
def test_attachment_out_of_place_closes(c, port, kind):
    """`<packet type>[<# of binary attachments>-]...` + binary attachments
    extracted (the announced attachments follow the packet, and nothing
    else is an attachment: a text packet in their place, or binary data
    that no packet announced, is invalid and the connection is closed)."""
    sio_connect(c)
    if kind == "text-instead-of-attachment":
        bad: list[Any] = ['451-["message",{"_placeholder":true,"num":0}]', '42["message","x"]']
    else:
        bad = [b"\x01\x02\x03"]
    c.send_many([*bad, PROBE])
    assert_closed(c, port, answered=is_ack)
