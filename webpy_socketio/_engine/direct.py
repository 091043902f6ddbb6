"""The fast path's Engine.IO session: websocket packets go straight out.

On the stock path a session's packets go through its queue to a writer
greenlet that encodes each one and hands it to the websocket. A
:class:`DirectSocket`, once its connection is a websocket, writes the frame
itself, at once, from whatever greenlet sends (the write never waits: a
full kernel buffer queues the bytes, in order, behind what already waits,
see :meth:`~webpy_socketio._websocket.connection.WebSocket.write`), and it
reads and dispatches the client's frames itself: in the request's greenlet
at first, and once the connection is idle it parks (no greenlet waits for
it, see :meth:`~webpy_socketio._websocket.connection.WebSocket.park`): the
next input is read by a reader greenlet
(:class:`~webpy_socketio._websocket.connection.Readers`), which is done
with it when the connection is idle again. Over long-polling it is the
stock session.
"""

from __future__ import annotations

from typing import Any

from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet

from .._websocket.connection import WebSocket, encode_message
from .eio_socket import Socket
from .packets import CLOSED, DECODE_ERRORS, log_invalid
from .transport import EngineWebSocket

_NOOP = eio_packet.NOOP
_PING_FRAME = encode_message(eio_packet.Packet(eio_packet.PING).encode())
_CLOSE_FRAME = encode_message(eio_packet.Packet(eio_packet.CLOSE).encode())


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


class DirectSocket(Socket):
    """A session that writes straight to its websocket (module docstring)."""

    #: the websocket once the connection uses it (None over long-polling)
    direct: WebSocket | None = None
    #: engine.io's view of it (what the read loop reads through)
    transport: EngineWebSocket

    def send(self, pkt: Any) -> None:
        ws = self.direct
        if ws is None:
            super().send(pkt)
        elif not self.closed:
            ws.write(frame_of(pkt))

    def send_ping(self) -> None:
        ws = self.direct
        if ws is None:
            super().send_ping()
        else:
            ws.write(_PING_FRAME)

    def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        ws = self.direct
        if ws is None:
            super().close(wait=wait, abort=abort, reason=reason)
            return
        if self.closed or self.closing:
            return
        self.closing = True
        self.close_reason = reason
        self.stop_timers()
        self.server._trigger_event(
            "disconnect", self.sid, reason or self.server.reason.SERVER_DISCONNECT, run_async=False
        )
        if not abort:
            ws.write(_CLOSE_FRAME)
        self.closed = True
        self.forget()
        ws.close()
        if wait:
            ws.flush(5)

    def _websocket_handler(self, ws: Any) -> Any:
        if not isinstance(ws, EngineWebSocket) or ws.ws is None:
            return super()._websocket_handler(ws)
        conn = ws.ws
        if self.connected:
            # an upgrade from long-polling: the probe exchange, then the
            # UPGRADE packet (Engine.IO v4)
            self.upgrading = True
            if ws.wait() != "2probe":
                self.upgrading = False
                return []
            conn.send("3probe")
            self.queue.put(eio_packet.Packet(_NOOP))  # ends the pending poll
            if ws.wait() != "5":
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
        self.transport = ws
        conn.on_readable = self._resume
        if self._serve():
            # parked: this request's greenlet ends, the connection stays
            ws.detached = True
        return []

    def _resume(self) -> None:
        """Input for a parked connection, in a reader greenlet."""
        ws = self.transport
        try:
            if self._serve():
                return
        except BaseException:
            ws.finish()
            raise
        ws.finish()

    def _serve(self) -> bool:
        """Read and dispatch the client's messages until the connection
        ends (then close the session: False) or it is idle and parks
        (True): it then waits for input without a greenlet
        (:meth:`~webpy_socketio._websocket.connection.WebSocket.park`)."""
        if self._read_loop(self.transport):
            return True
        self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
        return False

    def _read_loop(self, ws: EngineWebSocket) -> bool:
        """Dispatch messages until the connection ends (False) or parks."""
        server = self.server
        sid = self.sid
        receive = self.receive
        wait = ws.wait
        conn = self.direct
        assert conn is not None
        idle = conn.idle
        park = conn.park
        Packet = eio_packet.Packet
        while True:
            if idle() and not self.closed and park():
                return True
            data = wait()
            if data is None or self.closed:
                return False
            # Text MESSAGE packets carrying a Socket.IO packet ("4" and a
            # digit) are nearly all the traffic: give them to the message
            # handler as engine.io would (same string, same greenlet)
            # without building a packet object on the way
            if type(data) is str and data[1:2].isdigit() and data[0] == "4":
                handler = server.handlers.get("message")
                if handler is not None:
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
                return False
            except DECODE_ERRORS as exc:
                # not Engine.IO at all (the transport checks the packet
                # type, so this is rare): end the connection
                log_invalid(f"Engine.IO session {sid}", exc, action=CLOSED)
                return False
            except Exception:
                server.logger.exception("error handling a websocket packet")
                return False
