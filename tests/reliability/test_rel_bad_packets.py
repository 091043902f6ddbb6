"""Invalid packets: each costs one log line naming the client and the reason
(no traceback). By default (strict, as Node socket.io) it closes the
connection; with SOCKETIO_STRICT_PROTOCOL = False it is dropped and the
connection goes on where the protocol allows it, and a broken binary packet
does not swallow the messages after it."""

from __future__ import annotations

import json
import threading
import time

import pytest
from rawsio import (
    OP_BINARY,
    OP_TEXT,
    RECORD_SEP,
    Closed,
    PollSession,
    Stream,
    WsSession,
    read_response,
    ws_frame,
)
from relsupport import leftovers, path_server

pytestmark = [pytest.mark.reliability, pytest.mark.server]


@pytest.fixture(scope="module")
def rel_server(engine_path):
    """The fixture server on each engine path (raw clients run on both)."""
    yield from path_server("bad-packets", engine_path)


DROPPED = "Dropped an invalid packet from 127.0.0.1"
CLOSED = "Closed the connection after an invalid packet from 127.0.0.1"


@pytest.fixture(scope="module")
def lenient_server(engine_path):
    """The fixture server with SOCKETIO_STRICT_PROTOCOL = False."""
    yield from path_server("bad-packets-lenient", engine_path, "rel_lenient_settings")


INVALID_SOCKETIO = [
    "4",  # an Engine.IO message with no Socket.IO packet in it
    "42",  # an event with no payload
    "42[]",  # an event with no name
    "42[1,2]",  # a name that is not a string
    '42{"a":1}',  # not a list
    '42["message"',  # bad JSON
    "42" + "[" * 3000 + "]" * 3000,  # nesting past the parser's limit
    "43{}",  # an acknowledgement that is not a list
    "40[1]",  # CONNECT data that is not an object
    '44"no"',  # CONNECT_ERROR from a client
    "47",  # no such packet type
    "4x",
    "42" + "1" * 120 + "[]",  # an ack id past python-socketio's 100 digits
]


