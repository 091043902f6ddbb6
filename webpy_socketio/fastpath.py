"""The engine's hot path: websocket packets go straight to the socket.

python-socketio hands every packet for every recipient to engine.io, which
puts it on the recipient's queue; a writer greenlet per connection wakes up,
encodes it and passes it to the websocket library, which builds the frame.
For a broadcast to N sockets that is N queue round trips, N encodings of
the same bytes and N greenlet switches. Here:

- :class:`Server` (a ``socketio.Server``) delivers engine.io packets to
  websocket sockets itself, at the point where the manager hands them to
  local sockets (``_send_eio_packet``). The manager builds one packet per
  broadcast, so its frame bytes are encoded once, cached on the packet and
  written to every recipient (server frames are unmasked, so they are the
  same for all). This is also the path python-socketio's message-queue
  managers (Redis) use for their local deliveries, so they get it too.
- :class:`Server` also takes the commonest packet a client sends, a text
  event on the default namespace (``2``, an optional ack id, a JSON list),
  from the text to the handler and from the handler's result to the ack's
  frame without packet objects. Anything else, or anything it would have to
  report, goes python-socketio's way.
- :class:`DirectSocket` (an engine.io socket) writes packets to its
  websocket without the queue and the writer greenlet, once the connection
  is a websocket; over long-polling it behaves exactly like engine.io's.
  Its heartbeat waits in a timer instead of a sleeping greenlet.
- :class:`EngineIOServer` swaps its sockets to :class:`DirectSocket` and
  uses :class:`~webpy_socketio.websocket.EngineWebSocket` for the websocket
  transport.

Writes never block the sender: a client whose kernel buffer is full gets
its frames queued, in order, and flushed by its own greenlet
(:meth:`webpy_socketio.websocket.WebSocket.write`).
"""

from __future__ import annotations

import time
from typing import Any

import engineio
import gevent
import socketio
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet
from engineio.socket import Socket as EngineIOSocket

from . import fastjson
from .protocol import (
    DECODE_ERRORS,
    CheckedPacket,
    DropsInvalidPackets,
    EndsOnUndecodableBody,
    GuardedRequests,
    log_invalid,
    payload_problem,
)
from .websocket import CLOSE_TIMEOUT, EngineWebSocket, WebSocket, encode_message

_NOOP = eio_packet.NOOP
_EVENT = socketio.packet.EVENT
_PING_FRAME = encode_message(eio_packet.Packet(eio_packet.PING).encode())


def frame_of(pkt: Any) -> bytes:
    """The websocket frame bytes of an engine.io packet, encoded once and
    kept on the packet (broadcasts reuse one packet for every recipient)."""
    frame = pkt.__dict__.get("_wsio_frame")
    if frame is None:
        frame = pkt._wsio_frame = encode_message(pkt.encode())
    return frame  # type: ignore[no-any-return]


class _Forward:
    """What a direct socket has instead of its packet queue: nothing reads
    the queue any more, so a packet put on it is simply sent."""

    __slots__ = ("sock",)

    def __init__(self, sock: DirectSocket) -> None:
        self.sock = sock

    def put(self, pkt: Any, *args: Any, **kwargs: Any) -> None:
        if pkt is not None and not self.sock.closed:
            self.sock.send(pkt)

    def task_done(self) -> None:
        pass

    def join(self, timeout: float | None = None) -> None:
        pass

    def qsize(self) -> int:
        return 0


