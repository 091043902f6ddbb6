"""Raw Engine.IO 4 / Socket.IO 5 clients for the conformance tests.

The bytes on the wire come from :mod:`rawsio` (tests/reliability/rawsio.py:
``Stream``, ``http_request``, ``read_response``, websocket frames); this
module adds what the conformance tests need on top of it:

* one-shot HTTP requests and requests left pending (:class:`Pending`), to
  put two requests of one session at the server at the same time;
* :class:`WsClient` and :class:`PollClient`, one Engine.IO session each,
  with the same interface (``send``, ``send_many``, ``recv``,
  ``expect_closed``), so a Socket.IO test runs unchanged over both
  transports. Each has a reader thread that answers the server's pings at
  once (``auto_pong``), since the conformance server's ping timeout is
  200 ms; what else arrives is queued in order, text packets as ``str``
  (``"42[...]"``), binary ones as ``bytes`` (decoded from ``b<base64>``
  over long-polling);
* a strict parser of the Socket.IO packet format (:func:`parse_sio`).

Every wait has a deadline (:data:`DEADLINE` unless told), far above what a
loaded machine needs: a defect shows up as a failed assertion, never as a
hung test.
"""

from __future__ import annotations

import base64
import contextlib
import json
import queue
import re
import select
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent / "reliability"))

from rawsio import (  # noqa: E402
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RECORD_SEP,
    Closed,
    Response,
    Stream,
    Timeout,
    http_request,
    read_response,
    read_ws_frame,
    text_frame,
    ws_frame,
    ws_key,
)

__all__ = [
    "DEADLINE",
    "RECORD_SEP",
    "Closed",
    "Pending",
    "PollClient",
    "Race",
    "Response",
    "SioPacket",
    "Timeout",
    "WsClient",
    "decode_payload",
    "encode_payload",
    "open_polling",
    "parse_sio",
    "request",
    "retry_races",
    "ws_handshake",
]

T = TypeVar("T")

HOST = "127.0.0.1"
PATH = "/socket.io/"
#: how long anything the server owes us may take (a loaded CI machine)
DEADLINE = 10.0


def target(query: str | dict[str, str], path: str = PATH) -> str:
    return path + "?" + (query if isinstance(query, str) else urlencode(query))


def session_query(sid: str, transport: str = "polling") -> dict[str, str]:
    return {"EIO": "4", "transport": transport, "sid": sid}


class Race(Exception):
    """Something outside the rule under test came between two steps that
    had to be adjacent (a ping of the server, or, on a starved machine, a
    pong that reached the 200 ms ping timeout late); the attempt proves
    nothing either way."""


def retry_races(attempt: Callable[[], T], attempts: int = 3) -> T:
    """Run ``attempt`` until it is not spoiled by a :class:`Race`; a server
    that fails every attempt fails the test."""
    for _ in range(attempts - 1):
        try:
            return attempt()
        except Race:
            continue
    try:
        return attempt()
    except Race as exc:
        raise AssertionError(f"every one of {attempts} attempts went wrong: {exc}") from None


# -- plain HTTP -----------------------------------------------------------------


def request(
    port: int,
    method: str,
    query: str | dict[str, str],
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    timeout: float = DEADLINE,
) -> Response:
    """One request on a connection of its own, closed afterwards."""
    stream = Stream(HOST, port, timeout)
    try:
        hdrs = dict(headers or {})
        if body and method not in ("POST",):
            hdrs.setdefault("Content-Length", str(len(body)))
        stream.send(http_request(method, target(query), f"{HOST}:{port}", hdrs, body))
        return read_response(stream, time.monotonic() + timeout)
    finally:
        stream.close()


def get(port: int, sid: str, timeout: float = DEADLINE) -> Response:
    return request(port, "GET", session_query(sid), timeout=timeout)


def post(port: int, sid: str, body: str | bytes, headers: dict[str, str] | None = None) -> Response:
    data = body.encode("utf-8") if isinstance(body, str) else body
    return request(port, "POST", session_query(sid), data, headers)


