"""An Engine.IO session: long-polling and the heartbeat, as the protocol says.

python-engineio's socket keeps its packet queue, ``receive`` and (on the
stock path) its websocket handler; this subclass changes what the Engine.IO
v4 specification asks otherwise:

- **Heartbeat on timers.** The ping is sent ``pingInterval`` after the
  handshake or the last pong, and a pong must arrive within
  ``pingTimeout`` of it: a loop timer per session covers both waits, and a
  late session is closed when its deadline passes (engine.io slept in a
  greenlet per session and found late ones by a periodic sweep, answering
  them meanwhile).
- **One GET and one POST at a time.** A second GET while one waits closes
  the session: the waiting GET gets the CLOSE packet, the new one a 400.
  The same for a second POST.
- **Forceful close.** A client's CLOSE packet answers a waiting GET with
  a NOOP packet (engine.io answered an empty body).
- **POST bodies.** Every packet of a body is decoded before any is
  handled, with no cap on their number (engine.io refused more than 16,
  which a browser buffering its emits can reach); a body that is not valid
  Engine.IO closes the session with a 400.
- **Closing never hangs.** engine.io's ``close(wait=True)`` waited, with no
  limit, for a poll to take the CLOSE packet; here only a poll already
  waiting can take it, for at most :data:`CLOSE_TIMEOUT`.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

import gevent
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet
from engineio.socket import Socket as EngineIOSocket

from .._websocket.connection import CLOSE_TIMEOUT, FAIR_TURN, TRAFFIC, next_turn
from .packets import CLOSED, PARSE_ERROR, log_invalid

_SEPARATOR = "\x1e"
#: the Engine.IO packet types a client may send
_CLIENT_TYPES = frozenset("123456")


class InvalidBody(eio_exceptions.EngineIOError):
    """A long-polling body that is not valid Engine.IO; ``str()`` says why."""


def decode_payload(body: bytes) -> list[eio_packet.Packet]:
    """The packets of a long-polling body.

    :raises InvalidBody: when any part of it is not an Engine.IO packet.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidBody("the body is not UTF-8") from None
    packets = []
    for part in text.split(_SEPARATOR):
        if not part:
            raise InvalidBody("an empty packet")
        if part[0] == "b":
            try:
                data = base64.b64decode(part[1:], validate=True)
            except (binascii.Error, ValueError):
                raise InvalidBody("bad base64 in a binary packet") from None
            packets.append(eio_packet.Packet(eio_packet.MESSAGE, data))
            continue
        if part[0] not in _CLIENT_TYPES:
            raise InvalidBody(f"unknown packet type {part[:1]!r}")
        pkt = eio_packet.Packet(int(part[0]))
        pkt.data = part[1:]
        packets.append(pkt)
    return packets


