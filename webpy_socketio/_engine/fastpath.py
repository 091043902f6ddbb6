"""The fast path: the commonest packets skip python-socketio's machinery.

python-socketio hands every packet for every recipient to engine.io, which
puts it on the recipient's queue; a writer greenlet per connection wakes up,
encodes it and passes it to the websocket library, which builds the frame.
For a broadcast to N sockets that is N queue round trips, N encodings of
the same bytes and N greenlet switches. Here:

- :class:`FastServer` delivers engine.io packets to websocket sessions
  itself, at the point where the manager hands them to local sockets. The
  manager builds one packet per broadcast, so its frame bytes are encoded
  once, cached on the packet and written to every recipient (server frames
  are unmasked, so they are the same for all). This is also the path the
  message-queue managers (Redis) use for their local deliveries.
- It also takes the commonest packet a client sends, a text event on the
  default namespace (``2``, an optional ack id, a JSON list), from the text
  to the handler and from the handler's result to the ack's frame without
  packet objects. Anything else, or anything it would have to report, goes
  the stock way (:class:`~.sio_server.Server`).
- Its sessions are :class:`~.direct.DirectSocket`\\ s.

``SOCKETIO_FAST_PATH = False`` runs the stock classes instead; the tests run
the real-client suites on both, and any difference is a bug.
"""

from __future__ import annotations

from typing import Any

import socketio

from .._websocket.connection import encode_message
from . import fastjson
from .direct import DirectSocket, frame_of
from .eio_server import EngineIOServer
from .packets import DECODE_ERRORS, FastPacket, payload_problem
from .sio_server import Server

_EVENT = socketio.packet.EVENT


class FastEngineIOServer(EngineIOServer):
    """The Engine.IO server with direct-writing sessions."""

    socket_class = DirectSocket


class FastServer(Server):
    """:class:`~.sio_server.Server` with the fast path (module docstring)."""

    engineio_server_class = FastEngineIOServer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("serializer", FastPacket)
        super().__init__(*args, **kwargs)

    def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        if (
            type(data) is str
            and data[:1] == "2"
            and eio_sid not in self._binary_packet
            and self._plain_event(eio_sid, data)
        ):
            return
        super()._handle_eio_message(eio_sid, data)

    def _plain_event(self, eio_sid: str, text: str) -> bool:
        """Handle ``text``, an EVENT packet, as the stock path would; False
        (nothing done) when it is not a valid text event on the default
        namespace from a connected socket: the stock path decides then, and
        reports what is wrong."""
        end = len(text)
        i = 1
        while i < end and "0" <= text[i] <= "9":
            i += 1
        # python-socketio takes ack ids of up to 100 digits
        if i >= end or text[i] != "[" or i > 101:
            return False
        try:
            data = fastjson.loads(text[i:])
        except DECODE_ERRORS:
            return False
        if payload_problem(_EVENT, data) is not None:
            return False
        # a closed session has no sid any more; one still connecting is not
        # connected yet
        manager = self.manager
        sid = manager.sid_from_eio_sid(eio_sid, "/")
        if sid is None or sid in self._connecting or not manager.is_connected(sid, "/"):
            return False
        limiter = self.rate_limiter
        if limiter is not None:
            verdict = limiter.check(sid, data[0], end)
            if verdict:
                ack = int(text[1:i]) if i > 1 else None
                self.refuse_limited(eio_sid, "/", sid, data[0], ack, verdict)
                return True
        result = self._trigger_event(data[0], "/", sid, *data[1:])
        if i == 1 or result == self.not_handled:
            return True
        # the acknowledgement: the handler's result as its argument list
        args = [] if result is None else list(result) if isinstance(result, tuple) else [result]
        ack_id = int(text[1:i])
        sock = self.eio.sockets.get(eio_sid)
        ws = getattr(sock, "direct", None)
        if ws is not None and not sock.closed and eio_sid not in self._held:
            try:
                ws.write(encode_message(f"43{ack_id}{fastjson.dumps(args)}"))
                return True
            except TypeError:
                pass  # bytes in it, a binary ack (or nothing JSON can hold)
        # long-polling, binary data: as the stock path
        ack = self.packet_class(socketio.packet.ACK, namespace="/", id=ack_id, data=args)
        self._send_packet(eio_sid, ack)
        return True

    def deliver_packet(self, eio_sid: str, pkt: Any) -> None:
        # single-recipient packets (acks, emits to one sid): straight from the
        # Socket.IO encoding to the frame, without an engine.io packet
        sock = self.eio.sockets.get(eio_sid)
        ws = getattr(sock, "direct", None)
        if ws is None or sock.closed:
            super().deliver_packet(eio_sid, pkt)
            return
        encoded = pkt.encode()
        for part in encoded if isinstance(encoded, list) else (encoded,):
            # a binary packet is its text header, then one frame per attachment
            ws.write(encode_message("4" + part if isinstance(part, str) else part))

    def deliver_eio_packet(self, eio_sid: str, eio_pkt: Any) -> None:
        sock = self.eio.sockets.get(eio_sid)
        ws = getattr(sock, "direct", None)
        if ws is not None and not sock.closed:
            ws.write(frame_of(eio_pkt))
        else:
            self.eio.send_packet(eio_sid, eio_pkt)
