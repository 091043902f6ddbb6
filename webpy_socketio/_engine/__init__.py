"""The boundary with python-socketio and python-engineio.

Everything this project changes in how those two libraries behave lives in
this package, and nothing outside it touches their private names: the rest
of webpy_socketio uses :func:`create_server` and the small functions below.

Two paths, chosen by ``SOCKETIO_FAST_PATH``:

- **stock** (:class:`~.sio_server.Server` on :class:`~.eio_server.EngineIOServer`
  with :class:`~.eio_socket.Socket` sessions): python-socketio's and
  engine.io's own code paths for every packet (queue, writer greenlet,
  packet objects), with the protocol's rules enforced where they differ;
- **fast** (:class:`~.fastpath.FastServer`, :class:`~.direct.DirectSocket`):
  the same rules, with the commonest packets written and read without the
  queue, the writer greenlet or packet objects.

Both run on this project's RFC 6455 connection
(:mod:`webpy_socketio._websocket`) through :mod:`.transport`.

The modules, one concern each:

- :mod:`.eio_server`: HTTP requests and the handshake, per Engine.IO v4;
- :mod:`.eio_socket`: a session's long-polling and heartbeat;
- :mod:`.direct`: the fast path's session;
- :mod:`.transport`: engine.io's websocket class on our connection;
- :mod:`.sio_server`: namespaces, CONNECT order, strictness, connect timeout;
- :mod:`.fastpath`: the fast path's server;
- :mod:`.packets`: what a client's packet must look like;
- :mod:`.fastjson`: the JSON module (orjson where it gives the same text);
- :mod:`.redis_queue`: the Redis manager's outage behaviour.

Upstream names that are not their documented API, each with the reason it
is needed, are listed in :mod:`.upstream` (``NAMES``); the contract test
checks them on the lowest and the highest supported versions of both
libraries. In short:

- python-engineio: ``Server._trigger_event``, ``Server._async``,
  ``Server.handlers``, ``Server.sockets``, ``Server.ping_interval_grace_period``,
  the ``monitor_clients`` option; ``socket.Socket.receive``,
  ``.schedule_ping``, ``.check_ping_timeout``, ``.poll``,
  ``._websocket_handler`` and its ``queue``, ``last_ping``, ``upgrading``,
  ``upgraded``, ``closing`` attributes;
- python-socketio: ``Server._engineio_server_class``, ``._handle_eio_connect``,
  ``._handle_eio_message``, ``._handle_connect``, ``._handle_disconnect``,
  ``._handle_event``, ``._handle_ack``, ``._trigger_event``, ``._send_packet``,
  ``._send_eio_packet``, ``._binary_packet``, ``.environ``, ``.not_handled``,
  ``.manager_initialized``, ``.reason``; ``Manager.rooms``, ``.connect``,
  ``.sid_from_eio_sid``, ``.eio_sid_from_sid``, ``.is_connected``;
  ``packet.Packet.decode``, ``.add_attachment``, ``.data_is_binary``;
  ``RedisManager._publish``, ``._handle_emit``, ``._redis_connect``,
  ``._redis_listen_with_retries`` and its ``redis_options`` option,
  ``.initialize``, ``.host_id``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

#: The versions the contract test and CI cover (see pyproject.toml).
SUPPORTED = {"python-socketio": ("5.15.0", "5.18.1"), "python-engineio": ("4.11.0", "4.15.1")}


def create_server(fast_path: bool = True, **options: Any) -> Any:
    """A python-socketio server on this package's engine.

    :param fast_path: the fast path (True) or the stock one.
    :param options: ``socketio.Server`` options, plus ``strict`` and
        ``connect_timeout`` (see :class:`~.sio_server.Server`).
    """
    from . import fastjson

    options.setdefault("json", fastjson)
    if fast_path:
        from .fastpath import FastServer

        return FastServer(**options)
    from .sio_server import Server

    return Server(**options)


# -- state the rest of the package reads -------------------------------------------


def room_members(engine: Any, namespace: str, room: str) -> list[str]:
    """The socket ids in ``room`` of ``namespace``, in this process."""
    return list(engine.manager.rooms.get(namespace, {}).get(room, ()))


def in_room(engine: Any, namespace: str, room: str, sid: str) -> bool:
    return sid in engine.manager.rooms.get(namespace, {}).get(room, ())


def has_socket(engine: Any, sid: str, namespace: str) -> bool:
    """Whether ``sid`` still has a session (connecting, connected or
    leaving) in ``namespace``."""
    return engine.manager.eio_sid_from_sid(sid, namespace) is not None


def is_connected(engine: Any, sid: str, namespace: str) -> bool:
    """Whether ``sid`` is connected to ``namespace`` (accepted by its
    connect handlers, not leaving)."""
    return bool(engine.is_connected(sid, namespace))


def sockets_in(engine: Any, namespace: str) -> Iterator[str]:
    """The socket ids connected to ``namespace`` in this process."""
    yield from engine.manager.rooms.get(namespace, {}).get(None, ())


def namespaces(engine: Any) -> list[str]:
    """The namespaces that have sockets in this process."""
    return [ns for ns in list(engine.manager.rooms) if ns]


def namespace_exists(engine: Any, namespace: Any) -> bool:
    return isinstance(namespace, str) and namespace in engine.manager.rooms


def session_of(engine: Any, sid: str, namespace: str) -> tuple[str | None, dict[str, Any], str]:
    """A socket's Engine.IO session id, its connect environ and transport."""
    eio_sid = engine.manager.eio_sid_from_sid(sid, namespace)
    session = engine.eio.sockets.get(eio_sid) if eio_sid is not None else None
    transport = "websocket" if session is not None and session.upgraded else "polling"
    return eio_sid, engine.environ.get(eio_sid, {}), transport


