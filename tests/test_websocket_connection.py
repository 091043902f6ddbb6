"""The RFC 6455 connection (webpy_socketio/_websocket/connection.py) in
process, over a socket pair: no HTTP, no Engine.IO, every byte chosen by the
test. tests/test_websocket.py drives the same code through a real server."""

from __future__ import annotations

import os
import struct

import gevent
import gevent.event
import pytest
from gevent import socket as gsocket

from webpy_socketio._websocket import connection
from webpy_socketio._websocket.connection import (
    CLOSE_INVALID_DATA,
    CLOSE_NORMAL,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_TOO_BIG,
    MAX_PENDING_BYTES,
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    WebSocket,
    encode_message,
)


def client_frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0) -> bytes:
    """A frame as a client sends it: masked."""
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class Peer:
    """The client end of the pair: writes frames, reads the server's."""

    def __init__(self, sock: gsocket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _need(self, n: int) -> bytes:
        with gevent.Timeout(5):
            while len(self.buf) < n:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise EOFError("the server closed the connection")
                self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def frame(self) -> tuple[int, bytes]:
        b0, b1 = self._need(2)
        assert not b1 & 0x80, "server frames are never masked"
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._need(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._need(8))
        return b0 & 0x0F, self._need(n)

    def close_code(self) -> int:
        opcode, payload = self.frame()
        assert opcode == OP_CLOSE, (opcode, payload)
        return struct.unpack("!H", payload[:2])[0]


@pytest.fixture
def pair():
    server_sock, client_sock = gsocket.socketpair()
    ws = WebSocket(server_sock, max_message_size=lambda: 1000)
    yield ws, Peer(client_sock)
    server_sock.close()
    client_sock.close()


def test_text_and_binary_messages_both_ways(pair):
    ws, peer = pair
    peer.send(client_frame(OP_TEXT, "héllo".encode()) + client_frame(OP_BINARY, b"\x00\xff"))
    assert ws.receive() == "héllo"
    assert ws.receive() == b"\x00\xff"
    ws.send("réponse")
    ws.send(b"\x01\x02")
    assert peer.frame() == (OP_TEXT, "réponse".encode())
    assert peer.frame() == (OP_BINARY, b"\x01\x02")


def test_fragments_are_joined_and_a_ping_between_them_is_answered(pair):
    ws, peer = pair
    peer.send(
        client_frame(OP_TEXT, b"ab", fin=False)
        + client_frame(OP_PING, b"are you there")
        + client_frame(OP_CONT, b"cd", fin=False)
        + client_frame(OP_CONT, b"ef")
    )
    assert ws.receive() == "abcdef"
    assert peer.frame() == (OP_PONG, b"are you there")


def test_a_message_split_over_many_reads_arrives_whole(pair):
    ws, peer = pair
    frame = client_frame(OP_TEXT, b"x" * 900)

    def dribble() -> None:
        for i in range(0, len(frame), 7):
            peer.send(frame[i : i + 7])
            gevent.sleep(0)

    writer = gevent.spawn(dribble)
    assert ws.receive() == "x" * 900
    writer.join(5)


def test_a_parked_connection_is_read_by_a_reader_greenlet_once_input_arrives(pair):
    ws, peer = pair
    got: list[tuple[object, object]] = []
    ws.on_readable = lambda: got.append((ws.receive(), gevent.getcurrent()))
    assert ws.idle()
    assert ws.park()
    assert not ws.park(), "one park at a time"
    gevent.sleep(0.05)
    assert got == [], "nothing was readable yet"
    peer.send(client_frame(OP_TEXT, b"wake up") + client_frame(OP_TEXT, b"second"))
    with gevent.Timeout(5):
        while not got:
            gevent.sleep(0.01)
    message, runner = got[0]
    assert message == "wake up"
    assert runner is not gevent.getcurrent()
    # the second message was read with the first: no need to wait for it
    assert not ws.idle()
    assert ws.receive() == "second"
    assert ws.idle()
    # the reader waits for the next parked connection instead of ending
    assert runner in connection.READERS.idle


def test_readers_are_kept_up_to_their_limit_and_reused():
    readers = connection.Readers(keep=2)
    ran: list[object] = []
    gate = gevent.event.Event()

    def task() -> None:
        ran.append(gevent.getcurrent())
        gate.wait()  # three tasks at once: three readers

    hub = gevent.get_hub()
    for _ in range(3):
        hub.loop.run_callback(readers.run, task)
    gevent.sleep(0.01)
    assert len(set(ran)) == 3 and readers.idle == []
    gate.set()
    gevent.sleep(0.01)
    assert len(readers.idle) == 2, "two kept, the third ended"
    kept = list(readers.idle)
    ran.clear()
    gate.clear()
    hub.loop.run_callback(readers.run, task)
    gevent.sleep(0.01)
    assert ran == [kept[-1]], "a kept reader runs the next task"
    gate.set()
    gevent.sleep(0.01)
    assert not any(g.dead for g in readers.idle) and len(readers.idle) == 2


def test_an_aborted_parked_connection_wakes_and_reads_its_end(pair):
    ws, peer = pair
    ends: list[object] = []
    ws.on_readable = lambda: ends.append(ws.receive())
    assert ws.park()
    ws.abort()
    with gevent.Timeout(5):
        while not ends:
            gevent.sleep(0.01)
    assert ends == [None]
    assert ws.broken


def test_a_connection_with_nothing_to_run_does_not_park(pair):
    ws, _ = pair
    assert ws.on_readable is None
    assert not ws.park()


def test_client_close_is_answered_with_its_code(pair):
    ws, peer = pair
    peer.send(client_frame(OP_CLOSE, struct.pack("!H", 4001) + b"bye"))
    assert ws.receive() is None
    assert ws.close_received == 4001
    assert peer.close_code() == 4001


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (client_frame(OP_TEXT, b"x", rsv=0x40), CLOSE_PROTOCOL_ERROR),  # no extension agreed
        (b"\x81\x01x", CLOSE_PROTOCOL_ERROR),  # not masked
        (client_frame(0x3, b"x"), CLOSE_PROTOCOL_ERROR),  # reserved opcode
        (client_frame(OP_CONT, b"x"), CLOSE_PROTOCOL_ERROR),  # continuation of nothing
        (client_frame(OP_PING, b"x" * 126), CLOSE_PROTOCOL_ERROR),  # control frame too long
        (client_frame(OP_PING, b"x", fin=False), CLOSE_PROTOCOL_ERROR),  # fragmented control
        (client_frame(OP_TEXT, b"\xff\xfe"), CLOSE_INVALID_DATA),  # not UTF-8
        (client_frame(OP_CLOSE, struct.pack("!H", 1005)), CLOSE_PROTOCOL_ERROR),  # reserved code
        (client_frame(OP_CLOSE, b"\x03"), CLOSE_PROTOCOL_ERROR),  # one byte of code
    ],
    ids=["rsv", "unmasked", "opcode", "cont", "long-ping", "frag-ping", "utf8", "code", "short"],
)
def test_protocol_errors_close_with_the_right_code(pair, frame, code):
    ws, peer = pair
    peer.send(frame)
    assert ws.receive() is None
    assert peer.close_code() == code


