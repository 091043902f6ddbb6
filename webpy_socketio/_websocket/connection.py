"""One server-side WebSocket connection (RFC 6455) on a gevent socket.

engine.io's stock gevent transport goes through simple-websocket and
wsproto, which run one extra greenlet per connection and build every frame
in Python objects. Here the greenlet that has the connection's input reads
its frames (an idle connection has none: it parks, :meth:`WebSocket.park`,
and a reader greenlet takes it when input arrives, :class:`Readers`), and
writes go straight to the non-blocking socket: a frame is only queued
(and a short-lived greenlet started to flush it) when the kernel's send
buffer is full, so a slow client never holds up anybody else and its own
frames stay in order.

:class:`WebSocket` does framing, fragmentation, ping/pong, the close
handshake, UTF-8 checks and the size limit (checked from the frame header,
before any of a too large frame is buffered). It knows nothing of HTTP
servers or of Engine.IO: :mod:`.handler` takes the connection over from
``gevent.pywsgi``, and the engine's transport adapter
(:mod:`webpy_socketio._engine.transport`) drives it.

No extensions are negotiated (no permessage-deflate), like Node
socket.io's default.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import struct
from collections import deque
from collections.abc import Callable
from itertools import islice
from typing import Any

import gevent
from greenlet import greenlet

logger = logging.getLogger("webpy_socketio")

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_NO_STATUS = 1005
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011

#: Bytes a client may leave unread before it is disconnected: the kernel's
#: buffers are full and this much more is queued in the process
#: (``SOCKETIO_MAX_QUEUED_BYTES``; :func:`configure` changes it).
MAX_PENDING_BYTES = 16 * 1024 * 1024
#: Bytes queued for all clients of the process together before the clients
#: with the largest queues are disconnected (``SOCKETIO_MAX_QUEUED_BYTES_TOTAL``).
MAX_TOTAL_PENDING_BYTES = 64 * 1024 * 1024
#: Once the total is reached, clients are disconnected, largest queue first,
#: until it is back under this share of the limit (so one shedding frees
#: room for a while instead of cutting one client per write).
SHED_TO = 0.75
#: Buffers handed to the kernel in one ``sendmsg`` call, at most ...
IOV_BATCH = 64
#: ... and about this many bytes (one buffer may take it past). On loopback
#: the kernel does the receiving side's work inside the sender's call, so a
#: large call holds the event loop: 200 slow readers catching up with 512 KB
#: calls (64 frames of 8 KB) held healthy clients' broadcasts back 100 to
#: 500 ms (benchmarks/run.py --tests trickle); with 64 KB calls, under 25 ms.
SEND_BATCH_BYTES = 64 * 1024
#: Bytes a flusher writes before it lets other greenlets run.
FLUSH_TURN = 1024 * 1024
#: Seconds to wait for the client's answer to our close frame.
CLOSE_TIMEOUT = 3.0

#: Bytes asked of the kernel per read.
READ_SIZE = 65536
#: Messages a connection may take from input it has already read before it
#: lets the other connections run: a client that keeps sending would
#: otherwise keep the event loop (gevent's recv does not switch while data
#: is ready), and every other client would wait for it.
FAIR_TURN = 4


def next_turn() -> None:
    """Let every other greenlet and the pending I/O run, then continue (a
    zero sleep may resume before the loop polls for I/O; a timer does not)."""
    gevent.sleep(0.000001)


class ProtocolError(Exception):
    """The peer broke RFC 6455; ``code`` is the close code to send."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class ConnectionClosed(Exception):
    """The connection is closed (or closing) and gives no more messages."""


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value for a client's key."""
    digest = hashlib.sha1(key.encode("ascii") + GUID).digest()
    return base64.b64encode(digest).decode("ascii")


