"""The websocket transport (webpy_socketio/websocket.py) at the frame level:
a raw RFC 6455 client against the real server, so every byte is ours to
choose (fragments, masks, control frames, bad data)."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time

import pytest
from support import AppServer

from webpy_socketio._websocket.connection import accept_key, encode_frame, unmask

pytestmark = [pytest.mark.server]


@pytest.fixture(scope="module")
def basic_server(engine_path):
    """tests/apps/basic_app.py on the engine path under test (both run)."""
    server = AppServer("basic_app.py", f"basic-{engine_path}", {"WSIO_TEST_PATH": engine_path})
    yield server
    server.stop()


# -- frames, without a server ------------------------------------------------


def test_accept_key_matches_the_rfc_example():
    # RFC 6455 section 1.3
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize(
    ("size", "header"),
    [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)],
)
def test_server_frames_are_unmasked_with_the_shortest_length(size, header):
    frame = encode_frame(0x1, b"a" * size)
    assert len(frame) == header + size
    assert frame[0] == 0x81
    assert not frame[1] & 0x80  # no mask bit
    assert frame[header:] == b"a" * size


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 1000])
def test_unmask_undoes_the_client_mask(size):
    data = os.urandom(size)
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    assert unmask(masked, mask) == data


# -- a raw client --------------------------------------------------------------


def client_frame(opcode, payload=b"", fin=True, mask=True, rsv=0):
    first = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head = bytes((first, bit | n))
    elif n < 65536:
        head = struct.pack("!BBH", first, bit | 126, n)
    else:
        head = struct.pack("!BBQ", first, bit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class RawClient:
    """A blocking websocket client that speaks Engine.IO by hand."""

    def __init__(self, port, rcvbuf=None):
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""
        self.key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {self.key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = self._until(b"\r\n\r\n").decode("latin-1")
        self.response = head
        self.ids = 0

    def _until(self, marker):
        while marker not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError(f"closed before {marker!r}: {self.buf!r}")
            self.buf += data
        head, _, self.buf = self.buf.partition(marker)
        return head

    def _exactly(self, n):
        while len(self.buf) < n:
            data = self.sock.recv(max(65536, n - len(self.buf)))
            if not data:
                raise ConnectionError("closed mid-frame")
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self):
        """(fin, opcode, payload) of the next server frame."""
        b0, b1 = self._exactly(2)
        assert not b1 & 0x80, "server frames must not be masked"
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._exactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._exactly(8))
        return bool(b0 & 0x80), b0 & 0x0F, self._exactly(n)

    def text(self):
        """The next text message, skipping Engine.IO pings (answered)."""
        while True:
            fin, opcode, payload = self.frame()
            assert fin and opcode == 0x1, (fin, opcode, payload[:80])
            text = payload.decode()
            if text == "2":
                self.send(b"3")
                continue
            return text

    def send(self, payload, opcode=0x1):
        self.sock.sendall(client_frame(opcode, payload))

    def open(self):
        """The Engine.IO and Socket.IO handshakes."""
        assert self.response.startswith("HTTP/1.1 101")
        assert f"Sec-WebSocket-Accept: {accept_key(self.key)}" in self.response
        assert self.text().startswith("0{")
        self.send(b"40")
        assert self.text().startswith("40{")
        return self

    def emit(self, event, *args):
        self.ids += 1
        self.send(b"42%d" % self.ids + json.dumps([event, *args]).encode())
        return self.ids

    def ack(self, ack_id):
        while True:
            text = self.text()
            prefix = f"43{ack_id}"
            if text.startswith(prefix):
                return json.loads(text[len(prefix) :])

    def expect_close(self):
        """The close code the server sent, after answering pings/data."""
        while True:
            _, opcode, payload = self.frame()
            if opcode == 0x8:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None

    def rest(self, timeout=5.0):
        """Everything until the server closes the TCP connection."""
        self.sock.settimeout(timeout)
        data = self.buf
        self.buf = b""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return data
            data += chunk

    def close(self):
        self.sock.close()


@pytest.fixture
def raw(basic_server):
    made = []

    def connect(**kwargs):
        client = RawClient(basic_server.port, **kwargs)
        made.append(client)
        return client

    yield connect
    for client in made:
        client.close()


# -- the transport ---------------------------------------------------------------


def test_handshake_and_an_acknowledged_message(raw):
    client = raw().open()
    assert client.ack(client.emit("message", "hi")) == [{"echo": "hi"}]


def test_fragmented_message_with_a_ping_in_the_middle(raw):
    client = raw().open()
    packet = b'427["message","' + "é".encode() * 300 + b'"]'
    # split inside the two-byte "é", so only the whole message is valid UTF-8
    parts = [packet[:101], packet[101:350], packet[350:]]
    client.sock.sendall(client_frame(0x1, parts[0], fin=False))
    client.sock.sendall(client_frame(0x9, b"are you there"))
    client.sock.sendall(client_frame(0x0, parts[1], fin=False))
    client.sock.sendall(client_frame(0x0, parts[2], fin=True))
    fin, opcode, payload = client.frame()
    assert (fin, opcode, payload) == (True, 0xA, b"are you there")
    assert client.ack(7) == [{"echo": "é" * 300}]


def test_binary_attachments_both_ways(raw):
    client = raw().open()
    blob = bytes(range(256)) * 4
    client.send(b'451-9["message",{"_placeholder":true,"num":0}]')
    client.send(blob, opcode=0x2)
    header = client.text()
    assert header.startswith("461-9")
    fin, opcode, payload = client.frame()
    assert (fin, opcode, payload) == (True, 0x2, blob)


def test_text_event_with_a_binary_acknowledgement(raw):
    # the ack of a text event is written straight to the socket unless it
    # holds bytes: then it is a binary ack, a header and an attachment
    client = raw().open()
    client.send(b'423["encode","h\xc3\xa9"]')
    assert client.text() == '461-3[{"encoded":{"_placeholder":true,"num":0}},2]'
    fin, opcode, payload = client.frame()
    assert (fin, opcode, payload) == (True, 0x2, "hé".encode())
    client.send(b'424["shout","plain"]')
    assert client.text() == '434["PLAIN"]'


def test_client_close_is_answered_with_the_same_code_and_no_http_after(raw):
    client = raw().open()
    client.sock.sendall(client_frame(0x8, struct.pack("!H", 1000) + b"bye"))
    assert client.expect_close() == 1000
    # the connection ends after the close frame: no stray HTTP response
    assert b"HTTP/1.1" not in client.rest()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (client_frame(0x1, b"42", mask=False), 1002),  # unmasked client frame
        (client_frame(0x1, b"42", rsv=0x40), 1002),  # RSV1 without an extension
        (client_frame(0x0, b"42"), 1002),  # continuation of nothing
        (client_frame(0x3, b"42"), 1002),  # reserved opcode
        (client_frame(0x9, b"x" * 126), 1002),  # control frame over 125 bytes
        (client_frame(0x9, b"x", fin=False), 1002),  # fragmented control frame
        (client_frame(0x1, b'42["message","\xff\xfe"]'), 1007),  # not UTF-8
        (client_frame(0x8, struct.pack("!H", 999)), 1002),  # invalid close code
        (client_frame(0x8, struct.pack("!H", 1000) + b"\xff"), 1007),  # bad reason
    ],
)
def test_protocol_errors_close_with_the_right_code(raw, frame, code):
    client = raw().open()
    client.sock.sendall(frame)
    assert client.expect_close() == code
    assert b"HTTP/1.1" not in client.rest()


def test_new_message_inside_a_fragmented_one_is_refused(raw):
    client = raw().open()
    client.sock.sendall(client_frame(0x1, b"42", fin=False))
    client.sock.sendall(client_frame(0x1, b"42"))
    assert client.expect_close() == 1002


def test_oversize_message_is_refused_from_its_header(raw):
    client = raw().open()
    # announce 10 MB (SOCKETIO_MAX_MESSAGE_BYTES is 100,000) and send none of
    # it: the answer must come from the header alone, nothing is buffered
    client.sock.sendall(struct.pack("!BBQ", 0x81, 0x80 | 127, 10_000_000) + os.urandom(4))
    assert client.expect_close() == 1009


def test_oversize_fragmented_message_is_refused(raw):
    client = raw().open()
    client.sock.sendall(client_frame(0x1, b"4" + b"2" * 60_000, fin=False))
    client.sock.sendall(client_frame(0x0, b"2" * 60_000))
    assert client.expect_close() == 1009


def test_bad_handshake_gets_an_http_error(basic_server):
    with socket.create_connection(("127.0.0.1", basic_server.port), timeout=5) as sock:
        sock.sendall(
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"
        )
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 400")


def test_a_client_that_stops_reading_holds_up_nobody(raw):
    """A subscriber that reads nothing while megabytes are broadcast: the
    others get everything at once, and it still gets every message, in
    order, once it reads (its frames wait in the server for it)."""
    stalled = raw(rcvbuf=4096).open()
    reader = raw().open()
    sender = raw().open()
    for client in (stalled, reader, sender):
        assert client.ack(client.emit("wsio:subscribe", "room-flood")) == [{"ok": True}]
    chunk = "x" * 50_000
    count = 120  # 6 MB: far beyond the kernel buffers of the stalled client
    started = time.monotonic()
    for i in range(count):
        ack = sender.emit("message", {"op": "broadcast_channel", "data": {"i": i, "pad": chunk}})
        sender.ack(ack)
    got = []
    while len(got) < count:
        text = reader.text()
        if text.startswith('42["message"'):
            got.append(json.loads(text[2:])[1]["i"])
    assert got == list(range(count))
    assert time.monotonic() - started < 30
    got = []
    while len(got) < count:
        text = stalled.text()
        if text.startswith('42["message"'):
            got.append(json.loads(text[2:])[1]["i"])
    assert got == list(range(count))