def test_a_new_message_inside_a_fragmented_one_is_refused(pair):
    ws, peer = pair
    peer.send(client_frame(OP_TEXT, b"a", fin=False) + client_frame(OP_TEXT, b"b"))
    assert ws.receive() is None
    assert peer.close_code() == CLOSE_PROTOCOL_ERROR


def test_an_oversize_message_is_refused_from_its_header(pair):
    ws, peer = pair
    # only the header: 2 GB announced, nothing of it sent or buffered
    peer.send(bytes([0x81, 0x80 | 127]) + struct.pack("!Q", 2**31) + os.urandom(4))
    assert ws.receive() is None
    assert peer.close_code() == CLOSE_TOO_BIG


def test_the_limit_counts_every_fragment(pair):
    ws, peer = pair
    peer.send(client_frame(OP_TEXT, b"a" * 600, fin=False) + client_frame(OP_CONT, b"b" * 600))
    assert ws.receive() is None
    assert peer.close_code() == CLOSE_TOO_BIG


def test_server_close_waits_for_the_clients_answer(pair):
    ws, peer = pair
    ws.close(CLOSE_NORMAL, "done")
    assert peer.close_code() == CLOSE_NORMAL
    assert ws.closed
    peer.send(client_frame(OP_TEXT, b"late") + client_frame(OP_CLOSE, struct.pack("!H", 1000)))
    assert ws.receive() is None  # data after our close frame is discarded