class Pending:
    """A request sent on a connection of its own whose answer is read later,
    so that the test can do other things while the server holds it."""

    def __init__(
        self,
        port: int,
        method: str,
        query: str | dict[str, str],
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.stream = Stream(HOST, port, DEADLINE)
        self.stream.send(http_request(method, target(query), f"{HOST}:{port}", headers, body))
        self._response: Response | None = None

    def answered(self, wait: float = 0.0) -> bool:
        """Whether the server has begun to answer (bytes are readable)."""
        if self._response is not None or self.stream.buf:
            return True
        readable, _, _ = select.select([self.stream.sock], [], [], wait)
        return bool(readable)

    def result(self, timeout: float = DEADLINE) -> Response:
        """The answer; raises :class:`Timeout` if none came in time and
        :class:`Closed` if the server dropped the connection instead."""
        if self._response is None:
            self._response = read_response(self.stream, time.monotonic() + timeout)
            self.stream.close()
        return self._response

    def close(self) -> None:
        self.stream.close()


# -- long-polling payloads ---------------------------------------------------------


def encode_payload(packets: list[str | bytes]) -> bytes:
    """Engine.IO packets as one long-polling body: text packets as they
    are, binary ones as ``b`` + base64, separated by ``\\x1e``."""
    parts = [
        "b" + base64.b64encode(p).decode("ascii") if isinstance(p, bytes) else p for p in packets
    ]
    return RECORD_SEP.join(parts).encode("utf-8")


def decode_payload(body: bytes) -> list[str | bytes]:
    """A long-polling body as packets (binary ones decoded to bytes)."""
    if not body:
        return []
    out: list[str | bytes] = []
    for part in body.decode("utf-8").split(RECORD_SEP):
        out.append(base64.b64decode(part[1:], validate=True) if part.startswith("b") else part)
    return out


def open_polling(port: int) -> tuple[str, dict[str, Any]]:
    """A long-polling handshake: the session id and the OPEN packet's data."""
    response = request(port, "GET", {"EIO": "4", "transport": "polling"})
    assert response.status == 200, f"handshake answered {response.status}: {response.body!r}"
    packets = decode_payload(response.body)
    assert packets and isinstance(packets[0], str) and packets[0].startswith("0"), packets
    info = json.loads(packets[0][1:])
    return info["sid"], info


# -- sessions with a reader thread ----------------------------------------------------


class _Session:
    """What both transports share: the inbox, the close state, and the
    reader thread that answers pings."""

    transport = ""

    def __init__(self, auto_pong: bool) -> None:
        self.auto_pong = auto_pong
        self.inbox: queue.Queue[str | bytes] = queue.Queue()
        self.closed = threading.Event()
        self.close_reason = ""
        self.pings = 0
        self.noops = 0
        self.eio_sid = ""
        self.open_info: dict[str, Any] = {}
        self._stop = False
        self._reader: threading.Thread | None = None

    def _start_reader(self) -> None:
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()

    def _read_loop(self) -> None:
        raise NotImplementedError

    def _file(self, pkt: str | bytes) -> None:
        """One packet from the server."""
        if pkt == "2":
            self.pings += 1
            if self.auto_pong:
                with contextlib.suppress(Closed, Timeout, OSError):
                    self.send("3")
                return
        elif pkt == "6":
            self.noops += 1
        elif pkt == "1":
            self._closed("Engine.IO CLOSE packet")
            return
        self.inbox.put(pkt)

    def _closed(self, why: str) -> None:
        if not self.closed.is_set():
            self.close_reason = why
            self.closed.set()

    # the interface the tests use

    def send(self, pkt: str | bytes) -> None:
        raise NotImplementedError

    def send_many(self, pkts: list[str | bytes]) -> None:
        raise NotImplementedError

    def recv(self, timeout: float = DEADLINE) -> str | bytes:
        """The next packet (other than pings answered by the reader)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.inbox.get(timeout=0.05)
            except queue.Empty:
                pass
            if self.closed.is_set() and self.inbox.empty():
                raise AssertionError(
                    f"the server closed the {self.transport} session ({self.close_reason}) "
                    "instead of sending the packet the test waited for"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no packet from the server within {timeout} s over {self.transport}"
                )

    def recv_text(self, timeout: float = DEADLINE) -> str:
        pkt = self.recv(timeout)
        assert isinstance(pkt, str), f"expected a text packet, got binary {pkt!r}"
        return pkt

    def wait_closed(self, timeout: float = DEADLINE, fail_if: Any = None) -> list[str | bytes]:
        """Wait until the server has closed the session; return what it sent
        meanwhile. AssertionError if it is still open at the deadline, or as
        soon as it sends a packet for which ``fail_if(packet)`` is true (a
        server that answers has not closed)."""
        deadline = time.monotonic() + timeout
        got: list[str | bytes] = []
        while True:
            closed = self.closed.is_set()
            while not self.inbox.empty():
                pkt = self.inbox.get()
                got.append(pkt)
                if fail_if is not None and fail_if(pkt):
                    raise AssertionError(
                        f"the server answered {pkt!r} instead of closing the "
                        f"{self.transport} session (received {got!r})"
                    )
            if closed:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the server kept the {self.transport} session open for {timeout} s "
                    f"(received {got!r})"
                )
            self.closed.wait(0.02)

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> _Session:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def ws_handshake(
    port: int,
    query: str | dict[str, str],
    headers: dict[str, str] | None = None,
    timeout: float = DEADLINE,
) -> tuple[Stream, Response]:
    """A websocket upgrade request; the stream and the server's answer."""
    stream = Stream(HOST, port, timeout)
    hdrs = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": ws_key(),
        "Sec-WebSocket-Version": "13",
        **(headers or {}),
    }
    try:
        stream.send(http_request("GET", target(query), f"{HOST}:{port}", hdrs))
        return stream, read_response(stream, time.monotonic() + timeout)
    except BaseException:
        stream.close()
        raise