class Log:
    """What a server process wrote to its log since the last call."""

    def __init__(self, server) -> None:
        self.server = server
        self.seen = len(server.output())

    def new(self, wait_for: str = "", count: int = 0, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.server.output()[self.seen :]
            if text.count(wait_for) >= count or time.monotonic() > deadline:
                self.seen += len(text)
                return text
            time.sleep(0.05)


def probe(session, n: int) -> None:
    assert session.call("message", {"op": "probe", "n": n}) == [{"probe": n}]


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_invalid_socketio_packet_closes_the_connection(rel_server, transport):
    # strict by default, as Node socket.io: one line, the connection closed,
    # and the server as good as before for everybody else
    log = Log(rel_server)
    cls = WsSession if transport == "websocket" else PollSession
    for n, packet in enumerate(INVALID_SOCKETIO):
        session = cls(rel_server.host, rel_server.port)
        sid = session.connect()
        if transport == "polling":
            session.start_poll()  # as the official client, which always has a GET out
        with pytest.raises(Closed):
            # over long-polling the POST carrying it is already refused (400)
            session.send_packet(packet)
            probe(session, n)
        session.close("fin")
        text = log.new(CLOSED, 1)
        assert text.count(CLOSED) == 1 and f"session {sid}:" in text, (packet, text)
        assert "Traceback" not in text
    survivor = cls(rel_server.host, rel_server.port)
    survivor.connect()
    probe(survivor, 0)
    survivor.close()
    reading = rel_server.wait_idle(15)
    assert not leftovers(reading), json.dumps(reading["eio_states"])


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_invalid_socketio_packets_cost_one_line_each(lenient_server, transport):
    # engine.io logged each one with a dozen lines of traceback, formatting
    # which cost the server more than the packet itself
    rel_server = lenient_server
    log = Log(rel_server)
    cls = WsSession if transport == "websocket" else PollSession
    session = cls(rel_server.host, rel_server.port)
    sid = session.connect()
    for n, packet in enumerate(INVALID_SOCKETIO):
        session.send_packet(packet)
        probe(session, n)  # the connection still works
    session.close()
    text = log.new(DROPPED, len(INVALID_SOCKETIO))
    lines = [line for line in text.splitlines() if DROPPED in line]
    assert len(lines) == len(INVALID_SOCKETIO), text
    assert all(f"session {sid}:" in line for line in lines), lines
    assert "Traceback" not in text
    assert "an event must be a list that starts with the event's name" in text


def test_broken_binary_packet_does_not_swallow_later_messages(lenient_server):
    # python-socketio kept a binary packet whose attachment could not be put
    # in place, so every later message of the connection was taken for one
    # more attachment and dropped: the connection looked alive and was deaf
    rel_server = lenient_server
    log = Log(rel_server)
    session = WsSession(rel_server.host, rel_server.port)
    session.connect()
    header = "451-" + json.dumps(["message", {"_placeholder": True, "num": 5}])
    session.send_raw(ws_frame(OP_TEXT, header.encode()) + ws_frame(OP_BINARY, b"\x00\x01"))
    for n in range(3):
        probe(session, n)
    session.close()
    text = log.new(DROPPED, 1)
    assert text.count(DROPPED) == 1 and "bad binary attachment" in text, text


def test_packet_that_is_not_engineio_ends_the_connection(rel_server):
    log = Log(rel_server)
    session = WsSession(rel_server.host, rel_server.port)
    session.connect()
    session.send_packet("x-not-a-packet-type")
    with pytest.raises(Closed):
        probe(session, 0)
    session.close("fin")
    text = log.new(CLOSED + ", Engine.IO session", 1)
    assert "not an Engine.IO packet" in text and "Traceback" not in text, text


@pytest.mark.parametrize(
    "body", [b"\xff\xfe42[]", b"x", b"b!!!not-base64"], ids=["not-utf8", "bad-type", "bad-base64"]
)
def test_polling_body_that_is_not_engineio_ends_the_session(rel_server, body):
    # engine.io logged a traceback, answered 200 and dropped the rest of
    # the body without a word; now it is a 400, as a websocket would close
    log = Log(rel_server)
    session = PollSession(rel_server.host, rel_server.port)
    session.connect()
    session.start_poll()  # as the official client, which always has a GET out
    assert session.post(body).status == 400
    with pytest.raises(Closed):
        probe(session, 0)
    session.close("fin")
    text = log.new(CLOSED + ", Engine.IO session", 1)
    assert "Traceback" not in text, text
    reading = rel_server.wait_idle(15)
    assert not leftovers(reading), json.dumps(reading["eio_states"])


@pytest.mark.parametrize("version", ["HTTP/1", "HTTP/", "HTTP/x.y", "HTTP/3.0"])
def test_bad_http_version_is_a_400_without_traceback(rel_server, version):
    # pywsgi printed a traceback for "HTTP/1" (and answered 400 anyway)
    log = Log(rel_server)
    stream = Stream(rel_server.host, rel_server.port)
    stream.send(f"GET /socket.io/?EIO=4&transport=polling {version}\r\nHost: x\r\n\r\n".encode())
    response = read_response(stream, time.monotonic() + 5)
    stream.close()
    assert response.status == 400
    assert "Traceback" not in log.new("Invalid request", 1, timeout=1)


def raw_http(server, request: bytes) -> int:
    stream = Stream(server.host, server.port)
    try:
        stream.send(request)
        return read_response(stream, time.monotonic() + 5).status
    finally:
        stream.close()


def test_websocket_connect_without_the_upgrade_token_is_a_400(rel_server):
    # found by the fuzzer: with "Connection: ] Upgrade", engine.io created a
    # session, polled it and returned its packets with no status line (pywsgi
    # made it a 500 with a traceback); the session stayed until its heartbeat
    log = Log(rel_server)
    request = (
        b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Upgrade: websocket\r\nConnection: ] Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n\r\n"
    )
    assert raw_http(rel_server, request) == 400
    assert rel_server.registry()["eio_sockets"] == 0
    assert "Traceback" not in log.new(timeout=0.5)


def test_post_to_a_session_closed_a_moment_ago_is_a_400(rel_server):
    # engine.io's POST path let _get_socket()'s KeyError("Session is
    # disconnected") escape: a 500 and a traceback, until the next sweep
    log = Log(rel_server)
    session = PollSession(rel_server.host, rel_server.port)
    session.connect()
    assert session.post(b"1").status == 200  # the client closes the session
    assert session.post(b'42["message","late"]').status == 400
    session.close("fin")
    assert "Traceback" not in log.new(timeout=0.5)


def test_packets_after_close_in_one_body_are_dropped(rel_server):
    # python-socketio took the CONNECT after the CLOSE for a new connection
    # of the closed session: a KeyError traceback, and a namespace entry
    # that nothing would ever remove (found by the fuzz corpus)
    log = Log(rel_server)
    before = rel_server.registry()["counts"]
    session = PollSession(rel_server.host, rel_server.port)
    body = RECORD_SEP.join(["1", "40", '42["message",{"op":"probe"}]'])
    assert session.post(body.encode()).status == 200
    session.close("fin")
    reading = rel_server.wait_idle(10)
    assert not leftovers(reading), leftovers(reading)
    assert reading["counts"].get("connect", 0) == before.get("connect", 0)
    assert "Traceback" not in log.new(timeout=0.5)


def close_while_handling(server, session, body: bytes) -> dict:
    """POST ``body`` on a long-polling session and, while its handler
    waits, close the session from another connection: a second POST while
    one is active, which the protocol forbids, so the server closes the
    session and refuses it; return the registry once it has settled."""
    handling = threading.Thread(target=session.post, args=(body,), daemon=True)
    handling.start()
    time.sleep(0.3)  # the packet is in its (slow) handler now
    closer = Stream(server.host, server.port, 5.0)
    closer.send(session._request_bytes("POST", session._query(), b"1"))
    assert read_response(closer, time.monotonic() + 5).status == 400
    closer.close()
    handling.join(5)
    session.close("fin")
    reading = server.wait_idle(10)
    assert not leftovers(reading), leftovers(reading)
    return reading