def rooms_of(engine: Any, sid: str, namespace: str) -> list[str]:
    """The rooms a socket is in (its own, named after its id, included)."""
    return [r for r in engine.manager.get_rooms(sid, namespace) if r]


def session_counts(engine: Any) -> tuple[int, int]:
    """(Engine.IO sessions, those on long-polling) in this process."""
    sessions = list(engine.eio.sockets.values())
    return len(sessions), sum(1 for s in sessions if not s.upgraded)


def connection_counts(engine: Any) -> list[tuple[str, str, int]]:
    """``(namespace, transport, sockets)`` for this process's sockets."""
    manager = engine.manager
    sessions = engine.eio.sockets
    counts: dict[tuple[str, str], int] = {}
    for namespace, rooms in list(manager.rooms.items()):
        for eio_sid in list(rooms.get(None, {}).values()):
            session = sessions.get(eio_sid)
            if session is None:
                continue
            key = (namespace, "websocket" if session.upgraded else "polling")
            counts[key] = counts.get(key, 0) + 1
    return [(ns, transport, n) for (ns, transport), n in sorted(counts.items())]


def queue_health(engine: Any) -> dict[str, Any] | None:
    """The message queue's health (see :meth:`.redis_queue.RedisQueue.health`),
    or None without a Redis queue."""
    from .redis_queue import RedisQueue

    manager = engine.manager
    if not isinstance(manager, RedisQueue) or manager.write_only:
        return None
    return manager.health()


# -- the in-process test transport (webpy_socketio.testing) ----------------------


def attach_test_transport(
    engine: Any, receive: Callable[[str], Callable[[Any], None] | None]
) -> None:
    """Route what ``engine`` sends to sessions that have no Engine.IO socket
    (test clients) into ``receive(eio_sid)``, a function taking a decoded
    Socket.IO packet, or None for sessions that are not test clients."""
    if getattr(engine, "_wsio_test_receive", None) is not None:
        engine._wsio_test_receive = receive
        return
    engine._wsio_test_receive = receive
    deliver_packet = engine.deliver_packet
    deliver_eio_packet = engine.deliver_eio_packet

    def _deliver_packet(eio_sid: str, pkt: Any) -> None:
        target = engine._wsio_test_receive(eio_sid)
        if target is None:
            deliver_packet(eio_sid, pkt)
        else:
            target(pkt)

    def _deliver_eio_packet(eio_sid: str, eio_pkt: Any) -> None:
        target = engine._wsio_test_receive(eio_sid)
        if target is None:
            deliver_eio_packet(eio_sid, eio_pkt)
        else:
            target(engine.packet_class(encoded_packet=eio_pkt.data))

    engine.deliver_packet = _deliver_packet
    engine.deliver_eio_packet = _deliver_eio_packet


def open_test_session(engine: Any, eio_sid: str, environ: dict[str, Any]) -> None:
    """A session for a test client, as engine.io's connect event makes one."""
    engine._handle_eio_connect(eio_sid, environ)


def feed_test_session(engine: Any, eio_sid: str, data: Any) -> None:
    """One Engine.IO message from a test client."""
    engine._handle_eio_message(eio_sid, data)


def close_test_session(engine: Any, eio_sid: str) -> None:
    """A test client's session ends as a closed browser tab's does."""
    if eio_sid in engine.environ:
        engine._handle_eio_disconnect(eio_sid, engine.reason.TRANSPORT_CLOSE)
    engine.environ.pop(eio_sid, None)


def new_session_id(engine: Any) -> str:
    return str(engine.eio.generate_id())