class WsClient(_Session):
    """An Engine.IO session over a websocket: a new one
    (``transport=websocket``), or, with ``sid``, the websocket of an
    upgrade (no OPEN packet then; the test does the probe itself)."""

    transport = "websocket"

    def __init__(
        self,
        port: int,
        sid: str | None = None,
        auto_pong: bool = True,
        query: dict[str, str] | None = None,
    ) -> None:
        super().__init__(auto_pong)
        q = {"EIO": "4", "transport": "websocket", **({"sid": sid} if sid else {}), **(query or {})}
        self.stream, response = ws_handshake(port, q)
        if response.status != 101:
            self.stream.close()
            raise AssertionError(
                f"websocket handshake answered {response.status}: {response.body[:200]!r}"
            )
        self._write_lock = threading.Lock()
        self.close_code: int | None = None
        if sid is None:
            deadline = time.monotonic() + DEADLINE
            first = self._read_message(deadline)
            assert isinstance(first, str) and first.startswith("0"), (
                f"expected the OPEN packet first, got {first!r}"
            )
            self.open_info = json.loads(first[1:])
            self.eio_sid = self.open_info["sid"]
        else:
            self.eio_sid = sid
        self._start_reader()

    def _read_message(self, deadline: float) -> str | bytes | None:
        """The next data message (fragments joined); None once closed."""
        parts: list[bytes] = []
        kind = None
        while True:
            try:
                fin, opcode, payload = read_ws_frame(self.stream, deadline)
            except Closed as exc:
                self._closed(str(exc))
                return None
            if opcode == OP_CLOSE:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                self._closed(f"close frame {self.close_code}")
                with contextlib.suppress(Closed, OSError), self._write_lock:
                    self.stream.send(ws_frame(OP_CLOSE, payload[:2]))
                return None
            if opcode == OP_PING:
                with contextlib.suppress(Closed, OSError), self._write_lock:
                    self.stream.send(ws_frame(OP_PONG, payload))
                continue
            if opcode == OP_PONG:
                continue
            if opcode in (OP_TEXT, OP_BINARY):
                kind = opcode
            parts.append(payload)
            if fin:
                data = b"".join(parts)
                return data.decode("utf-8") if kind == OP_TEXT else data

    def _read_loop(self) -> None:
        while not self._stop:
            try:
                msg = self._read_message(time.monotonic() + 3600)
            except Timeout:
                continue
            except Exception as exc:  # noqa: BLE001 - anything ends the session
                self._closed(f"read error: {exc!r}")
                return
            if msg is None:
                return
            self._file(msg)

    def send(self, pkt: str | bytes) -> None:
        frame = text_frame(pkt) if isinstance(pkt, str) else ws_frame(OP_BINARY, pkt)
        with self._write_lock:
            self.stream.send(frame)

    def send_many(self, pkts: list[str | bytes]) -> None:
        for pkt in pkts:
            self.send(pkt)

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self.stream.sock.shutdown(socket.SHUT_RDWR)
        self.stream.close()