def encode_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A server frame: never masked, so the bytes for one message are the
    same for every recipient."""
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        return bytes((first, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", first, 126, n) + payload
    return struct.pack("!BBQ", first, 127, n) + payload


def encode_message(message: str | bytes) -> bytes:
    """One whole message as a frame: text for str, binary for bytes."""
    if isinstance(message, str):
        return encode_frame(OP_TEXT, message.encode("utf-8"))
    return encode_frame(OP_BINARY, bytes(message))


def unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``mask``, repeated."""
    n = len(payload)
    if not n:
        return b""
    # one big-integer XOR runs in C, much faster than a byte loop
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def _valid_close_code(code: int) -> bool:
    if 1000 <= code <= 1014:
        return code not in (1004, 1005, 1006)
    return 3000 <= code <= 4999


class Backlog:
    """The bytes queued in this process for every websocket, and who holds
    them.

    A frame shared by several recipients (a broadcast's) is one bytes
    object, never copied per client: it counts once in :attr:`total` (the
    memory the queues really hold) for as long as any queue holds it, and in
    full in each client's own count (what that client is behind by).
    """

    def __init__(self) -> None:
        #: bytes of the frames queued for all websockets together, each once
        self.total = 0
        #: id(frame) -> [its size, how many queues hold it]
        self._refs: dict[int, list[int]] = {}
        #: the websockets that have bytes queued
        self.holders: set[WebSocket] = set()
        #: clients disconnected because the total reached its limit
        self.shed = 0
        #: clients disconnected because their own queue reached its limit
        self.dropped = 0

    def hold(self, frame: bytes) -> None:
        """A queue took ``frame`` (or a view of it)."""
        entry = self._refs.get(id(frame))
        if entry is not None:
            entry[1] += 1
            return
        size = len(frame)
        self._refs[id(frame)] = [size, 1]
        self.total += size
        if self.total > MAX_TOTAL_PENDING_BYTES:
            self.shed_largest()

    def release(self, frame: bytes) -> None:
        """A queue let ``frame`` go (written, or dropped)."""
        entry = self._refs[id(frame)]
        entry[1] -= 1
        if not entry[1]:
            del self._refs[id(frame)]
            self.total -= entry[0]

    def shed_largest(self) -> None:
        """Disconnect the clients with the largest queues until the total is
        back under :data:`SHED_TO` of its limit; one log line says who."""
        target = MAX_TOTAL_PENDING_BYTES * SHED_TO
        cut: list[str] = []
        for ws in sorted(self.holders, key=lambda w: w._pending_bytes, reverse=True):
            if self.total <= target:
                break
            cut.append(f"{ws.peer} ({ws._pending_bytes / 1048576:.1f} MB)")
            ws.abort()
        self.shed += len(cut)
        if cut:
            logger.warning(
                "The bytes queued for all clients reached SOCKETIO_MAX_QUEUED_BYTES_TOTAL "
                "(%d MB): disconnected %d client(s) with the largest queues: %s",
                MAX_TOTAL_PENDING_BYTES // 1048576,
                len(cut),
                ", ".join(cut[:10]) + (" ..." if len(cut) > 10 else ""),
            )


#: this process's queued bytes (read by the metrics)
BACKLOG = Backlog()


def _batch(pending: deque[bytes | memoryview]) -> list[bytes | memoryview]:
    """The buffers at the front of ``pending`` for one ``sendmsg`` call: at
    most :data:`IOV_BATCH` of them, about :data:`SEND_BATCH_BYTES` in all."""
    batch = []
    size = 0
    for item in islice(pending, IOV_BATCH):
        batch.append(item)
        size += len(item)
        if size >= SEND_BATCH_BYTES:
            break
    return batch


def _frame_of(item: bytes | memoryview) -> Any:
    """The frame object a queued item is (or is a view of)."""
    return item.obj if type(item) is memoryview else item


class Traffic:
    """Packets and bytes in and out, counted where they pass (plain integer
    additions: this runs for every frame). The long-polling ones are
    counted by the engine's polling code."""

    __slots__ = (
        "packets_in",
        "bytes_in",
        "packets_out",
        "bytes_out",
        "poll_packets_in",
        "poll_bytes_in",
        "poll_packets_out",
        "poll_bytes_out",
    )

    def __init__(self) -> None:
        self.packets_in = self.bytes_in = self.packets_out = self.bytes_out = 0
        self.poll_packets_in = self.poll_bytes_in = 0
        self.poll_packets_out = self.poll_bytes_out = 0


