"""Socket.IO packets from clients, checked as the protocol says.

python-socketio decodes what a client sends but accepts packets the
reference parser refuses (an event that is not a list starting with its
name, an acknowledgement that is not a list, CONNECT data that is not an
object), and answers the rest with an exception and a traceback. Here every
decoding error is a :class:`MalformedPacket` whose text says what is wrong;
the server (:mod:`.sio_server`) logs it in one line and, by default, closes
the connection, as Node socket.io does.
"""

from __future__ import annotations

import logging
from typing import Any

import socketio
from socketio import packet as sio_packet

from ..wire import RESERVED_EVENT_NAMES

logger = logging.getLogger("webpy_socketio")

#: what decoding untrusted text can raise (UnicodeDecodeError, JSON and
#: base64 errors are ValueErrors; deep nesting is a RecursionError)
DECODE_ERRORS = (ValueError, TypeError, IndexError, KeyError, RecursionError)


class MalformedPacket(ValueError):
    """A packet that is not valid Socket.IO; ``str()`` says why."""


class ReservedEvent(MalformedPacket):
    """A valid event whose name is reserved (python-socketio would call its
    own "connect" or "disconnect" handler with what the client sent): it is
    dropped, but it breaks no rule of the protocol, so it never closes the
    connection."""


#: why a session closed for breaking the protocol (engine.io's name for it)
PARSE_ERROR = "parse error"

#: how :func:`log_invalid` says that the connection was closed for it
CLOSED = "Closed the connection after"


def log_invalid(who: str, exc: BaseException, action: str = "Dropped") -> None:
    """One warning line for an invalid packet; ``who`` names the client."""
    reason = str(exc) if isinstance(exc, MalformedPacket) else f"{type(exc).__name__}: {exc}"
    logger.warning("%s an invalid packet from %s: %.200s", action, who, reason)
    logger.debug("Invalid packet from %s", who, exc_info=exc)


#: what :func:`payload_problem` says of an event with a reserved name
RESERVED = "a reserved event name"


def payload_problem(packet_type: Any, data: Any) -> str | None:
    """Why a decoded packet from a client cannot be valid, or None."""
    if packet_type in (sio_packet.EVENT, sio_packet.BINARY_EVENT):
        if not (isinstance(data, list) and data and isinstance(data[0], str)):
            return "an event must be a list that starts with the event's name"
        if data[0] in RESERVED_EVENT_NAMES:
            return RESERVED
    elif packet_type in (sio_packet.ACK, sio_packet.BINARY_ACK):
        if not isinstance(data, list):
            return "an acknowledgement must be a list"
    elif packet_type == sio_packet.CONNECT:
        if data is not None and not isinstance(data, dict):
            return "CONNECT data must be an object"
    elif packet_type == sio_packet.CONNECT_ERROR:
        return "a client cannot send CONNECT_ERROR"
    elif packet_type != sio_packet.DISCONNECT:
        return f"unknown packet type {packet_type!r}"
    return None


class Packet(socketio.packet.Packet):
    """python-socketio's packet; decoding errors become
    :class:`MalformedPacket` and payloads are checked."""

    def decode(self, encoded_packet: Any) -> int:
        try:
            count = super().decode(encoded_packet)
        except DECODE_ERRORS as exc:
            raise MalformedPacket(f"{type(exc).__name__}: {exc}") from None
        problem = payload_problem(self.packet_type, self.data)
        if problem is RESERVED:
            raise ReservedEvent(f"{self.data[0]!r} is a reserved event name")
        if problem is not None:
            raise MalformedPacket(problem)
        return int(count or 0)

    def add_attachment(self, attachment: Any) -> bool:
        try:
            return bool(super().add_attachment(attachment))
        except DECODE_ERRORS as exc:
            # a placeholder that points at no attachment, or too many of them
            raise MalformedPacket(f"bad binary attachment ({type(exc).__name__}: {exc})") from None


_PLAIN = frozenset((str, int, float, bool, type(None)))


class FastPacket(Packet):
    """The fast path's packet: a quicker test for binary data (it runs for
    every packet built; python-socketio's builds a list and reduces it at
    every level of the data)."""

    @classmethod
    def data_is_binary(cls, data: Any) -> bool:
        if isinstance(data, bytes | bytearray):
            return True
        if isinstance(data, list):
            items: Any = data
        elif isinstance(data, dict):
            items = data.values()
        else:
            return False
        for item in items:
            if type(item) in _PLAIN:
                continue
            if cls.data_is_binary(item):
                return True
        return False