class PollClient(_Session):
    """An Engine.IO session over HTTP long-polling, as a client that keeps a
    GET pending at all times (reader thread) and sends its packets with one
    POST at a time (never two at once: the protocol forbids it)."""

    transport = "polling"

    def __init__(self, port: int, auto_pong: bool = True) -> None:
        super().__init__(auto_pong)
        self.port = port
        self.eio_sid, self.open_info = open_polling(port)
        self._post_lock = threading.Lock()
        self._post_stream: Stream | None = None
        self._get_stream: Stream | None = None
        self.last_status: int | None = None
        self._start_reader()

    def _read_loop(self) -> None:
        query = target(session_query(self.eio_sid))
        host = f"{HOST}:{self.port}"
        while not self._stop:
            try:
                if self._get_stream is None:
                    self._get_stream = Stream(HOST, self.port, DEADLINE)
                self._get_stream.send(http_request("GET", query, host))
                # the server holds a GET for up to pingInterval + pingTimeout
                response = read_response(self._get_stream, time.monotonic() + 3600)
            except (Closed, Timeout, OSError) as exc:
                self._closed(f"poll failed: {exc}")
                return
            if response.headers.get("connection", "").lower() == "close":
                self._get_stream.close()
                self._get_stream = None
            if response.status != 200:
                self.last_status = response.status
                self._closed(f"poll answered {response.status}: {response.body[:100]!r}")
                return
            for pkt in decode_payload(response.body):
                self._file(pkt)
                if self.closed.is_set():
                    return

    def _post(self, body: bytes) -> Response:
        with self._post_lock:
            if self._post_stream is None:
                self._post_stream = Stream(HOST, self.port, DEADLINE)
            stream = self._post_stream
            stream.send(
                http_request(
                    "POST",
                    target(session_query(self.eio_sid)),
                    f"{HOST}:{self.port}",
                    {"Content-Type": "text/plain;charset=UTF-8"},
                    body,
                )
            )
            try:
                response = read_response(stream, time.monotonic() + DEADLINE)
            except (Closed, Timeout):
                stream.close()
                self._post_stream = None
                raise
            if response.headers.get("connection", "").lower() == "close":
                stream.close()
                self._post_stream = None
            return response

    def post(self, pkts: list[str | bytes]) -> Response:
        """Send packets in one POST and return the server's answer as is."""
        return self._post(encode_payload(pkts))

    def send(self, pkt: str | bytes) -> None:
        self.send_many([pkt])

    def send_many(self, pkts: list[str | bytes]) -> None:
        # a POST refused because the server has just closed the session is
        # not the test's concern here: the close shows up in the inbox
        self.post(pkts)

    def close(self) -> None:
        self._stop = True
        if not self.closed.is_set():
            with contextlib.suppress(Closed, Timeout, OSError):
                self._post(b"1")
        for stream in (self._get_stream, self._post_stream):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.sock.shutdown(socket.SHUT_RDWR)
                stream.close()