#: this process's traffic (read by the metrics and the Admin UI)
TRAFFIC = Traffic()


def configure(per_client: int | None = None, total: int | None = None) -> None:
    """Set the queue limits (the settings, applied by the engine)."""
    global MAX_PENDING_BYTES, MAX_TOTAL_PENDING_BYTES
    if per_client is not None:
        MAX_PENDING_BYTES = per_client
    if total is not None:
        MAX_TOTAL_PENDING_BYTES = total
        if BACKLOG.total > total:
            BACKLOG.shed_largest()


_TASK = object()


class Readers:
    """The greenlets that read parked connections once they have input.

    A greenlet that is done with a connection (it parked again, or ended)
    waits here for the next one instead of ending, up to :attr:`keep` of
    them: a new greenlet costs Python a fresh frame stack (an ``mmap`` and,
    when it ends, a ``munmap`` and the page faults in between), which took
    a third of the echo rate when every message had a new greenlet. The
    ones kept hold a few KB each, however many connections there are.
    """

    def __init__(self, keep: int = 64) -> None:
        self.keep = keep
        self.idle: list[greenlet] = []

    def run(self, task: Callable[[], None]) -> None:
        """Run ``task`` in a reader greenlet now (called in the hub; back
        here when the task is done or waits)."""
        reader = self.idle.pop() if self.idle else greenlet(self._serve)
        reader.switch(_TASK, task)

    def _serve(self, tag: object, task: Callable[[], None]) -> None:
        me = gevent.getcurrent()
        hub = gevent.get_hub()
        idle = self.idle
        while tag is _TASK:
            try:
                task()
            except Exception:
                logger.exception("error reading a websocket")
            if len(idle) >= self.keep:
                return
            idle.append(me)
            try:
                got = hub.switch()
            except BaseException:
                # something else than a task woke it (a timer a handler
                # left behind threw into it): this one just ends
                got = None
            if type(got) is tuple and len(got) == 2:
                tag, task = got
            else:
                tag = None
            if tag is not _TASK and me in idle:
                idle.remove(me)


#: this process's reader greenlets
READERS = Readers()