def test_session_closed_while_its_connect_handler_runs(rel_server):
    # the close arrives while on_connect waits: python-socketio skipped the
    # disconnect (the socket was still connecting) and then registered the
    # socket as connected, for good; now it is disconnected at once, with
    # on_disconnect and on_finish, like any other connection that ends
    log = Log(rel_server)
    before = rel_server.registry()["counts"]
    session = PollSession(rel_server.host, rel_server.port, query={"slow_connect": "1"})
    counts = close_while_handling(rel_server, session, b"40")["counts"]
    for event in ("connect", "disconnect", "finish"):
        assert counts.get(event, 0) == before.get(event, 0) + 1, (event, counts)
    assert "Traceback" not in log.new(timeout=0.5)


def test_session_closed_while_its_subscribe_handler_runs(rel_server):
    # the tab closes while on_subscribe waits: the socket is gone by the
    # time the handler agrees, so it must not join the channel (python-
    # socketio's enter_room raised)
    log = Log(rel_server)
    session = PollSession(rel_server.host, rel_server.port)
    session.connect()
    close_while_handling(rel_server, session, b'421["wsio:subscribe","slow-1"]')
    assert "Traceback" not in log.new(timeout=1.5)


def test_message_with_several_arguments_is_one_list(rel_server):
    # socket.send(a, b) sends two arguments; handlers take one message, so
    # each failed with a TypeError, and any client could make them all raise
    log = Log(rel_server)
    session = WsSession(rel_server.host, rel_server.port)
    session.connect()
    assert session.call("message", {"op": "probe", "n": 1}, 2) == []  # a list: not an op
    assert session.call("message") == []
    probe(session, 3)
    session.close()
    assert "Traceback" not in log.new(timeout=0.5)


def test_event_names_cannot_forge_message_log_lines():
    # the message log wrote a named event's name as it came: a newline in it
    # started a line of the client's making
    import logging

    from webpy_socketio.testing import SocketIOTestClient

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    message_log = logging.getLogger("webpy_socketio.messages")
    message_log.addHandler(handler)
    level = message_log.level
    message_log.setLevel(logging.INFO)
    try:
        client = SocketIOTestClient()
        client.emit('x\n127.0.0.1 - - [01/Jan/2030] "Socket.IO message: forged"', 1)
        client.disconnect()
    finally:
        message_log.removeHandler(handler)
        message_log.setLevel(level)
    lines = [record.getMessage() for record in records]
    assert lines and all("\n" not in line for line in lines), lines
    assert "x\\n127.0.0.1" in lines[0]


#: (packet after "42", the acknowledgement expected for it under ack id 7)
EVENT_TEXTS = [
    ('7["shout","hi"]', ["HI"]),
    ('0007["shout","é\\u2028😀"]', ["É\u2028😀"]),  # leading zeros: still id 7
    ('7["message",{"op":"probe","n":3}]', [{"probe": 3}]),
    ('7["message","no reply"]', []),  # None from every handler: an empty ack
    ('7["no-such-event",1,2]', []),
    ('7["shout",{"nested":[1,[2,[3]]]}]', ["{'NESTED': [1, [2, [3]]]}"]),
    ("0" * 99 + '7["shout","long id"]', ["LONG ID"]),  # 100 digits: accepted
]


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_events_and_acks_on_both_paths(lenient_server, transport):
    # text events on the default namespace take a short path to the
    # handler and back (fastpath.Server); each answer must be the one
    # python-socketio gives, over websocket (frame written directly) and
    # long-polling (ack built as a python-socketio packet)
    rel_server = lenient_server
    log = Log(rel_server)
    cls = WsSession if transport == "websocket" else PollSession
    session = cls(rel_server.host, rel_server.port)
    session.connect()
    for text, expected in EVENT_TEXTS:
        session.send_packet("42" + text)
        assert session.wait_ack(7, 5) == expected, text
    # what the short path leaves to the general one: still answered or
    # reported as before
    session.send_packet("42" + "1" * 101 + '["shout","x"]')  # id too long
    session.send_packet('42["connect",{}]')  # reserved name
    session.send_packet('42/other,8["shout","x"]')  # another namespace
    session.send_packet('428["shout","x"')  # bad JSON
    session.send_packet("42\u0663" + '["shout","arabic-indic id"]')  # int("٣") == 3
    assert session.wait_ack(3, 5) == ["ARABIC-INDIC ID"]
    probe(session, 1)
    session.close()
    text = log.new(DROPPED, 4)
    assert "id field is too long" in text and "reserved event name" in text, text
    assert "namespace '/other', not connected" in text, text
    assert "Traceback" not in text
