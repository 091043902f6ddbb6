"""An in-process client for testing an application's handlers without a
server, a browser or a network.

It speaks the real Socket.IO protocol to the real engine and the real
dispatcher; only the transport is replaced by in-memory lists. Handlers run
synchronously, so whatever they send has arrived when the call returns::

    from webpy_socketio.testing import SocketIOTestClient

    def test_room_chat():
        alice, bob = SocketIOTestClient(), SocketIOTestClient()
        assert alice.subscribe("room-1") == {"ok": True}
        assert bob.subscribe("room-1") == {"ok": True}
        alice.send({"text": "hi"})
        assert bob.get_messages() == [{"text": "hi"}]

Import the application's ``events`` module first, so its handlers are
registered. Out-of-band sends (``webpy_socketio.broadcast`` and friends)
made by handlers or by web.py code reach test clients too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from . import _engine as boundary
from . import settings
from .engine import get_engine
from .exceptions import ImproperlyConfigured
from .wire import DEFAULT_NAMESPACE, SUBSCRIBE, UNSUBSCRIBE

_NO_ACK = object()

# eio_sid -> client, for the sessions whose transport is replaced here
_routes: dict[str, SocketIOTestClient] = {}


def _route(eio_sid: str) -> Any:
    client = _routes.get(eio_sid)
    return None if client is None else client._receive


class SocketIOTestClient:
    """One simulated browser tab.

    :param headers: request headers of the connect request
        (``{"Cookie": "webpy_session_id=..."}``).
    :param auth: the ``auth`` payload a browser passes to ``io()``.
    :param query: query parameters of the connect request.
    :param remote_addr: the client's address as handlers see it.
    :param environ: extra WSGI environ keys.
    :param namespace: the namespace to connect (``io("/admin")``); ``"/"``
        by default.
    :param connect: connect at once (the default); otherwise call
        :meth:`connect`.
    :raises ImproperlyConfigured: when a message queue is configured
        (deliveries would then be asynchronous).
    """

    def __init__(
        self,
        headers: Mapping[str, str] | None = None,
        auth: Any = None,
        query: Mapping[str, str] | None = None,
        remote_addr: str = "127.0.0.1",
        environ: Mapping[str, Any] | None = None,
        connect: bool = True,
        namespace: str = DEFAULT_NAMESPACE,
    ) -> None:
        if settings.get("SOCKETIO_MESSAGE_QUEUE"):
            raise ImproperlyConfigured(
                "SocketIOTestClient delivers messages synchronously and cannot work with "
                "SOCKETIO_MESSAGE_QUEUE set; configure(SOCKETIO_MESSAGE_QUEUE=None) in your "
                "tests' setup."
            )
        self.engine = get_engine()
        boundary.attach_test_transport(self.engine, _route)
        self.namespace = namespace
        self.eio_sid = boundary.new_session_id(self.engine)
        self.sid: str | None = None
        self.connected = False
        self.connect_error: Any = None
        self.received: list[dict[str, Any]] = []
        self._acks: dict[int, Any] = {}
        self._next_ack = 0
        self.environ = self._build_environ(headers or {}, query or {}, remote_addr, environ or {})
        self._auth = auth
        if connect:
            self.connect()

    def __enter__(self) -> SocketIOTestClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.disconnect()

    def __repr__(self) -> str:
        state = "connected" if self.connected else "not connected"
        return f"<SocketIOTestClient {self.sid} {state}>"

    @staticmethod
    def _build_environ(
        headers: Mapping[str, str],
        query: Mapping[str, str],
        remote_addr: str,
        extra: Mapping[str, Any],
    ) -> dict[str, Any]:
        environ: dict[str, Any] = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/socket.io/",
            "QUERY_STRING": urlencode({"EIO": "4", "transport": "websocket", **query}),
            "REMOTE_ADDR": remote_addr,
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "testserver",
            "wsgi.url_scheme": "http",
        }
        for name, value in headers.items():
            key = name.upper().replace("-", "_")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = "HTTP_" + key
            environ[key] = value
        environ.update(extra)
        return environ

    # -- protocol ---------------------------------------------------------------

    def _send(self, packet_type: int, data: Any = None, ack_id: int | None = None) -> None:
        pkt = self.engine.packet_class(packet_type, data=data, namespace=self.namespace, id=ack_id)
        encoded = pkt.encode()
        for part in encoded if isinstance(encoded, list) else [encoded]:
            boundary.feed_test_session(self.engine, self.eio_sid, part)

    def _receive(self, pkt: Any) -> None:
        from socketio import packet

        if pkt.packet_type == packet.CONNECT:
            self.connected = True
            self.sid = (pkt.data or {}).get("sid")
        elif pkt.packet_type == packet.CONNECT_ERROR:
            self.connected = False
            self.connect_error = pkt.data
        elif pkt.packet_type == packet.DISCONNECT:
            self._close()
        elif pkt.packet_type in (packet.EVENT, packet.BINARY_EVENT):
            # a round trip through JSON, as a real client would see the data
            data = json.loads(json.dumps(pkt.data)) if pkt.packet_type == packet.EVENT else pkt.data
            self.received.append({"name": data[0], "args": data[1:]})
        elif pkt.packet_type in (packet.ACK, packet.BINARY_ACK):
            self._acks[pkt.id] = pkt.data

    def connect(self) -> bool:
        """Connect; return whether the server accepted (else see
        :attr:`connect_error`)."""
        from socketio import packet

        _routes[self.eio_sid] = self
        boundary.open_test_session(self.engine, self.eio_sid, self.environ)
        self._send(packet.CONNECT, self._auth)
        if not self.connected:
            self._close()
        return self.connected

    def disconnect(self) -> None:
        """Close the connection as a browser tab closing would."""
        self._close()

    def _close(self) -> None:
        self.connected = False
        _routes.pop(self.eio_sid, None)
        boundary.close_test_session(self.engine, self.eio_sid)

    # -- what a page does -----------------------------------------------------------

    def emit(self, event: str, *args: Any, ack: bool = True) -> Any:
        """Send a named event; return the acknowledgement (None when the
        handler returned nothing), or nothing with ``ack=False``."""
        from socketio import packet

        if not self.connected:
            raise RuntimeError("the test client is not connected")
        ack_id = None
        if ack:
            self._next_ack += 1
            ack_id = self._next_ack
        self._send(packet.EVENT, [event, *args], ack_id)
        if ack_id is None:
            return None
        reply = self._acks.pop(ack_id, _NO_ACK)
        if reply is _NO_ACK:
            return None
        return reply[0] if len(reply) == 1 else (tuple(reply) if reply else None)

    def send(self, message: Any, ack: bool = True) -> Any:
        """``socket.send(message)``: the ``message`` event."""
        return self.emit("message", message, ack=ack)

    def subscribe(self, channel: Any, since: Any = None) -> Any:
        """``socket.subscribe(channel)``; returns the server's reply. With
        ``since`` (a position of a channel with history) the server replays
        what came after it first."""
        if since is None:
            return self.emit(SUBSCRIBE, channel)
        return self.emit(SUBSCRIBE, channel, {"since": since})

    def unsubscribe(self, channel: Any) -> Any:
        return self.emit(UNSUBSCRIBE, channel)

    def get_received(self) -> list[dict[str, Any]]:
        """Every event received since the last call, as
        ``{"name": ..., "args": [...]}``, and forget them."""
        received, self.received = self.received, []
        return received

    def get_messages(self) -> list[Any]:
        """The payloads of the ``message`` events received since the last
        call; other events are kept for :meth:`get_received`."""
        messages = [
            e["args"][0] if e["args"] else None for e in self.received if e["name"] == "message"
        ]
        self.received = [e for e in self.received if e["name"] != "message"]
        return messages