def test_writes_to_a_client_that_does_not_read_are_queued_in_order(pair):
    ws, peer = pair
    frames = [encode_message(f"{i:06d}" + "x" * 4000) for i in range(2000)]  # ~8 MB
    for frame in frames:
        ws.write(frame)  # never waits, whatever the kernel takes
    assert not ws.closed
    received = []
    while len(received) < len(frames):
        opcode, payload = peer.frame()
        received.append(int(payload[:6]))
    assert received == list(range(2000))


def test_a_client_far_behind_is_dropped(pair):
    ws, peer = pair
    chunk = encode_message("y" * 60000)
    for _ in range(MAX_PENDING_BYTES // len(chunk) + 200):
        ws.write(chunk)
        if ws.broken:
            break
    assert ws.broken


# -- queued bytes: shared, counted, bounded ------------------------------------


@pytest.fixture
def backlog_limits():
    """Restore the queue limits a test changes."""
    per_client, total = connection.MAX_PENDING_BYTES, connection.MAX_TOTAL_PENDING_BYTES
    yield
    connection.configure(per_client, total)


def _slow_pairs(n: int) -> list[tuple[WebSocket, gsocket.socket, gsocket.socket]]:
    pairs = []
    for _ in range(n):
        a, b = gsocket.socketpair()
        pairs.append((WebSocket(a), a, b))
    return pairs


def test_a_broadcast_frame_stays_one_object_and_every_queued_byte_is_counted(backlog_limits):
    # 20 clients that read nothing get the same 200 KB frames: each queue
    # holds the shared bytes (or a view of their unsent rest), and the
    # process total is what every queue holds, also while flushers run
    connection.configure(per_client=16 * 1024 * 1024, total=512 * 1024 * 1024)
    before = connection.BACKLOG.total
    pairs = _slow_pairs(20)
    frames = [encode_message(f"{i:04d}" + "z" * 200_000) for i in range(20)]
    try:
        for frame in frames:
            for ws, _, _ in pairs:
                ws.write(frame)
        gevent.sleep(0.2)  # the flushers run and wait for writable sockets
        held = sum(ws._pending_bytes for ws, _, _ in pairs)
        assert held > 20 * 1_000_000  # most of it is still queued, for every client
        # the process holds each shared frame once: what is counted is what
        # the queues really keep alive
        assert connection.BACKLOG.total - before == _distinct(pairs)
        assert _distinct(pairs) <= sum(len(f) for f in frames) < held
        for ws, _, _ in pairs:
            assert sum(len(b) for b in ws._pending) == ws._pending_bytes
            # no private copy: every queued buffer is one of the shared frames
            assert all(any(_shares(item, f) for f in frames) for item in ws._pending)
        # a reader that catches up gets everything, in order, and its bytes
        # leave the count
        ws, a, b = pairs[0]
        peer = Peer(b)
        for i in range(20):
            opcode, payload = peer.frame()
            assert int(payload[:4]) == i
        assert wait_for(lambda: ws._pending is None)
        assert connection.BACKLOG.total - before == _distinct(pairs)
    finally:
        for ws, a, b in pairs:
            ws.abort()
            a.close()
            b.close()
    assert connection.BACKLOG.total == before


def _distinct(pairs) -> int:
    """Bytes of the distinct frames the queues hold."""
    seen = {}
    for ws, _, _ in pairs:
        for item in ws._pending or ():
            base = item.obj if isinstance(item, memoryview) else item
            seen[id(base)] = len(base)
    return sum(seen.values())


def _shares(item: bytes | memoryview, frame: bytes) -> bool:
    base = item.obj if isinstance(item, memoryview) else item
    return base is frame


def wait_for(predicate, timeout: float = 5.0) -> bool:
    with gevent.Timeout(timeout, False):
        while not predicate():
            gevent.sleep(0.01)
    return bool(predicate())


def test_the_total_limit_disconnects_the_largest_queues_first(backlog_limits, caplog):
    connection.configure(per_client=64 * 1024 * 1024, total=8 * 1024 * 1024)
    a, b = gsocket.socketpair()
    healthy = WebSocket(a)
    reader = Peer(b)
    slow = _slow_pairs(4)
    frame = encode_message("q" * 100_000)
    got = []

    def read_all():
        while True:
            opcode, payload = reader.frame()
            got.append(payload)

    reading = gevent.spawn(read_all)
    try:
        with caplog.at_level("WARNING", logger="webpy_socketio"):
            for i in range(150):
                healthy.write(frame)
                # the slow ones fall behind by different amounts
                for k, (ws, _, _) in enumerate(slow):
                    if i % (k + 1) == 0:
                        # a frame of its own (a reply, a private message): a
                        # shared one would count once, whoever holds it
                        ws.write(encode_message("s" * 100_000))
                # the healthy client reads as fast as it is written to
                assert wait_for(lambda n=i + 1: len(got) == n)
        assert not healthy.broken  # its queue never grew: never a candidate
        assert slow[0][0].broken  # the one furthest behind went first
        assert connection.BACKLOG.total <= connection.MAX_TOTAL_PENDING_BYTES
        assert "SOCKETIO_MAX_QUEUED_BYTES_TOTAL" in caplog.text
        assert connection.BACKLOG.shed >= 1
    finally:
        reading.kill()
        for ws, x, y in slow:
            ws.abort()
            x.close()
            y.close()
        a.close()
        b.close()


# -- fair turns ------------------------------------------------------------------


def test_a_connection_with_more_input_lets_the_others_take_turns():
    # a client whose 1,000 messages are all read already, and one whose single
    # message arrives while its reader waits: the second is read after at
    # most a turn of the first (before, the first kept the loop for all
    # 1,000: nothing in its read loop switched while data was ready)
    a_server, a_client = gsocket.socketpair()
    b_server, b_client = gsocket.socketpair()
    order: list[str | bytes | None] = []

    def read(ws: WebSocket, n: int) -> None:
        for _ in range(n):
            order.append(ws.receive())

    polite = gevent.spawn(read, WebSocket(b_server), 1)
    gevent.sleep(0.05)  # waiting for its client
    b_client.sendall(client_frame(OP_TEXT, b"polite"))
    burst = b"".join(client_frame(OP_TEXT, b"g%d" % i) for i in range(1000))
    greedy = gevent.spawn(read, WebSocket(a_server, initial=burst), 1000)
    gevent.joinall([polite, greedy], timeout=10)
    try:
        assert len(order) == 1001
        # a turn or two (the loop may resume the first before it polls for input)
        assert order.index("polite") <= 2 * connection.FAIR_TURN + 2, order.index("polite")
        assert [m for m in order if m != "polite"] == [f"g{i}" for i in range(1000)]
    finally:
        for sock in (a_server, a_client, b_server, b_client):
            sock.close()


def test_a_slow_readers_queue_is_flushed_in_calls_of_bounded_size():
    """One sendmsg call hands the kernel about SEND_BATCH_BYTES: on loopback
    a larger call does the reader's work too and holds the event loop
    (64 queued 8 KB frames went out in one 512 KB call before)."""
    from collections import deque

    big = deque(bytes(8192) for _ in range(64))
    batch = connection._batch(big)
    assert len(batch) == connection.SEND_BATCH_BYTES // 8192
    assert sum(map(len, batch)) == connection.SEND_BATCH_BYTES
    small = deque(bytes(100) for _ in range(200))
    assert len(connection._batch(small)) == connection.IOV_BATCH  # many small ones
    huge = deque([bytes(1 << 20), b"x"])
    assert [len(b) for b in connection._batch(huge)] == [1 << 20]  # one, never split
    assert connection._batch(deque()) == []
