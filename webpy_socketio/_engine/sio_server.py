"""The Socket.IO server: python-socketio, with the protocol's rules.

python-socketio's ``Server`` keeps the rooms, the managers (in memory or
through Redis), encoding and event dispatch. This subclass changes what the
Socket.IO v5 specification asks otherwise, on both paths (stock and fast):

- **Namespaces.** A client may connect any namespace an application
  registered a handler for (:meth:`Server.namespace_known`); any other is
  refused with ``CONNECT_ERROR {"message": "Invalid namespace"}`` (v5 wants
  an object; python-socketio sent the string "Unable to connect").
- **CONNECT first.** What a connect handler sends to the new socket (an
  ``emit`` in ``on_connect``, a broadcast to a channel it just joined) is
  held until the CONNECT packet is out, and dropped when the connection is
  refused: python-socketio sent it before the CONNECT, where clients other
  than the browser's drop it.
- **Strictness.** A malformed packet, or a packet for a namespace the
  session has not connected, is logged in one line and closes the
  connection, as Node socket.io does (``strict=False``: the packet is
  dropped and the connection stays). An event with a reserved name
  (``connect``, ``disconnect``...) is always dropped: it would reach
  python-socketio's own handlers, but it breaks no rule of the protocol.
- **Connect timeout.** A session that has connected no namespace
  ``connect_timeout`` seconds after its handshake is closed.
- **Rate limits** (:mod:`webpy_socketio.ratelimit`), on both paths: an
  event over its socket's limit is refused before any handler runs, with
  ``{"ok": false, "error": "rate limited"}`` as its acknowledgement (or
  dropped when it has none); a socket that stays over its limit is
  disconnected.
- **Closed sessions** send nothing on: a long-polling body may carry
  packets after its CLOSE, and a session may close while a connect handler
  waits; python-socketio then failed half-way or kept the socket for good.
"""

from __future__ import annotations

import logging
from typing import Any

import gevent
import socketio
from socketio import exceptions as sio_exceptions
from socketio import packet as sio_packet

from ..ratelimit import DISCONNECT, DISCONNECT_REASON, LIMITED_REPLY
from ..wire import DEFAULT_NAMESPACE, INVALID_NAMESPACE
from .eio_server import EngineIOServer
from .packets import CLOSED, PARSE_ERROR, MalformedPacket, Packet, ReservedEvent, log_invalid

logger = logging.getLogger("webpy_socketio")


def _size(data: Any) -> int:
    """The bytes of a client's message, for the rate limits (engine.io
    decodes a message that is only digits into an int)."""
    return len(data) if isinstance(data, str | bytes | bytearray) else len(str(data))


