"""engine.io's websocket transport, on the project's RFC 6455 connection.

engine.io picks its websocket class from its async driver's table
(``server._async["websocket"]``) and uses it as ``cls(handler,
server)(environ, start_response)``; the handler then calls ``send``,
``wait`` and ``close`` on it. :class:`EngineWebSocket` has that shape: it
takes the raw connection from :class:`~webpy_socketio._websocket.handler.WebSocketHandler`,
writes the 101 response and runs engine.io's handler (or the fast path's
read loop, :mod:`.direct`) on a :class:`~webpy_socketio._websocket.connection.WebSocket`.
Under a server that is not ours (no handler in the environ) it falls back
to engine.io's own transport.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._websocket.connection import (
    CLOSE_GOING_AWAY,
    CLOSE_TIMEOUT,
    READ_SIZE,
    WebSocket,
    accept_key,
    handshake_error,
)
from .._websocket.handler import HANDLER_KEY, WebSocketHandler
from .packets import CLOSED, MalformedPacket, log_invalid

#: the Engine.IO packet types (anything else is not Engine.IO at all; a
#: type a client has no business sending, such as OPEN, is ignored)
_CLIENT_TYPES = frozenset("0123456")


class EngineWebSocket:
    """engine.io's websocket class: ``EngineWebSocket(app, server)(environ,
    start_response)`` upgrades the connection and calls ``app(self)``,
    which uses :meth:`send`, :meth:`wait` and :meth:`close`.

    :param app: engine.io's per-socket websocket handler.
    :param server: the ``engineio.Server``; its ``max_http_buffer_size``
        is the message size limit.
    """

    #: engine.io's own transport, used under servers that are not ours
    fallback: Any = None
    #: the Engine.IO session this websocket carries, for log lines
    session_id: str = "?"
    #: set by the handler when reading goes on in another greenlet (the
    #: connection parked): that one calls :meth:`finish`
    detached = False
    owner: Any = None

    def __init__(self, app: Callable[[Any], Any], server: Any) -> None:
        self.app = app
        self.server = server
        self.ws: WebSocket | None = None
        self.environ: dict[str, Any] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        handler = environ.get(HANDLER_KEY)
        if not isinstance(handler, WebSocketHandler):
            if self.fallback is None:
                start_response("400 Bad Request", [("Content-Type", "text/plain")])
                return [b"websocket is not available on this server"]
            return self.fallback(self.app, self.server)(environ, start_response)
        problem = handshake_error(environ)
        if problem is not None:
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [problem.encode()]
        sock, early = handler.take_over(
            [
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", accept_key(environ["HTTP_SEC_WEBSOCKET_KEY"])),
            ]
        )
        server = self.server
        self.environ = environ
        #: the pywsgi server that accepted the connection
        self.owner = handler.server
        # no read timeout: engine.io's heartbeat finds dead clients and
        # closes them (a timeout would cost a timer on every read)
        self.ws = WebSocket(
            sock, max_message_size=lambda: server.max_http_buffer_size, initial=early
        )
        self.ws.peer = f"{environ.get('REMOTE_ADDR', '?')} session {self.session_id}"
        try:
            return self.app(self)
        finally:
            if not self.detached:
                self.finish()

    def finish(self) -> None:
        """End the connection once nothing reads it any more: whatever
        happened, tell the client (if it can still hear us), give it a
        moment to take what is queued, and close the socket."""
        ws = self.ws
        assert ws is not None
        ws.close(CLOSE_GOING_AWAY)
        ws.flush(CLOSE_TIMEOUT)
        ws.finished = True
        raw = getattr(ws.sock, "_sock", None)
        try:
            if raw is not None:
                # what the client still sent is read out first: closing
                # with unread input would reset the connection
                raw.recv(READ_SIZE)
        except OSError:
            pass
        ws.sock.close()

    # -- the interface engine.io's handler uses -----------------------------

    def send(self, message: str | bytes) -> None:
        assert self.ws is not None
        if self.ws.closed:
            raise OSError("websocket closed")
        self.ws.send(message)

    def wait(self) -> str | bytes | None:
        """The next message, or None once the connection is closed. A text
        message that is not an Engine.IO packet (a packet type a client may
        send, then its data) closes the connection, on either path."""
        assert self.ws is not None
        message = self.ws.receive()
        if type(message) is str and (not message or message[0] not in _CLIENT_TYPES):
            log_invalid(
                f"{self.environ.get('REMOTE_ADDR', '?')}, Engine.IO session {self.session_id}",
                MalformedPacket(f"not an Engine.IO packet: {message[:40]!r}"),
                action=CLOSED,
            )
            self.ws.close()
            return None
        return message

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