class DirectSocket(EndsOnUndecodableBody, EngineIOSocket):
    """An engine.io socket that writes straight to its websocket."""

    # engine.io sets these in its untyped __init__; declared for type checkers
    queue: Any
    closed: bool
    closing: bool
    connected: bool
    last_ping: float | None

    #: the websocket once the connection uses it (None over long-polling)
    direct: WebSocket | None = None
    _ping_timer: Any = None
    #: long-polling GETs waiting on this socket right now
    _polls = 0

    def poll(self) -> Any:
        self._polls += 1
        try:
            return super().poll()
        finally:
            self._polls -= 1

    def send(self, pkt: Any) -> None:
        ws = self.direct
        if ws is None:
            super().send(pkt)
        elif self.check_ping_timeout():
            ws.write(frame_of(pkt))

    def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        ws = self.direct
        if ws is None:
            # engine.io's close(wait=True) waits, with no limit, until a poll
            # takes the CLOSE packet. A client with no GET pending that posts
            # a packet ending the session never got an answer, and its
            # session and request greenlet stayed for good. Only a poll
            # already waiting can take it (a later GET is refused: the
            # session is closed), so wait only for that one, and not long.
            super().close(wait=False, abort=abort, reason=reason)
            self._forget()
            if wait and self._polls:
                self.queue.join(CLOSE_TIMEOUT)
            return
        if self.closed or self.closing:
            return
        self.closing = True
        self.server._trigger_event(
            "disconnect", self.sid, reason or self.server.reason.SERVER_DISCONNECT, run_async=False
        )
        if not abort:
            ws.write(frame_of(eio_packet.Packet(eio_packet.CLOSE)))
        self.closed = True
        self._forget()
        if self._ping_timer is not None:
            self._ping_timer.close()
            self._ping_timer = None
        ws.close()
        if wait:
            ws.flush(5)

    def _forget(self) -> None:
        # engine.io leaves a closed session in its table until a later request
        # or its sweep (up to a ping timeout, longer under load) finds it;
        # nothing can use it any more, so drop it now (every engine.io path
        # that deletes it first checks that it is still there)
        sockets = self.server.sockets
        if sockets.get(self.sid) is self:
            del sockets[self.sid]

    def schedule_ping(self) -> None:
        # engine.io sleeps in a greenlet per connection between pings; a bare
        # event-loop timer costs a small fraction of that memory
        if self.last_ping:
            self.last_ping = None
            timer = gevent.get_hub().loop.timer(self.server.ping_interval)
            timer.start(self._ping_due)
            self._ping_timer = timer

    def _ping_due(self) -> None:
        # runs in the event loop itself, so nothing here may wait: a direct
        # write never does, nor does a put on the unbounded polling queue
        # (timeouts are found by engine.io's service task, not here)
        self._ping_timer = None
        if self.closing or self.closed:
            return
        self.last_ping = time.time()
        ws = self.direct
        if ws is not None:
            ws.write(_PING_FRAME)
        else:
            self.queue.put(eio_packet.Packet(eio_packet.PING))

    def _websocket_handler(self, ws: Any) -> Any:
        if not isinstance(ws, EngineWebSocket) or ws.ws is None:
            return super()._websocket_handler(ws)
        conn = ws.ws
        if self.connected:
            # an upgrade from long-polling: the probe exchange, then the
            # UPGRADE packet (Engine.IO v4)
            self.upgrading = True
            if conn.receive() != "2probe":
                self.upgrading = False
                return []
            conn.send("3probe")
            self.queue.put(eio_packet.Packet(_NOOP))  # ends the pending poll
            if conn.receive() != "5":
                self.upgrading = False
                return []
            self.upgraded = True
            self.upgrading = False
        else:
            self.connected = True
            self.upgraded = True
        # what was queued for polling (the OPEN packet, or sends made during
        # the upgrade) goes first, then packets go straight to the socket;
        # nothing can run in between, as no write here waits
        closing = False
        while True:
            try:
                pkt = self.queue.get(block=False)
            except self.server.get_queue_empty_exception():
                break
            self.queue.task_done()
            if pkt is None:
                closing = True
                break
            if pkt.packet_type != _NOOP:
                conn.write(frame_of(pkt))
        self.direct = conn
        # the queue (three deques and an event) is not used any more
        self.queue = _Forward(self)
        if closing or self.closed:
            return []
        self._read_loop(conn)
        self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
        return []

    def _read_loop(self, conn: WebSocket) -> None:
        server = self.server
        sid = self.sid
        receive = self.receive
        Packet = eio_packet.Packet
        while True:
            data = conn.receive()
            if data is None or self.closed:
                return
            # Text MESSAGE packets carrying a Socket.IO packet ("4" and a
            # digit) are nearly all the traffic: give them to the message
            # handler as engine.io would (same string, same greenlet)
            # without building a packet object on the way
            if type(data) is str and data[1:2].isdigit() and data[0] == "4":
                handler = server.handlers.get("message")
                if handler is not None and not server.async_handlers:
                    try:
                        handler(sid, data[1:])
                    except Exception:
                        server.logger.exception("message handler error")
                    continue
            try:
                receive(Packet(encoded_packet=data))
            except eio_exceptions.UnknownPacketError:
                pass
            except eio_exceptions.SocketIsClosedError:
                return
            except (ValueError, IndexError, RecursionError) as exc:
                # not Engine.IO at all: end the connection
                log_invalid(f"Engine.IO session {sid}", exc)
                return
            except Exception:
                self.server.logger.exception("error handling a websocket packet")
                return


