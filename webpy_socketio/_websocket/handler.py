"""The ``gevent.pywsgi`` handler that lets a request become a websocket.

:class:`~webpy_socketio.server.SocketIOServer` serves every request with
:class:`WebSocketHandler`. For an upgrade request the handler offers itself
in the environ under :data:`HANDLER_KEY`; the engine's websocket transport
takes the raw connection from it (:meth:`WebSocketHandler.take_over`), and
once it has, the handler writes no HTTP response of its own after the
application returns and leaves the connection to the transport, which
closes it.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from typing import Any

from gevent import pywsgi
from gevent import socket as gsocket

from .connection import READ_SIZE

#: environ key under which :class:`WebSocketHandler` offers itself.
HANDLER_KEY = "webpy_socketio.handler"

#: The kernel send buffer asked for each accepted connection, in bytes
#: (``SOCKETIO_SEND_BUFFER_BYTES``; None leaves the kernel's own sizing,
#: which lets a client that does not read hold megabytes of kernel memory).
SEND_BUFFER_BYTES: int | None = 256 * 1024


#: At most this many header fields in a request, each line at most
#: :data:`MAX_HEADER_LINE` bytes (http.client's limits, which pywsgi used).
MAX_HEADERS = 100
MAX_HEADER_LINE = 65536
#: the header fields pywsgi puts in the environ without the HTTP_ prefix
_UNPREFIXED = frozenset(("CONTENT_TYPE", "CONTENT_LENGTH"))


class RequestHeaders:
    """A request's header fields, with what pywsgi's handler uses of
    ``http.client.HTTPMessage`` (``get``, ``getheader``, ``typeheader``,
    ``del``, ``headers``, ``status``), read without the email package's
    parser: that parser was the largest part of the CPU time of a
    long-polling request, whose every poll is a request.

    Names are matched without regard to case; an obsolete folded line
    continues the previous field (joined with a space, as RFC 7230 allows);
    a line that is not a field, a name with white space, too many fields or
    too long a line set :attr:`status`, which pywsgi answers with a 400.
    """

    __slots__ = ("_headers", "status")

    def __init__(self, fields: list[tuple[str, str]] | None = None, status: str = "") -> None:
        self._headers = fields if fields is not None else []
        #: why the header block is invalid ("" when it is not)
        self.status = status

    @classmethod
    def read(cls, rfile: Any) -> RequestHeaders:
        """Read the header block (up to its blank line) from ``rfile``."""
        fields: list[tuple[str, str]] = []
        while True:
            line = rfile.readline(MAX_HEADER_LINE + 1)
            if len(line) > MAX_HEADER_LINE:
                return cls(fields, "Line too long")
            if line == b"\r\n" or line == b"\n" or not line:
                return cls(fields)
            if line[0] in (32, 9):  # a space or a tab: a folded line
                if not fields:
                    return cls(fields, "Invalid header line")
                name, value = fields[-1]
                fields[-1] = (name, f"{value} {line.strip().decode('latin-1')}")
                continue
            if len(fields) >= MAX_HEADERS:
                return cls(fields, "Too many headers")
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip() or b" " in name:
                return cls(fields, "Invalid header line")
            fields.append((name.decode("latin-1"), value.strip().decode("latin-1")))

    def get(self, name: str, default: Any = None) -> Any:
        name = name.lower()
        for key, value in self._headers:
            if key.lower() == name:
                return value
        return default

    getheader = get

    @property
    def typeheader(self) -> str | None:
        return self.get("content-type")  # type: ignore[no-any-return]

    def __delitem__(self, name: str) -> None:
        name = name.lower()
        self._headers = [(k, v) for k, v in self._headers if k.lower() != name]

    @property
    def headers(self) -> Iterator[str]:
        for key, value in self._headers:
            yield f"{key}: {value}\r\n"


class WebSocketHandler(pywsgi.WSGIHandler):
    """The pywsgi handler of :class:`~webpy_socketio.server.SocketIOServer`.

    For an upgrade request it puts itself in the environ, so the websocket
    transport can take the raw connection; once it has, no HTTP response is
    written after the application returns, and the connection is the
    transport's to close.
    """

    rfile: Any
    headers: Any

    upgraded = False

    def handle(self) -> None:
        # pywsgi sends a response's headers and its body in two writes. With
        # Nagle's algorithm on, the body then waits for the client to ACK the
        # headers, which a client with nothing to send delays by 40 ms: every
        # long-polling request on a kept-alive connection took 40 ms more.
        try:
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # not TCP (a UNIX socket listener)
        if SEND_BUFFER_BYTES is not None:
            try:
                self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
            except OSError:
                pass
        super().handle()

    def MessageClass(self, fp: Any, *args: Any) -> RequestHeaders:  # noqa: N802 (pywsgi's name)
        return RequestHeaders.read(fp)

    def _headers(self) -> Iterator[tuple[str, str]]:
        # the environ's HTTP_ keys; a name with "_" is dropped, as pywsgi
        # does (it could pass for another header once "-" becomes "_")
        for name, value in self.headers._headers:
            if "_" in name:
                continue
            key = name.replace("-", "_").upper()
            if key not in _UNPREFIXED:
                yield "HTTP_" + key, value

    def _check_http_version(self) -> bool:
        if self.request_version in ("HTTP/1.1", "HTTP/1.0"):
            return True
        # pywsgi reads "HTTP/1" (no minor version) as a 1-tuple and fails on
        # it with an IndexError, which it answers with a 400 but also prints
        # as a traceback: any client could fill the log with them
        try:
            return bool(super()._check_http_version())
        except (IndexError, ValueError):
            return False

    def log_request(self) -> None:
        # with log=None pywsgi still formats every request's line (a clock
        # read and a date format) for a log that writes nothing
        if getattr(self.server, "request_log", True):
            super().log_request()

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Any:
        write = super().start_response(status, headers, exc_info)
        if (
            self.close_connection
            and self.request_version != "HTTP/1.0"
            and not any(name.lower() == b"connection" for name, _ in self.response_headers)
        ):
            # pywsgi closes the connection after this response (the client
            # asked for it) but said nothing: HTTP/1.1 wants the header, and
            # clients that pool connections (Node's fetch) otherwise reuse
            # the closed socket and fail with "socket hang up"
            self.response_headers.append((b"Connection", b"close"))
        return write

    def run_application(self) -> None:
        if self.environ.get("HTTP_UPGRADE", "").lower() == "websocket":
            self.environ[HANDLER_KEY] = self
        super().run_application()

    def process_result(self) -> None:
        if self.upgraded:
            self.close_connection = True
            return
        super().process_result()

    def take_over(self, headers: list[tuple[str, str]]) -> tuple[Any, bytes]:
        """Write the 101 response; return the gevent socket and the bytes
        the client sent after its request that were already read ahead."""
        sock = self.socket
        early = b""
        rfile = self.rfile
        # The request was read through a buffered reader; keep what it holds
        # beyond the headers, then let it go: its 8 KB buffer would otherwise
        # live as long as the websocket. Non-blocking, so an empty buffer
        # does not wait for the client.
        timeout = sock.timeout
        sock.settimeout(0.0)
        try:
            early = rfile.peek(READ_SIZE) or b""
            if early:
                rfile.read(len(early))
        except (OSError, ValueError):
            early = b""
        finally:
            sock.settimeout(timeout)
        try:
            rfile.close()
        except OSError:
            pass
        self.rfile = None
        self.wsgi_input.rfile = None
        self.headers = None  # parsed into the environ already
        self.environ["wsgi.input"] = io.BytesIO()
        lines = ["HTTP/1.1 101 Switching Protocols"]
        lines += [f"{name}: {value}" for name, value in headers]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        self.upgraded = True
        self.status = "101 Switching Protocols"
        self.close_connection = True
        # The connection leaves pywsgi: a socket object of its own on the
        # same descriptor, which pywsgi's handler (ending with this request)
        # no longer closes: the websocket may outlive this greenlet (an idle
        # connection parks, :meth:`.WebSocket.park`); its owner closes it.
        # The environ (kept by the session) lets the handler go.
        self.environ.pop(HANDLER_KEY, None)
        own = gsocket.socket(sock.family, sock.type, sock.proto, fileno=sock.detach())
        return own, early
