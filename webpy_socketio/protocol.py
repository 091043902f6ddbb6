"""What the engine does with packets that break the protocol.

python-socketio and engine.io answer a malformed packet from a client with
an exception, which engine.io logs with its whole traceback: a dozen lines
per bad packet, formatted at a cost greater than handling the packet, and
burying the tracebacks that matter (a handler's). Here a bad packet is
dropped with one warning line that names the session and the reason (the
traceback is logged at DEBUG level, for whoever needs it). At the Socket.IO
level the connection stays up; a packet Engine.IO cannot even decode ends
the connection, as it does on the websocket transport.

Packets are checked as the reference JavaScript parser checks them: an
event is a list that starts with the event's name, an acknowledgement is a
list, CONNECT carries an object or nothing. Anything else used to reach
python-socketio's handlers and fail there (``'NoneType' object is not
subscriptable``) or in the dispatcher.

Two kinds of HTTP request made engine.io fail with a 500 and a traceback
(:class:`GuardedRequests`): a websocket connect whose ``Connection`` header
lacks the ``upgrade`` token (engine.io created a session, then answered
with polling packets and no status), and a POST for a session that closed
a moment earlier (a ``KeyError``). Both are the client's error: a 400.

The classes here are mixins for :mod:`webpy_socketio.fastpath`'s packet,
server and socket classes.
"""

from __future__ import annotations

import logging
from typing import Any

from engineio import exceptions as eio_exceptions
from socketio import packet as sio_packet

from .events import RESERVED_EVENT_NAMES

logger = logging.getLogger("webpy_socketio")

#: what decoding untrusted text can raise (UnicodeDecodeError, JSON and
#: base64 errors are ValueErrors; deep nesting is a RecursionError)
DECODE_ERRORS = (ValueError, TypeError, IndexError, KeyError, RecursionError)


class MalformedPacket(ValueError):
    """A packet that is not valid Socket.IO; ``str()`` says why."""


def log_invalid(who: str, exc: BaseException) -> None:
    """One warning line for a dropped packet; ``who`` names the client."""
    reason = str(exc) if isinstance(exc, MalformedPacket) else f"{type(exc).__name__}: {exc}"
    logger.warning("Dropped an invalid packet from %s: %.200s", who, reason)
    logger.debug("Invalid packet from %s", who, exc_info=exc)


def payload_problem(packet_type: Any, data: Any) -> str | None:
    """Why a decoded packet cannot be valid, or None."""
    if packet_type in (sio_packet.EVENT, sio_packet.BINARY_EVENT):
        if not (isinstance(data, list) and data and isinstance(data[0], str)):
            return "an event must be a list that starts with the event's name"
        if data[0] in RESERVED_EVENT_NAMES:
            # python-socketio would call its own "connect" or "disconnect"
            # handler with what the client sent: a forged environ, or a
            # disconnect of a socket that stays connected
            return f"{data[0]!r} is a reserved event name"
    elif packet_type in (sio_packet.ACK, sio_packet.BINARY_ACK):
        if not isinstance(data, list):
            return "an acknowledgement must be a list"
    elif packet_type == sio_packet.CONNECT:
        if data is not None and not isinstance(data, dict):
            return "CONNECT data must be an object"
    elif packet_type == sio_packet.CONNECT_ERROR:
        if not isinstance(data, str | dict):
            return "CONNECT_ERROR data must be a string or an object"
    elif packet_type != sio_packet.DISCONNECT:
        return f"unknown packet type {packet_type!r}"
    return None


class CheckedPacket:
    """Mixin for a ``socketio.packet.Packet`` class: every decoding error
    becomes :class:`MalformedPacket`, and payloads are checked."""

    packet_type: Any
    data: Any

    def decode(self, encoded_packet: Any) -> int:
        try:
            count = super().decode(encoded_packet)  # type: ignore[misc]
        except DECODE_ERRORS as exc:
            raise MalformedPacket(f"{type(exc).__name__}: {exc}") from None
        problem = payload_problem(self.packet_type, self.data)
        if problem is not None:
            raise MalformedPacket(problem)
        return int(count or 0)

    def add_attachment(self, attachment: Any) -> bool:
        try:
            return bool(super().add_attachment(attachment))  # type: ignore[misc]
        except DECODE_ERRORS as exc:
            # a placeholder that points at no attachment, or too many of them
            raise MalformedPacket(f"bad binary attachment ({type(exc).__name__}: {exc})") from None