class EngineIOServer(GuardedRequests, engineio.Server):
    """engine.io's server with :class:`DirectSocket` sockets and this
    package's websocket transport."""

    _async: dict[str, Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        fallback = self._async.get("websocket")
        transport = type("EngineWebSocket", (EngineWebSocket,), {"fallback": fallback})
        # a copy: the dict is engine.io's module-wide table for gevent
        self._async = dict(self._async, websocket=transport)

    def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "connect":
            # engine.io has just created the socket and calls this before it
            # sends or receives anything on it
            sock = self.sockets.get(args[0])
            if sock is not None and type(sock) is EngineIOSocket:
                sock.__class__ = DirectSocket
        return super()._trigger_event(event, *args, **kwargs)


class Packet(CheckedPacket, socketio.packet.Packet):
    """python-socketio's packet, with a quicker test for binary data (it
    runs for every packet built: python-socketio's builds a list and
    reduces it at every level of the data)."""

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


_PLAIN = frozenset((str, int, float, bool, type(None)))


class Server(DropsInvalidPackets, socketio.Server):
    """python-socketio's server on :class:`EngineIOServer`, delivering
    packets to websocket sockets directly."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("serializer", Packet)
        super().__init__(*args, **kwargs)

    def _engineio_server_class(self) -> type:
        return EngineIOServer

    def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        if (
            type(data) is str
            and data[:1] == "2"
            and eio_sid not in self._binary_packet
            and not self.async_handlers
            and self._plain_event(eio_sid, data)
        ):
            return
        super()._handle_eio_message(eio_sid, data)

    def _plain_event(self, eio_sid: str, text: str) -> bool:
        """Handle ``text``, an EVENT packet, as python-socketio would; False
        (nothing done) when it is not a valid text event on the default
        namespace from a connected socket: the general path decides then,
        and reports what is wrong."""
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
        # a closed session has no sid any more (DropsInvalidPackets drops
        # its packets); one still connecting is not connected yet
        manager = self.manager
        sid = manager.sid_from_eio_sid(eio_sid, "/")
        if sid is None or not manager.is_connected(sid, "/"):
            return False
        result = self._trigger_event(data[0], "/", sid, *data[1:])
        if i == 1 or result == self.not_handled:
            return True
        # the acknowledgement: the handler's result as its argument list
        args = [] if result is None else list(result) if isinstance(result, tuple) else [result]
        ack_id = int(text[1:i])
        sock = self.eio.sockets.get(eio_sid)
        ws = getattr(sock, "direct", None)
        if ws is not None and not sock.closed:
            try:
                ws.write(encode_message(f"43{ack_id}{fastjson.dumps(args)}"))
                return True
            except TypeError:
                pass  # bytes in it, a binary ack (or nothing JSON can hold)
        # long-polling, binary data (and the test client): as python-socketio
        ack = self.packet_class(socketio.packet.ACK, namespace="/", id=ack_id, data=args)
        self._send_packet(eio_sid, ack)
        return True

    def _send_packet(self, eio_sid: str, pkt: Any) -> None:
        # single-recipient packets (acks, emits to one sid): straight from the
        # Socket.IO encoding to the frame, without an engine.io packet
        sock = self.eio.sockets.get(eio_sid)
        ws = getattr(sock, "direct", None)
        if ws is None or sock.closed:
            super()._send_packet(eio_sid, pkt)
            return
        encoded = pkt.encode()
        for part in encoded if isinstance(encoded, list) else (encoded,):
            # a binary packet is its text header, then one frame per attachment
            ws.write(encode_message("4" + part if isinstance(part, str) else part))

    def _send_eio_packet(self, eio_sid: str, eio_pkt: Any) -> None:
        sock = self.eio.sockets.get(eio_sid)
        ws = getattr(sock, "direct", None)
        if ws is not None and not sock.closed:
            ws.write(frame_of(eio_pkt))
        else:
            self.eio.send_packet(eio_sid, eio_pkt)