class WebSocket:
    """One upgraded connection, server side.

    :param sock: the gevent socket, already past the HTTP handshake.
    :param max_message_size: a callable returning the largest message
        accepted, in bytes (read per message, so a live settings change
        applies); a bigger one closes the connection with 1009.
    :param timeout: seconds without any data from the client before the
        connection is considered dead (None: no limit).
    :param initial: bytes already read from the connection, read first.
    """

    def __init__(
        self,
        sock: Any,
        max_message_size: Callable[[], int] | None = None,
        timeout: float | None = None,
        initial: bytes = b"",
    ) -> None:
        self.sock = sock
        # the non-blocking OS socket under gevent's wrapper, for writes that
        # must never switch greenlets
        self._raw = getattr(sock, "_sock", sock)
        # how gevent's own recv waits for a readable socket (with the
        # socket's timeout); without it, reads just try the recv first
        self._wait = getattr(sock, "_wait", None)
        self._read_event = getattr(sock, "_read_event", None)
        if self._read_event is None:
            self._wait = None
        self._write_event = getattr(sock, "_write_event", None)
        self._limit = max_message_size
        self._buf = initial
        self._pos = 0
        #: frames (or the unsent rest of one, as a memoryview) waiting for
        #: the kernel, oldest first; shared frames are the same objects for
        #: every recipient
        self._pending: deque[bytes | memoryview] | None = None
        self._pending_bytes = 0
        self._flusher: gevent.Greenlet | None = None
        #: who the client is, for log lines (set by the owner)
        self.peer = "?"
        #: the close code we sent, once we did
        self.close_sent: int | None = None
        #: the close code the client sent, once it did
        self.close_received: int | None = None
        self.broken = False
        #: messages read since this connection last waited for input
        self._streak = 0
        #: set by the owner once it stopped reading and the socket is released
        self.finished = False
        #: what :meth:`park` runs, in a new greenlet, once input arrives
        self.on_readable: Callable[[], None] | None = None
        # the socket was found readable while parked: read without waiting
        self._readable = False
        sock.settimeout(timeout)

    # -- writing ----------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self.close_sent is not None or self.broken

    def write(self, data: bytes) -> None:
        """Write encoded frame bytes now if the kernel takes them, else queue
        them behind what is already waiting (order is kept). Never waits."""
        if self.closed:
            return
        traffic = TRAFFIC
        traffic.packets_out += 1
        traffic.bytes_out += len(data)
        if self._pending is not None:
            self._queue(data)
            return
        try:
            sent = self._raw.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.abort()
            return
        if sent < len(data):
            self._pending = deque()
            BACKLOG.holders.add(self)
            # the rest of a shared frame is a view on it, not a copy
            self._queue(memoryview(data)[sent:] if sent else data)
            if self._pending is not None:
                self._flusher = gevent.spawn(self._flush)

    def _queue(self, data: bytes | memoryview) -> None:
        assert self._pending is not None
        n = len(data)
        if self._pending_bytes + n > MAX_PENDING_BYTES:
            # the client reads far slower than we write: let it go rather
            # than buffer without limit
            BACKLOG.dropped += 1
            logger.warning(
                "Disconnected %s: it fell %.1f MB behind (SOCKETIO_MAX_QUEUED_BYTES)",
                self.peer,
                self._pending_bytes / 1048576,
            )
            self.abort()
            return
        self._pending.append(data)
        self._pending_bytes += n
        BACKLOG.hold(_frame_of(data))

    def _sent(self, n: int) -> None:
        """``n`` bytes from the front of the queue reached the kernel."""
        pending = self._pending
        assert pending is not None
        self._pending_bytes -= n
        while n:
            head = pending[0]
            size = len(head)
            if size <= n:
                pending.popleft()
                BACKLOG.release(_frame_of(head))
                n -= size
            else:
                pending[0] = memoryview(head)[n:]
                n = 0

    def _flush(self) -> None:
        """Write the queue out as the kernel takes it: a batch of buffers per
        system call (no joined copy), waiting for the socket to be writable
        in between, so a slow client costs one wake-up per buffer's worth."""
        pending = self._pending
        raw = self._raw
        wait = self.sock._wait if self._write_event is not None else None
        turn = 0
        try:
            while pending and not self.broken:
                if wait is None:
                    chunk = bytes(pending[0])
                    self.sock.sendall(chunk)
                    self._sent(len(chunk))
                    continue
                try:
                    sent = raw.sendmsg(_batch(pending))
                except BlockingIOError:
                    wait(self._write_event)
                    turn = 0
                    continue
                self._sent(sent)
                turn += sent
                if turn >= FLUSH_TURN:
                    # a fast reader of a long queue: others get a turn too
                    turn = 0
                    gevent.sleep(0.0001)
        except OSError:
            self.abort()
        finally:
            self._release()
            self._flusher = None

    def _release(self) -> None:
        """Forget the queue (written, or dropped with the connection)."""
        if self._pending is not None:
            self._drop_queue()
            self._pending = None
        BACKLOG.holders.discard(self)

    def _drop_queue(self) -> None:
        pending = self._pending
        assert pending is not None
        for item in pending:
            BACKLOG.release(_frame_of(item))
        pending.clear()
        self._pending_bytes = 0

    def flush(self, timeout: float | None = None) -> None:
        """Wait (at most ``timeout`` seconds) until queued bytes are written."""
        flusher = self._flusher
        if flusher is not None and flusher is not gevent.getcurrent():
            flusher.join(timeout)

    def send(self, message: str | bytes) -> None:
        """Send one message: a text frame for str, binary for bytes."""
        self.write(encode_message(message))

    def ping(self, payload: bytes = b"") -> None:
        self.write(encode_frame(OP_PING, payload))

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Start the close handshake: send a close frame after whatever is
        queued. :meth:`receive` then returns None once the client answers
        (or after :data:`CLOSE_TIMEOUT`)."""
        if self.closed:
            return
        payload = b"" if code == CLOSE_NO_STATUS else struct.pack("!H", code)
        self.write(encode_frame(OP_CLOSE, payload + reason.encode("utf-8")[:120]))
        self.close_sent = code
        if self.sock.timeout is None or self.sock.timeout > CLOSE_TIMEOUT:
            self.sock.settimeout(CLOSE_TIMEOUT)
        # a reader already blocked in recv() keeps its old timeout, so make
        # sure a client that never answers is dropped anyway
        gevent.spawn_later(CLOSE_TIMEOUT, self._expire)

    def _expire(self) -> None:
        if not self.finished:
            self.abort()

    def abort(self) -> None:
        """Drop the connection without a handshake (it is broken or the
        client stopped reading); the reader then sees the end of the stream."""
        if self.broken:
            return
        self.broken = True
        if self._pending is not None:
            # the flusher (if one runs) ends on the broken connection
            self._drop_queue()
            BACKLOG.holders.discard(self)
        try:
            self._raw.shutdown(2)  # SHUT_RDWR wakes a greenlet blocked in recv
        except OSError:
            pass

    # -- reading ----------------------------------------------------------

    def _fill(self, n: int) -> None:
        """Make at least ``n`` unread bytes available."""
        while len(self._buf) - self._pos < n:
            if self._pos >= len(self._buf) and self._wait is not None:
                if self._readable:
                    # woken from :meth:`park`: the data is there
                    self._readable = False
                else:
                    # everything read: a client that waits for our answer
                    # has sent nothing more yet, so wait for data before the
                    # recv rather than after a recv that fails (one system
                    # call and one exception less per message; echo +10%)
                    self._wait(self._read_event)
                    self._streak = 0
            data = self.sock.recv(max(READ_SIZE, n))
            if not data:
                raise ConnectionClosed("the client closed the connection")
            if self._pos >= len(self._buf):
                self._buf, self._pos = data, 0
            else:
                self._buf = self._buf[self._pos :] + data
                self._pos = 0

    def idle(self) -> bool:
        """Whether everything read from the client so far is consumed and
        the socket is not known to be readable (the next message needs to
        wait for input)."""
        return not self._readable and self._pos >= len(self._buf)

    def park(self) -> bool:
        """Wait for the client's next input without a greenlet: once the
        socket is readable, :attr:`on_readable` runs in a reader greenlet
        (:class:`Readers`; it reads with :meth:`receive` as usual). An idle
        connection then holds no stack of its own: a greenlet waiting for
        it would keep a copy of its C stack and its frames, three quarters
        of the memory of an idle connection. False when this connection cannot park (no gevent
        socket, or nothing to run); the caller then just reads."""
        event = self._read_event
        if event is None or self.on_readable is None or event.callback is not None:
            return False
        event.start(self._wake)
        return True

    def _wake(self) -> None:
        # in the hub, from the loop: the parked socket is readable
        event = self._read_event
        assert event is not None  # parked on it
        event.stop()
        self._readable = True
        self._streak = 0
        run = self.on_readable
        if run is not None:
            READERS.run(run)

    def _take(self, n: int) -> bytes:
        self._fill(n)
        start = self._pos
        end = self._pos = start + n
        buf = self._buf
        if end == len(buf):
            # all read: drop the chunk rather than keep it while idle
            self._buf, self._pos = b"", 0
            return buf if start == 0 else buf[start:]
        return buf[start:end]

    def _read_frame(self, limit: int | None, already: int) -> tuple[bool, int, bytes]:
        """Read one frame; return (fin, opcode, unmasked payload)."""
        head = self._take(2)
        b0, b1 = head[0], head[1]
        fin = bool(b0 & 0x80)
        opcode = b0 & 0x0F
        if b0 & 0x70:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "reserved bits set without an extension")
        if not b1 & 0x80:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
        length = b1 & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._take(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._take(8))
            if length >> 63:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "frame length out of range")
        if opcode >= 0x8:
            if not fin or length > 125:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "bad control frame")
        elif limit is not None and already + length > limit:
            # refuse before reading (and buffering) the payload
            raise ProtocolError(CLOSE_TOO_BIG, "message too big")
        mask = self._take(4)
        return fin, opcode, unmask(self._take(length), mask)

    def receive(self) -> str | bytes | None:
        """The next whole message (str for text, bytes for binary), or None
        once the connection is closed. Pings are answered here."""
        fragments: list[bytes] | None = None
        message_opcode = 0
        size = 0
        self._streak += 1
        if self._streak > FAIR_TURN:
            # a turn's worth of messages without waiting: the others first
            self._streak = 0
            next_turn()
        try:
            while True:
                limit = self._limit() if self._limit is not None else None
                fin, opcode, payload = self._read_frame(limit, size)
                if opcode == OP_PING:
                    if not self.closed:
                        self.write(encode_frame(OP_PONG, payload))
                    continue
                if opcode == OP_PONG:
                    continue
                if opcode == OP_CLOSE:
                    self._closed_by_client(payload)
                    return None
                if self.close_sent is not None:
                    continue  # data after our close frame is discarded
                if opcode == OP_CONT:
                    if fragments is None:
                        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "continuation of nothing")
                elif opcode in (OP_TEXT, OP_BINARY):
                    if fragments is not None:
                        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "new message inside a message")
                    message_opcode = opcode
                    if fin:
                        return self._message(opcode, payload)
                    fragments = []
                else:
                    raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
                fragments.append(payload)
                size += len(payload)
                if fin:
                    return self._message(message_opcode, b"".join(fragments))
        except ProtocolError as exc:
            self.close(exc.code, exc.reason)
            return None
        except (ConnectionClosed, OSError):
            # a dead or vanished client (including a read timeout)
            self.broken = True
            return None

    def _message(self, opcode: int, payload: bytes) -> str | bytes:
        traffic = TRAFFIC
        traffic.packets_in += 1
        traffic.bytes_in += len(payload)
        if opcode == OP_BINARY:
            return payload
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(CLOSE_INVALID_DATA, "text message is not UTF-8") from None

    def _closed_by_client(self, payload: bytes) -> None:
        code = CLOSE_NO_STATUS
        if len(payload) == 1:
            code = CLOSE_PROTOCOL_ERROR
        elif len(payload) >= 2:
            (code,) = struct.unpack("!H", payload[:2])
            if not _valid_close_code(code):
                code = CLOSE_PROTOCOL_ERROR
            else:
                try:
                    payload[2:].decode("utf-8")
                except UnicodeDecodeError:
                    code = CLOSE_INVALID_DATA
        self.close_received = code
        # answer with the same code (RFC 6455 5.5.1), or with the error
        self.close(CLOSE_NORMAL if code == CLOSE_NO_STATUS else code)


def handshake_error(environ: dict[str, Any]) -> str | None:
    """Why the upgrade request is not a valid RFC 6455 handshake, or None."""
    if environ.get("REQUEST_METHOD") != "GET":
        return "websocket upgrades must be GET requests"
    if environ.get("HTTP_UPGRADE", "").lower() != "websocket":
        return "missing Upgrade: websocket"
    # a list of tokens ("keep-alive, Upgrade"), as engine.io reads it too
    tokens = [t.strip() for t in environ.get("HTTP_CONNECTION", "").lower().split(",")]
    if "upgrade" not in tokens:
        return "missing Connection: upgrade"
    if environ.get("HTTP_SEC_WEBSOCKET_VERSION") != "13":
        return "unsupported Sec-WebSocket-Version (13 is required)"
    key = environ.get("HTTP_SEC_WEBSOCKET_KEY", "")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError
    except ValueError:
        return "bad Sec-WebSocket-Key"
    return None