class DropsInvalidPackets:
    """Mixin for a ``socketio.Server``: an invalid packet is logged in one
    line and dropped; the connection stays up."""

    _binary_packet: dict[str, Any]
    environ: dict[str, Any]
    manager: Any

    def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        if eio_sid not in self.environ:
            # the session has closed (a long-polling body can carry packets
            # after its CLOSE packet): python-socketio would take a CONNECT
            # here for a new connection and fail half-way, leaving it behind
            return
        try:
            if not data and eio_sid not in self._binary_packet:
                # python-socketio does not decode an empty packet at all (the
                # Engine.IO message "4"): it became an event with no data
                raise MalformedPacket("an empty packet")
            super()._handle_eio_message(eio_sid, data)  # type: ignore[misc]
        except ValueError as exc:  # MalformedPacket, or python-socketio's own checks
            # python-socketio keeps a binary packet whose attachment failed,
            # and then took every later message of the connection for one
            # more attachment (each dropped): forget it
            self._binary_packet.pop(eio_sid, None)
            # the address, and the id handlers know the socket by
            address = self.environ.get(eio_sid, {}).get("REMOTE_ADDR", "?")
            sid = self.manager.sid_from_eio_sid(eio_sid, "/") or eio_sid
            log_invalid(f"{address}, session {sid}", exc)

    def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        super()._handle_connect(eio_sid, namespace, data)  # type: ignore[misc]
        namespace = namespace or "/"
        if eio_sid not in self.environ and self.manager.sid_from_eio_sid(eio_sid, namespace):
            # the session closed while the connect handlers ran, and
            # python-socketio skipped its disconnect (the socket was still
            # connecting) before registering it as connected: end it now,
            # with on_disconnect and on_finish as for any connection
            self._handle_disconnect(  # type: ignore[attr-defined]
                eio_sid,
                namespace,
                self.reason.TRANSPORT_CLOSE,  # type: ignore[attr-defined]
            )


class EndsOnUndecodableBody:
    """Mixin for an engine.io socket: a long-polling body that is not valid
    Engine.IO (not UTF-8, an unknown packet type, bad base64) ends the
    session with a 400, as such a websocket message closes the connection.
    engine.io logged a traceback, answered 200 and dropped the rest of the
    body."""

    sid: str

    def handle_post_request(self, environ: dict[str, Any]) -> None:
        try:
            super().handle_post_request(environ)  # type: ignore[misc]
        except DECODE_ERRORS as exc:
            log_invalid(f"{environ.get('REMOTE_ADDR', '?')}, Engine.IO session {self.sid}", exc)
            raise eio_exceptions.UnknownPacketError() from None


class GuardedRequests:
    """Mixin for an ``engineio.Server``: the requests engine.io answered
    with a 500 get a 400."""

    sockets: dict[str, Any]

    def _bad_request(self, message: str | None = None) -> dict[str, Any]:
        return super()._bad_request(message)  # type: ignore[misc,no-any-return]

    def _handle_connect(
        self, environ: dict[str, Any], start_response: Any, transport: str, jsonp_index: Any = None
    ) -> Any:
        if transport == "websocket":
            from .websocket import handshake_error

            problem = handshake_error(environ)
            if problem is not None:
                # refused before engine.io creates a session for it
                return self._bad_request(problem)
        return super()._handle_connect(  # type: ignore[misc]
            environ, start_response, transport, jsonp_index
        )

    def handle_request(self, environ: dict[str, Any], start_response: Any) -> Any:
        try:
            return super().handle_request(environ, start_response)  # type: ignore[misc]
        except KeyError:
            if environ.get("REQUEST_METHOD") != "POST":
                raise
            # engine.io's POST path does not expect _get_socket() to refuse
            # a session that is closed but not yet swept away
            r = self._bad_request("Session is disconnected")
            start_response(r["status"], r["headers"])
            return [r["response"]]