class Socket(EngineIOSocket):
    """engine.io's session with the protocol's rules (module docstring)."""

    # engine.io sets these in its untyped __init__; declared for type checkers
    server: Any
    sid: str
    queue: Any
    closed: bool
    closing: bool
    connected: bool
    upgraded: bool
    upgrading: bool
    last_ping: float | None

    #: the event-loop timer of the next heartbeat step
    _timer: Any = None
    #: the Socket.IO layer's timer for its connect timeout, if running
    connect_timer: Any = None
    #: whether the session has connected a Socket.IO namespace yet
    joined = False
    #: why the session closed, once it has
    close_reason: Any = None
    #: long-polling requests being handled right now
    _polls = 0
    _posts = 0

    # -- heartbeat -------------------------------------------------------------

    def schedule_ping(self) -> None:
        # engine.io calls this after the handshake and on every PONG; the
        # next ping is due pingInterval later
        if self.closed or self.closing:
            return
        self.last_ping = None
        self._start_timer(self.server.ping_interval, self._ping_due)

    def _start_timer(self, seconds: float, callback: Any) -> None:
        if self._timer is not None:
            self._timer.close()
        timer = gevent.get_hub().loop.timer(seconds)
        timer.start(callback)
        self._timer = timer

    def stop_timers(self) -> None:
        """Stop the heartbeat and connect-timeout timers (the session is
        closing)."""
        for name in ("_timer", "connect_timer"):
            timer = getattr(self, name)
            if timer is not None:
                timer.close()
                setattr(self, name, None)

    def _ping_due(self) -> None:
        # runs in the event loop itself, so nothing here may wait: a put on
        # the unbounded polling queue does not, nor does a direct write
        if self.closing or self.closed:
            return
        self.last_ping = time.time()
        self.send_ping()
        self._start_timer(self.server.ping_timeout, self._pong_missed)

    def send_ping(self) -> None:
        """Send the PING packet (never waits)."""
        self.queue.put(eio_packet.Packet(eio_packet.PING))

    def _pong_missed(self) -> None:
        self._timer = None
        if not (self.closing or self.closed) and self.last_ping is not None:
            # closing runs the disconnect handlers, which may wait: not here
            gevent.spawn(self._expire)

    def _expire(self) -> None:
        if not (self.closing or self.closed):
            self.server.logger.info("%s: no pong within the ping timeout, closing", self.sid)
            self.close(wait=False, reason=self.server.reason.PING_TIMEOUT)

    def expire_if_late(self) -> bool:
        """Close the session if its pong is overdue (a request can arrive a
        moment before the timer fires); return whether it is closed."""
        last_ping = self.last_ping
        if last_ping is not None and time.time() - last_ping > self.server.ping_timeout:
            self._expire()
        return self.closed

    def check_ping_timeout(self) -> bool:
        # engine.io calls this before every send; the timers find late
        # sessions, so it only refuses closed ones
        if self.closed:
            raise eio_exceptions.SocketIsClosedError()
        return True

    # -- long-polling ----------------------------------------------------------

    def poll(self) -> Any:
        self._polls += 1
        try:
            return super().poll()
        finally:
            self._polls -= 1

    def handle_get_request(self, environ: dict[str, Any], start_response: Any) -> Any:
        if self.upgrading or self.upgraded:
            # the client is moving to websocket: end its polling cleanly
            return [eio_packet.Packet(eio_packet.NOOP)]
        if self._polls:
            # "a client MUST NOT have more than one active GET request": the
            # waiting one gets the CLOSE packet, this one a 400
            self.close(wait=False, reason=self.server.reason.TRANSPORT_ERROR)
            raise eio_exceptions.EngineIOError("a second GET request while one was pending")
        try:
            return self.poll()
        except eio_exceptions.QueueEmpty:
            self.close(wait=False, reason=self.server.reason.TRANSPORT_ERROR)
            raise

    def handle_post_request(self, environ: dict[str, Any]) -> None:
        if self._posts:
            self.close(wait=False, reason=self.server.reason.TRANSPORT_ERROR)
            raise eio_exceptions.EngineIOError("a second POST request while one was pending")
        self._posts += 1
        try:
            self._handle_post(environ)
        finally:
            self._posts -= 1

    def _handle_post(self, environ: dict[str, Any]) -> None:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > self.server.max_http_buffer_size:
            self.close(wait=False, reason=self.server.reason.TRANSPORT_ERROR)
            raise eio_exceptions.ContentTooLongError()
        body = environ["wsgi.input"].read(length)
        TRAFFIC.poll_bytes_in += len(body)
        try:
            packets = decode_payload(body)
            TRAFFIC.poll_packets_in += len(packets)
        except InvalidBody as exc:
            who = f"{environ.get('REMOTE_ADDR', '?')}, Engine.IO session {self.sid}"
            log_invalid(who, exc, action=CLOSED)
            self.close(wait=False, reason=PARSE_ERROR)
            raise
        for index, pkt in enumerate(packets):
            if self.closed:
                break  # what follows a CLOSE (or a fatal packet) is dropped
            if index and not index % FAIR_TURN:
                next_turn()  # a long body: the other connections get a turn too
            try:
                self.receive(pkt)
            except eio_exceptions.UnknownPacketError:
                # a PING or NOOP from the client: not its to send
                who = f"{environ.get('REMOTE_ADDR', '?')}, Engine.IO session {self.sid}"
                log_invalid(
                    who, InvalidBody(f"packet type {pkt.packet_type} from a client"), CLOSED
                )
                self.close(wait=False, reason=PARSE_ERROR)
        if self.closed and self.close_reason == PARSE_ERROR:
            raise InvalidBody("a packet closed the session")

    def receive(self, pkt: Any) -> None:
        if pkt.packet_type == eio_packet.CLOSE and self._polls:
            # a forceful close while a GET waits: answer it with a NOOP
            self.queue.put(eio_packet.Packet(eio_packet.NOOP))
        super().receive(pkt)

    # -- websocket -------------------------------------------------------------

    def upgrade(self, environ: dict[str, Any], start_response: Any) -> Any:
        """Take the request over as this session's websocket."""
        if self.upgraded:
            return [b"Socket has been upgraded already"]
        ws = self.server.websocket_class(self._websocket_handler, self.server)
        ws.session_id = self.sid
        return ws(environ, start_response)

    # -- closing ---------------------------------------------------------------

    def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        if self.closed or self.closing:
            return
        self.close_reason = reason
        self.stop_timers()
        super().close(wait=False, abort=abort, reason=reason)
        self.forget()
        if wait and self._polls:
            # only a poll already waiting can take the CLOSE packet (a later
            # GET is refused: the session is closed), so wait for that one
            self.queue.join(CLOSE_TIMEOUT)

    def forget(self) -> None:
        """Leave the session table now that the session is closed (or its
        websocket ended): nothing can use it any more."""
        if not self.closed:
            return
        sockets = self.server.sockets
        if sockets.get(self.sid) is self:
            del sockets[self.sid]