class Server(socketio.Server):
    """python-socketio's server with the protocol's rules (module docstring).

    :param strict: close the connection on a malformed packet (True, like
        Node socket.io) or drop the packet (False).
    :param connect_timeout: seconds a session may stay without any
        namespace connected (None: no limit).
    """

    #: the Engine.IO server class (the fast path has its own)
    engineio_server_class: type[EngineIOServer] = EngineIOServer
    packet_class: Any
    #: the rate limits (a :class:`~webpy_socketio.ratelimit.RateLimiter`), or None
    rate_limiter: Any = None
    #: called as ``on_rate_limited(namespace, sid, event)`` for a refused event
    on_rate_limited: Any = None
    #: bytes of the client message being handled (the rate limits' count)
    _in_size = 0

    def __init__(
        self, *args: Any, strict: bool = True, connect_timeout: float | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("serializer", Packet)
        # every namespace reaches _handle_connect, which knows the real list
        kwargs["namespaces"] = "*"
        super().__init__(*args, **kwargs)
        self.strict = strict
        self.connect_timeout = connect_timeout
        #: eio_sid -> packets held while a connect handler runs for it
        self._held: dict[str, list[tuple[bool, Any]]] = {}
        #: sockets whose connect handlers are running: not connected yet
        self._connecting: set[str] = set()
        #: sid -> why this server disconnected it, for the disconnect handlers
        self.disconnect_reasons: dict[str, str] = {}

    def _engineio_server_class(self) -> type:
        return self.engineio_server_class

    def namespace_known(self, namespace: str) -> bool:
        """Whether clients may connect ``namespace`` (replaced by the
        application's dispatcher)."""
        return namespace == DEFAULT_NAMESPACE

    # -- sending -----------------------------------------------------------------

    def _send_packet(self, eio_sid: str, pkt: Any) -> None:
        held = self._held.get(eio_sid) if self._held else None
        if held is not None and pkt.packet_type not in (
            sio_packet.CONNECT,
            sio_packet.CONNECT_ERROR,
        ):
            held.append((True, pkt))
        else:
            self.deliver_packet(eio_sid, pkt)

    def _send_eio_packet(self, eio_sid: str, eio_pkt: Any) -> None:
        held = self._held.get(eio_sid) if self._held else None
        if held is not None:
            held.append((False, eio_pkt))
        else:
            self.deliver_eio_packet(eio_sid, eio_pkt)

    def hold(self, eio_sid: str | None) -> bool:
        """Hold what is sent to ``eio_sid`` until :meth:`release`; False
        (nothing changed) when it is held already."""
        if eio_sid is None or eio_sid in self._held:
            return False
        self._held[eio_sid] = []
        return True

    def release(self, eio_sid: str | None, owner: bool, drop: Any = None) -> None:
        """Send what was held for ``eio_sid``, in order, except the events
        whose argument list ``drop(args)`` is true for."""
        if not owner or eio_sid is None:
            return
        for is_sio, pkt in self._held.pop(eio_sid, []):
            if drop is not None and drop(self._event_args(is_sio, pkt)):
                continue
            if is_sio:
                self._send_packet(eio_sid, pkt)
            else:
                self._send_eio_packet(eio_sid, pkt)

    def _event_args(self, is_sio: bool, pkt: Any) -> Any:
        """The argument list of an event packet (None for anything else)."""
        if is_sio:
            return pkt.data if pkt.packet_type == sio_packet.EVENT else None
        text = pkt.data
        if not isinstance(text, str) or not text.startswith("2"):
            return None
        try:
            return self.packet_class(encoded_packet=text).data
        except ValueError:
            return None

    def deliver_packet(self, eio_sid: str, pkt: Any) -> None:
        """Send a Socket.IO packet to one session now."""
        super()._send_packet(eio_sid, pkt)

    def deliver_eio_packet(self, eio_sid: str, eio_pkt: Any) -> None:
        """Send an encoded Engine.IO packet (a broadcast's) to one session now."""
        self.eio.send_packet(eio_sid, eio_pkt)

    # -- sessions ----------------------------------------------------------------

    def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        result = super()._handle_eio_connect(eio_sid, environ)
        sock = self.eio.sockets.get(eio_sid)
        if self.connect_timeout and sock is not None:
            timer = gevent.get_hub().loop.timer(self.connect_timeout)
            timer.start(self._connect_deadline, eio_sid)
            sock.connect_timer = timer
        return result

    def _connect_deadline(self, eio_sid: str) -> None:
        # in the event loop: only look, and let a greenlet do the closing
        sock = self.eio.sockets.get(eio_sid)
        if sock is None:
            return
        sock.connect_timer = None
        if eio_sid in self.environ and not self._has_namespace(eio_sid):
            gevent.spawn(self._close_session, eio_sid, "connect timeout")

    def _has_namespace(self, eio_sid: str) -> bool:
        manager = self.manager
        return any(
            self.is_connected(manager.sid_from_eio_sid(eio_sid, namespace), namespace)
            for namespace in list(manager.get_namespaces())
        )

    def _close_session(self, eio_sid: str, reason: str) -> None:
        sock = self.eio.sockets.get(eio_sid)
        if sock is not None:
            if not sock.closed:
                sock.close(wait=False, reason=reason)
        elif eio_sid in self.environ:
            # a session with no Engine.IO socket: an in-process test client
            self._handle_eio_disconnect(eio_sid, reason)
            self.environ.pop(eio_sid, None)

    # -- packets from clients ------------------------------------------------------

    def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        if eio_sid not in self.environ:
            # the session has closed (a long-polling body can carry packets
            # after its CLOSE packet): nothing it sends counts any more
            return
        try:
            if eio_sid in self._binary_packet:
                self._in_size += _size(data)
                if not isinstance(data, bytes | bytearray):
                    # python-socketio took any message for the attachment
                    raise MalformedPacket("a text packet where a binary attachment was due")
            elif not data:
                # python-socketio does not decode an empty packet at all (the
                # Engine.IO message "4"): it became an event with no data
                raise MalformedPacket("an empty packet")
            else:
                self._in_size = _size(data)
            super()._handle_eio_message(eio_sid, data)
        except ValueError as exc:  # MalformedPacket, or python-socketio's own checks
            # python-socketio keeps a binary packet whose attachment failed,
            # and then took every later message of the connection for one
            # more attachment: forget it
            self._binary_packet.pop(eio_sid, None)
            self.bad_packet(eio_sid, exc)

    def bad_packet(self, eio_sid: str, exc: BaseException) -> None:
        """A client broke the protocol: log it in one line, and close the
        connection (strict) or drop the packet."""
        address = self.environ.get(eio_sid, {}).get("REMOTE_ADDR", "?")
        # the id handlers know the socket by
        sid = self.manager.sid_from_eio_sid(eio_sid, DEFAULT_NAMESPACE) or eio_sid
        who = f"{address}, session {sid}"
        if not self.strict or isinstance(exc, ReservedEvent):
            log_invalid(who, exc)
            return
        log_invalid(who, exc, action=CLOSED)
        self._close_session(eio_sid, PARSE_ERROR)

    def _handle_event(self, eio_sid: str, namespace: Any, id: Any, data: Any) -> None:
        self._require_connected(eio_sid, namespace)
        if self.rate_limiter is not None:
            namespace = namespace or DEFAULT_NAMESPACE
            sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
            if not self.admit(eio_sid, namespace, sid, data[0], id, self._in_size):
                return
        super()._handle_event(eio_sid, namespace, id, data)

    def admit(
        self, eio_sid: str, namespace: str, sid: str, event: str, ack_id: Any, size: int
    ) -> bool:
        """Whether the event passes the socket's rate limits; a refused one
        is answered (when it has an ack), reported, and may disconnect."""
        verdict = self.rate_limiter.check(sid, event, size)
        if not verdict:
            return True
        self.refuse_limited(eio_sid, namespace, sid, event, ack_id, verdict)
        return False

    def refuse_limited(
        self, eio_sid: str, namespace: str, sid: str, event: str, ack_id: Any, verdict: int
    ) -> None:
        """An event over its rate limit (``verdict`` from the limiter's
        check): answered when it has an ack, reported, and the socket
        disconnected when it stayed over too long."""
        limiter = self.rate_limiter
        if ack_id is not None:
            self._send_packet(
                eio_sid,
                self.packet_class(
                    sio_packet.ACK, namespace=namespace, id=ack_id, data=[dict(LIMITED_REPLY)]
                ),
            )
        who = f"{self.environ.get(eio_sid, {}).get('REMOTE_ADDR', '?')}, socket {sid}"
        if verdict == DISCONNECT:
            logger.warning(
                "Disconnected %s: over its rate limit (SOCKETIO_RATE_LIMIT) for %g s",
                who,
                limiter.disconnect_after,
            )
        elif limiter.starts_stretch(sid):
            logger.warning(
                "Rate limited %s: events over SOCKETIO_RATE_LIMIT are refused (%.50r)",
                who,
                event,
            )
        if self.on_rate_limited is not None:
            self.on_rate_limited(namespace, sid, event)
        if verdict == DISCONNECT:
            limiter.forget(sid)
            self.disconnect_reasons[sid] = DISCONNECT_REASON
            self.disconnect(sid, namespace=namespace)

    def _handle_ack(self, eio_sid: str, namespace: Any, id: Any, data: Any) -> None:
        self._require_connected(eio_sid, namespace)
        super()._handle_ack(eio_sid, namespace, id, data)

    def is_connected(self, sid: str | None, namespace: str) -> bool:
        """Whether ``sid`` is connected to ``namespace`` (its connect
        handlers have accepted it, and it is not leaving)."""
        return (
            sid is not None
            and sid not in self._connecting
            and bool(self.manager.is_connected(sid, namespace))
        )

    def _require_connected(self, eio_sid: str, namespace: Any) -> None:
        namespace = namespace or DEFAULT_NAMESPACE
        if not self.is_connected(self.manager.sid_from_eio_sid(eio_sid, namespace), namespace):
            # "If the server does not receive a CONNECT packet first, then it
            # MUST close the connection immediately"
            raise MalformedPacket(f"a packet for namespace {namespace[:50]!r}, not connected")

    def _handle_disconnect(self, eio_sid: str, namespace: Any, reason: Any = None) -> None:
        namespace = namespace or DEFAULT_NAMESPACE
        if not self.is_connected(self.manager.sid_from_eio_sid(eio_sid, namespace), namespace):
            sock = self.eio.sockets.get(eio_sid)
            if reason == self.reason.CLIENT_DISCONNECT and sock is not None and not sock.joined:
                # a DISCONNECT as the session's first packet
                raise MalformedPacket("a DISCONNECT before any CONNECT")
            return  # not connected there (or still connecting): nothing to end
        super()._handle_disconnect(eio_sid, namespace, reason)

    def _handle_connect(self, eio_sid: str, namespace: Any, data: Any) -> None:
        namespace = namespace or DEFAULT_NAMESPACE
        if eio_sid not in self.environ:
            return  # the session has closed
        if not self.namespace_known(namespace):
            self._refuse(eio_sid, namespace, {"message": INVALID_NAMESPACE})
            return
        # registered now (in the namespace's room of all sockets, so handlers
        # can join channels), but not connected until the handlers accept
        sid = self.manager.connect(eio_sid, namespace)
        if sid is None:
            # already connected: the official client sends a second CONNECT
            # when connect() is called on a socket of an open connection; it
            # gets the same answer (python-socketio refused it, which made
            # the client drop a working socket)
            sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
            if sid is not None and self.is_connected(sid, namespace):
                self.deliver_packet(
                    eio_sid,
                    self.packet_class(sio_packet.CONNECT, {"sid": sid}, namespace=namespace),
                )
            return
        # sends to this session wait until its CONNECT packet is out
        owner = eio_sid not in self._held
        if owner:
            self._held[eio_sid] = []
        self._connecting.add(sid)
        refusal: Any = None
        try:
            accepted = self._trigger_event("connect", namespace, sid, self.environ[eio_sid], data)
            if accepted is False:
                refusal = sio_exceptions.ConnectionRefusedError().error_args
        except sio_exceptions.ConnectionRefusedError as exc:
            refusal = exc.error_args
        except Exception:
            logger.exception("connect handler error")
            refusal = {"message": "server error"}
        finally:
            held = self._held.pop(eio_sid, []) if owner else []
            self._connecting.discard(sid)
        if eio_sid not in self.environ:
            # the session closed while the handlers ran: end what they began
            if refusal is None:
                self._handle_disconnect(eio_sid, namespace, self.reason.TRANSPORT_CLOSE)
            else:
                self.manager.disconnect(sid, namespace, ignore_queue=True)
            return
        if refusal is not None:
            self.manager.disconnect(sid, namespace, ignore_queue=True)
            self._refuse(eio_sid, namespace, refusal)
            return
        self.deliver_packet(
            eio_sid, self.packet_class(sio_packet.CONNECT, {"sid": sid}, namespace=namespace)
        )
        for is_sio, pkt in held:
            if is_sio:
                self._send_packet(eio_sid, pkt)
            else:
                self._send_eio_packet(eio_sid, pkt)
        sock = self.eio.sockets.get(eio_sid)
        if sock is not None:
            sock.joined = True
            if sock.connect_timer is not None:
                sock.connect_timer.close()
                sock.connect_timer = None

    def _refuse(self, eio_sid: str, namespace: str, reason: Any) -> None:
        self.deliver_packet(
            eio_sid, self.packet_class(sio_packet.CONNECT_ERROR, data=reason, namespace=namespace)
        )