def client(port: int, transport: str, auto_pong: bool = True) -> WsClient | PollClient:
    if transport == "websocket":
        return WsClient(port, auto_pong=auto_pong)
    return PollClient(port, auto_pong=auto_pong)


# -- Socket.IO packets -----------------------------------------------------------------

_SIO = re.compile(
    r"""(?P<type>[0-9])
        (?:(?P<attachments>[0-9]+)-)?
        (?:(?P<nsp>/[^,]*),)?
        (?P<id>[0-9]+)?
        (?P<data>.*)\Z""",
    re.VERBOSE | re.DOTALL,
)


@dataclass
class SioPacket:
    type: int
    nsp: str
    id: int | None
    data: Any
    attachments: int | None
    raw: str


def parse_sio(pkt: str | bytes) -> SioPacket:
    """An Engine.IO MESSAGE carrying a Socket.IO packet, parsed strictly by
    the v5 format ``<type>[<n>-][<nsp>,][<id>][<json>]``: the namespace is
    present only when it is not ``/``, the attachment count only for the
    binary types."""
    assert isinstance(pkt, str), f"expected a text packet, got binary {pkt!r}"
    assert pkt.startswith("4"), f"expected an Engine.IO MESSAGE packet, got {pkt!r}"
    m = _SIO.match(pkt[1:])
    assert m is not None, f"not a Socket.IO packet: {pkt!r}"
    kind = int(m["type"])
    assert kind <= 6, f"unknown Socket.IO packet type in {pkt!r}"
    attachments = int(m["attachments"]) if m["attachments"] is not None else None
    assert (attachments is not None) == (kind in (5, 6)), (
        f"attachment count present exactly for binary packets: {pkt!r}"
    )
    assert m["nsp"] != "/", f"the main namespace is never written out: {pkt!r}"
    data = json.loads(m["data"]) if m["data"] else None
    return SioPacket(
        kind, m["nsp"] or "/", int(m["id"]) if m["id"] else None, data, attachments, pkt
    )


def placeholder(num: int) -> dict[str, Any]:
    return {"_placeholder": True, "num": num}


def connect_packet(nsp: str = "/", auth: Any = None) -> str:
    """The Engine.IO MESSAGE carrying a Socket.IO CONNECT (``40``,
    ``40/custom,``, with the JSON payload if any)."""
    head = "40" if nsp == "/" else f"40{nsp},"
    return head + ("" if auth is None else json.dumps(auth, separators=(",", ":")))


def sio_connect(
    session: _Session,
    nsp: str = "/",
    auth: Any = None,
    packet: str | None = None,
    timeout: float = DEADLINE,
) -> tuple[SioPacket, SioPacket]:
    """Join ``nsp`` (with ``packet`` as the CONNECT if given); return the
    server's CONNECT packet and the conformance app's ``auth`` event,
    whatever their order (tests that care about it check it themselves).
    Pings that reach the inbox (``auto_pong=False``) are answered."""
    session.send(packet if packet is not None else connect_packet(nsp, auth))
    connect = event = None
    deadline = time.monotonic() + timeout
    while connect is None or event is None:
        raw = session.recv(max(0.0, deadline - time.monotonic()))
        if raw == "2":
            session.send("3")
            continue
        pkt = parse_sio(raw)
        assert pkt.nsp == nsp, f"expected packets of {nsp}, got {pkt.raw!r}"
        if pkt.type == 0:
            connect = pkt
        elif pkt.type == 2 and isinstance(pkt.data, list) and pkt.data[:1] == ["auth"]:
            event = pkt
        else:
            raise AssertionError(f"unexpected packet while connecting to {nsp}: {pkt.raw!r}")
    return connect, event
