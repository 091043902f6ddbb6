"""A raw Engine.IO 4 / Socket.IO 5 client on plain sockets.

The official client can only say valid things; this one sends whatever it is
given (broken frames, unknown packets, bodies that are not UTF-8, requests
with a forged Origin) and reports exactly what the server answered. It only
uses the ``socket`` module, so the fuzzer runs it in plain threads and the
churn driver runs thousands of them as greenlets under gevent's patching.

Every read has a deadline: a server that stops answering shows up as
:class:`Timeout`, never as a hung test.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
RECORD_SEP = "\x1e"  # separates packets in a long-polling body


class Closed(Exception):
    """The server closed the connection (``code`` is its close code, if it
    sent a close frame, else None)."""

    def __init__(self, how: str, code: int | None = None) -> None:
        super().__init__(how if code is None else f"{how} (close code {code})")
        self.code = code


class Timeout(Exception):
    """Nothing the caller waited for arrived before the deadline."""


class Refused(Exception):
    """The server answered a handshake with an HTTP error."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:200]!r}")
        self.status = status
        self.body = body


# -- bytes on a socket ---------------------------------------------------------


class Stream:
    """A TCP connection with a read buffer and a deadline on every read."""

    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = bytearray()

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise Closed(f"write failed: {exc}") from None

    def _more(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout("read deadline passed")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            raise Timeout("read deadline passed") from None
        except OSError as exc:
            raise Closed(f"read failed: {exc}") from None
        if not data:
            raise Closed("end of stream")
        self.buf += data

    def read_exact(self, n: int, deadline: float) -> bytes:
        while len(self.buf) < n:
            self._more(deadline)
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_until(self, marker: bytes, deadline: float, limit: int = 1 << 20) -> bytes:
        while True:
            i = self.buf.find(marker)
            if i >= 0:
                data = bytes(self.buf[: i + len(marker)])
                del self.buf[: i + len(marker)]
                return data
            if len(self.buf) > limit:
                raise Closed("no end of headers")
            self._more(deadline)

    def wait_eof(self, timeout: float) -> bool:
        """Read and drop data until the server closes; True if it did
        within ``timeout``."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._more(deadline)
                self.buf.clear()
        except Closed:
            return True
        except Timeout:
            return False

    def shutdown_write(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def reset(self) -> None:
        """Close with a TCP RST instead of a FIN, like a crashed peer."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()


# -- HTTP/1.1 ---------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def http_request(
    method: str, target: str, host: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    hdrs = dict(headers or {})
    if method == "POST" and not any(k.lower() == "content-length" for k in hdrs):
        hdrs["Content-Length"] = str(len(body))
    lines += [f"{k}: {v}" for k, v in hdrs.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def read_response(stream: Stream, deadline: float) -> Response:
    head = stream.read_until(b"\r\n\r\n", deadline).decode("latin-1")
    status_line, *header_lines = head.split("\r\n")
    try:
        status = int(status_line.split()[1])
    except (IndexError, ValueError):
        raise Closed(f"bad status line {status_line!r}") from None
    headers = {}
    for line in header_lines:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if status in (101, 204, 304):
        return Response(status, headers, b"")
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            size = int(stream.read_until(b"\r\n", deadline).strip().split(b";")[0], 16)
            body += stream.read_exact(size, deadline)
            stream.read_exact(2, deadline)
            if size == 0:
                return Response(status, headers, bytes(body))
    if "content-length" in headers:
        return Response(
            status, headers, stream.read_exact(int(headers["content-length"]), deadline)
        )
    # no length: the body runs to the end of the connection
    body = bytearray(stream.buf)
    stream.buf.clear()
    try:
        while True:
            stream._more(deadline)
            body += stream.buf
            stream.buf.clear()
    except Closed:
        pass
    return Response(status, headers, bytes(body))


# -- RFC 6455 frames -----------------------------------------------------------------


def ws_frame(
    opcode: int,
    payload: bytes,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = b"\0\0\0\0",
    length: int | None = None,
) -> bytes:
    """A client frame. ``mask=None`` sends it unmasked (a protocol error);
    ``length`` overrides the length field (to lie about the size). The
    default all-zero mask is legal and keeps the payload bytes as they are."""
    n = len(payload) if length is None else length
    first = (0x80 if fin else 0) | (rsv & 0x7) << 4 | opcode & 0xF
    mbit = 0x80 if mask is not None else 0
    if n < 126:
        head = bytes((first, mbit | n))
    elif n < 65536:
        head = struct.pack("!BBH", first, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", first, mbit | 127, n)
    if mask is None:
        return head + payload
    if mask != b"\0\0\0\0" and payload:
        key = (mask * (len(payload) // 4 + 1))[: len(payload)]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(
            len(payload), "big"
        )
    return head + mask + payload


def text_frame(text: str) -> bytes:
    return ws_frame(OP_TEXT, text.encode("utf-8", "surrogatepass"))


def read_ws_frame(stream: Stream, deadline: float) -> tuple[bool, int, bytes]:
    b0, b1 = stream.read_exact(2, deadline)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", stream.read_exact(2, deadline))
    elif n == 127:
        (n,) = struct.unpack("!Q", stream.read_exact(8, deadline))
    if b1 & 0x80:  # servers never mask; read the key anyway to stay in step
        stream.read_exact(4, deadline)
    return bool(b0 & 0x80), b0 & 0x0F, stream.read_exact(n, deadline)


def ws_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


# -- Socket.IO packets ---------------------------------------------------------------


def event_packet(event: str, *args: Any, ack: int | None = None) -> str:
    """``42[ack]["event", ...args]``: a Socket.IO EVENT inside an Engine.IO
    MESSAGE, on the default namespace."""
    return "42" + ("" if ack is None else str(ack)) + json.dumps([event, *args])


@dataclass
class Inbox:
    """What a session received besides what it was waiting for."""

    events: list[Any] = field(default_factory=list)
    acks: dict[int, Any] = field(default_factory=dict)
    connect_errors: int = 0
    noops: int = 0
    disconnected: bool = False
    sid: str | None = None

    def take(self, text: str) -> str | None:
        """File one Engine.IO text packet; return "ping" when the server
        asked for a pong."""
        if text == "2":
            return "ping"
        if text == "6":
            self.noops += 1
        if text.startswith("42"):
            try:
                self.events.append(json.loads(text[2:]))
            except ValueError:
                self.events.append(text)
        elif text.startswith("43"):
            i = 2
            while i < len(text) and text[i].isdigit():
                i += 1
            if i > 2:
                try:
                    self.acks[int(text[2:i])] = json.loads(text[i:])
                except ValueError:
                    self.acks[int(text[2:i])] = text[i:]
        elif text.startswith("40"):
            try:
                self.sid = json.loads(text[2:])["sid"]
            except (ValueError, KeyError, TypeError):
                pass
        elif text.startswith("44"):
            self.connect_errors += 1
        elif text.startswith("41"):
            self.disconnected = True
        return None


class Session:
    """Common to both transports: the Engine.IO handshake's values, the
    Socket.IO connection and acknowledged calls."""

    eio_sid: str = ""
    ping_interval: float = 25.0

    def __init__(self) -> None:
        self.inbox = Inbox()
        self._next_ack = 0

    # subclasses provide these
    def send_packet(self, text: str) -> None:
        raise NotImplementedError

    def pump(self, until: Callable[[], bool], timeout: float) -> None:
        raise NotImplementedError

    def _opened(self, text: str) -> None:
        if not text.startswith("0"):
            raise Closed(f"expected an OPEN packet, got {text[:80]!r}")
        info = json.loads(text[1:])
        self.eio_sid = info["sid"]
        self.ping_interval = info.get("pingInterval", 25000) / 1000

    def connect(self, auth: Any = None, timeout: float = 5.0) -> str:
        """Join the default namespace; return the Socket.IO session id."""
        self.inbox.sid = None
        self.send_packet("40" + ("" if auth is None else json.dumps(auth)))
        errors = self.inbox.connect_errors
        self.pump(lambda: self.inbox.sid is not None or self.inbox.connect_errors > errors, timeout)
        if self.inbox.sid is None:
            raise Refused(0, b"connect refused")
        self.inbox.disconnected = False
        return self.inbox.sid

    def next_ack(self) -> int:
        self._next_ack += 1
        return self._next_ack

    def call(self, event: str, *args: Any, timeout: float = 5.0) -> Any:
        """Emit an event with an ack id and wait for the acknowledgement."""
        n = self.next_ack()
        self.send_packet(event_packet(event, *args, ack=n))
        return self.wait_ack(n, timeout)

    def wait_ack(self, n: int, timeout: float) -> Any:
        self.pump(lambda: n in self.inbox.acks, timeout)
        return self.inbox.acks.pop(n)


class WsSession(Session):
    """Engine.IO over a websocket from the first request
    (``transport=websocket``), as the official client's websocket-only mode."""

    def __init__(
        self,
        host: str,
        port: int,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        path: str = "/socket.io/",
        timeout: float = 5.0,
    ) -> None:
        super().__init__()
        self.stream = Stream(host, port, timeout)
        self.timeout = timeout
        q = {"EIO": "4", "transport": "websocket", **(query or {})}
        hdrs = {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": ws_key(),
            "Sec-WebSocket-Version": "13",
            **(headers or {}),
        }
        deadline = time.monotonic() + timeout
        try:
            self.stream.send(http_request("GET", f"{path}?{urlencode(q)}", f"{host}:{port}", hdrs))
            response = read_response(self.stream, deadline)
            if response.status != 101:
                raise Refused(response.status, response.body)
            if q.get("sid") is None:  # an upgrade of a polling session gets no OPEN
                self._opened(self.read_text(deadline))
        except BaseException:
            self.stream.close()
            raise

    def read_text(self, deadline: float) -> str:
        """The next text message (pings are answered, binary ones skipped)."""
        while True:
            fin, opcode, payload = read_ws_frame(self.stream, deadline)
            if opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                raise Closed("close frame", code)
            if opcode == OP_PING:
                self.stream.send(ws_frame(OP_PONG, payload))
                continue
            if opcode == OP_TEXT:
                return payload.decode("utf-8")

    def send_packet(self, text: str) -> None:
        self.stream.send(text_frame(text))

    def send_raw(self, data: bytes) -> None:
        self.stream.send(data)

    def pump(self, until: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            text = self.read_text(deadline)
            if self.inbox.take(text) == "ping":
                self.send_packet("3")

    def close(self, how: str = "clean") -> None:
        """``clean``: Socket.IO disconnect, then a close handshake;
        ``reset``: a TCP reset with nothing said; ``fin``: a bare TCP close."""
        if how == "clean":
            try:
                self.send_packet("41")
                self.stream.send(ws_frame(OP_CLOSE, struct.pack("!H", 1000)))
                self.stream.wait_eof(1.0)
            except (Closed, Timeout):
                pass
            self.stream.close()
        elif how == "reset":
            self.stream.reset()
        else:
            self.stream.close()


class PollSession(Session):
    """Engine.IO over HTTP long-polling, as the official client does it: POSTs
    on one kept-alive connection, and a GET on another that can be left
    pending (:meth:`start_poll`) while the POSTs go out."""

    def __init__(
        self,
        host: str,
        port: int,
        headers: dict[str, str] | None = None,
        path: str = "/socket.io/",
        timeout: float = 5.0,
        query: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.host, self.port, self.path = host, port, path
        self.headers = dict(headers or {})
        self.extra_query = dict(query or {})
        self.timeout = timeout
        self.stream = Stream(host, port, timeout)
        self.get_stream: Stream | None = None
        self.polling = False
        response = self.request("GET", {"EIO": "4", "transport": "polling", **self.extra_query})
        if response.status != 200:
            self.stream.close()
            raise Refused(response.status, response.body)
        packets = response.body.decode("utf-8").split(RECORD_SEP)
        self._opened(packets[0])
        for text in packets[1:]:
            self.inbox.take(text)

    def _request_bytes(self, method: str, query: dict[str, str], body: bytes = b"") -> bytes:
        headers = dict(self.headers)
        if method == "POST":
            headers.setdefault("Content-Type", "text/plain;charset=UTF-8")
        target = f"{self.path}?{urlencode(query)}"
        return http_request(method, target, f"{self.host}:{self.port}", headers, body)

    def request(
        self, method: str, query: dict[str, str], body: bytes = b"", timeout: float | None = None
    ) -> Response:
        deadline = time.monotonic() + (timeout or self.timeout)
        self.stream.send(self._request_bytes(method, query, body))
        response = read_response(self.stream, deadline)
        if response.headers.get("connection", "").lower() == "close":
            # pywsgi closes after some error answers; carry on with a new one
            self.stream.close()
            self.stream = Stream(self.host, self.port, self.timeout)
        return response

    def post(self, body: bytes) -> Response:
        return self.request("POST", self._query(), body)

    def _query(self) -> dict[str, str]:
        return {"EIO": "4", "transport": "polling", "sid": self.eio_sid, **self.extra_query}

    def send_packet(self, text: str) -> None:
        response = self.post(text.encode("utf-8", "surrogatepass"))
        if response.status != 200:
            raise Closed(f"POST answered {response.status}: {response.body[:100]!r}")

    def start_poll(self) -> None:
        """Send a GET and leave it pending; :meth:`pump` reads its answer."""
        if self.polling:
            return
        if self.get_stream is None:
            self.get_stream = Stream(self.host, self.port, self.timeout)
        self.get_stream.send(self._request_bytes("GET", self._query()))
        self.polling = True

    def pump(self, until: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            self.start_poll()
            assert self.get_stream is not None
            response = read_response(self.get_stream, deadline)
            self.polling = False
            if response.headers.get("connection", "").lower() == "close":
                self.get_stream.close()
                self.get_stream = None
            if response.status != 200:
                raise Closed(f"poll answered {response.status}: {response.body[:100]!r}")
            for text in response.body.decode("utf-8").split(RECORD_SEP):
                if text == "1":
                    raise Closed("Engine.IO CLOSE packet")
                if self.inbox.take(text) == "ping":
                    self.send_packet("3")

    def _close_streams(self, reset: bool = False) -> None:
        for stream in (self.stream, self.get_stream):
            if stream is not None:
                stream.reset() if reset else stream.close()

    def close(self, how: str = "clean") -> None:
        """``clean``: Socket.IO disconnect and Engine.IO close; ``reset``: a
        TCP reset, after which the session just stops polling."""
        if how == "clean":
            try:
                self.post(("41" + RECORD_SEP + "1").encode())
            except (Closed, Timeout):
                pass
        self._close_streams(reset=how == "reset")
