"""Every name of python-socketio and python-engineio that is not their
documented API and that this package relies on, and why.

:func:`missing` checks them all against the installed versions; the
contract test (``tests/test_engine_contract.py``) runs it on the lowest and
the highest supported versions, so an upstream release that renames or drops
one fails there, naming it, instead of breaking a server at run time.

``kind`` says where the name must be found: ``"class"`` on the class,
``"instance"`` on an instance (attributes set in ``__init__``), ``"kwarg"``
as a keyword of the class's ``__init__``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Name:
    """One upstream name: ``owner`` is a dotted class path."""

    owner: str
    name: str
    kind: str
    why: str

    def __str__(self) -> str:
        return f"{self.owner}.{self.name}"


_EIO_SERVER = "engineio.Server"
_EIO_SOCKET = "engineio.socket.Socket"
_SIO_SERVER = "socketio.Server"
_SIO_MANAGER = "socketio.Manager"
_SIO_PACKET = "socketio.packet.Packet"
_REDIS = "socketio.RedisManager"

NAMES: tuple[Name, ...] = (
    # -- python-engineio: the server -------------------------------------------
    Name(_EIO_SERVER, "monitor_clients", "kwarg", "turned off: the heartbeat is timed per session"),
    Name(_EIO_SERVER, "_trigger_event", "class", "raises engine.io's connect/disconnect events"),
    Name(_EIO_SERVER, "_async", "instance", "engine.io's own websocket class, the fallback"),
    Name(_EIO_SERVER, "ping_interval_grace_period", "instance", "announced in the handshake"),
    Name(_EIO_SERVER, "handlers", "instance", "the fast path calls the message handler itself"),
    Name(_EIO_SERVER, "sockets", "instance", "the session table"),
    # -- python-engineio: a session ----------------------------------------------
    Name(_EIO_SOCKET, "receive", "class", "decoded packets in; calls schedule_ping on PONG"),
    Name(_EIO_SOCKET, "schedule_ping", "class", "overridden: the heartbeat runs on timers"),
    Name(_EIO_SOCKET, "check_ping_timeout", "class", "overridden: engine.io's send calls it"),
    Name(_EIO_SOCKET, "poll", "class", "waits for a long-polling GET's packets"),
    Name(_EIO_SOCKET, "_websocket_handler", "class", "the stock path's websocket loop"),
    Name(_EIO_SOCKET, "queue", "instance", "the session's packet queue"),
    Name(_EIO_SOCKET, "last_ping", "instance", "when the last PING left"),
    Name(_EIO_SOCKET, "upgrading", "instance", "set while the websocket probe runs"),
    Name(_EIO_SOCKET, "upgraded", "instance", "set once the session is a websocket"),
    Name(_EIO_SOCKET, "closing", "instance", "set while the session closes"),
    # -- python-socketio: the server ---------------------------------------------
    Name(_SIO_SERVER, "_engineio_server_class", "class", "chooses this package's engine.io server"),
    Name(_SIO_SERVER, "_handle_eio_connect", "class", "starts the connect timeout"),
    Name(_SIO_SERVER, "_handle_eio_message", "class", "strictness and the fast path's entry"),
    Name(_SIO_SERVER, "_handle_connect", "class", "replaced: namespaces, CONNECT first"),
    Name(_SIO_SERVER, "_handle_disconnect", "class", "ignores namespaces not connected"),
    Name(_SIO_SERVER, "_handle_event", "class", "refuses events for namespaces not connected"),
    Name(_SIO_SERVER, "_handle_ack", "class", "refuses acks for namespaces not connected"),
    Name(_SIO_SERVER, "_trigger_event", "class", "runs a handler, also from the fast path"),
    Name(_SIO_SERVER, "_send_packet", "class", "holds packets while a connect handler runs"),
    Name(_SIO_SERVER, "_send_eio_packet", "class", "the manager's per-recipient delivery"),
    Name(_SIO_SERVER, "_binary_packet", "instance", "a binary packet waiting for attachments"),
    Name(_SIO_SERVER, "environ", "instance", "eio_sid -> connect environ; gone once closed"),
    Name(_SIO_SERVER, "not_handled", "instance", "what _trigger_event returns for no handler"),
    Name(_SIO_SERVER, "manager_initialized", "instance", "the queue is started at server start"),
    Name(_SIO_SERVER, "reason", "class", "disconnect reasons"),
    # -- python-socketio: rooms --------------------------------------------------
    Name(_SIO_MANAGER, "rooms", "instance", "namespace -> room -> members, read for channels"),
    Name(_SIO_MANAGER, "connect", "class", "registers a socket whose handlers run"),
    Name(_SIO_MANAGER, "sid_from_eio_sid", "class", "the socket of a session in a namespace"),
    Name(_SIO_MANAGER, "eio_sid_from_sid", "class", "the session of a socket"),
    Name(_SIO_MANAGER, "is_connected", "class", "connected, not connecting nor leaving"),
    # -- python-socketio: packets ------------------------------------------------
    Name(_SIO_PACKET, "decode", "class", "wrapped: decoding errors become one-line reports"),
    Name(_SIO_PACKET, "add_attachment", "class", "wrapped: bad attachments are reported"),
    Name(_SIO_PACKET, "data_is_binary", "class", "the fast path's quicker version"),
    # -- python-socketio: the Redis manager --------------------------------------
    Name(_REDIS, "_publish", "class", "a lost Redis costs one attempt, logged once"),
    Name(_REDIS, "_handle_emit", "class", "history messages and presence changes from pub/sub"),
    Name(_REDIS, "_redis_connect", "class", "connects, with a blocking pool (and for the check)"),
    Name(_REDIS, "_redis_listen_with_retries", "class", "subscribes at start, retries quickly"),
    Name(_REDIS, "redis_options", "kwarg", "short timeouts and one retry"),
    Name(_REDIS, "connected", "instance", "whether the publishing connection is up"),
    Name(_REDIS, "initialize", "class", "starts the listener; the heartbeat starts with it"),
    Name(_REDIS, "host_id", "instance", "this process's id: heartbeats are addressed to it"),
)


def _resolve(path: str) -> Any:
    module_name, _, attr = path.rpartition(".")
    module = __import__(module_name, fromlist=[attr])
    return getattr(module, attr)


def _instance(owner: str) -> Any:
    """An instance of an upstream class, built as this package builds it."""
    import socketio

    if owner == _EIO_SERVER:
        import engineio

        return engineio.Server(async_mode="gevent")
    if owner == _EIO_SOCKET:
        from engineio.socket import Socket

        return Socket(_instance(_EIO_SERVER), "sid")
    if owner == _SIO_SERVER:
        return socketio.Server(async_mode="gevent")
    if owner == _SIO_MANAGER:
        return socketio.Manager()
    if owner == _REDIS:
        # a client object only: nothing connects until a command is sent
        return socketio.RedisManager("redis://127.0.0.1:9/0", write_only=True)
    raise LookupError(f"no instance recipe for {owner}")


def missing() -> list[str]:
    """The upstream names that the installed versions do not have, each
    with the reason this package needs it."""
    gone = []
    instances: dict[str, Any] = {}
    for entry in NAMES:
        try:
            owner = _resolve(entry.owner)
        except (ImportError, AttributeError):
            gone.append(f"{entry.owner} (the class itself) - needed for: {entry.why}")
            continue
        if entry.kind == "class":
            found = hasattr(owner, entry.name)
        elif entry.kind == "kwarg":
            found = entry.name in inspect.signature(owner.__init__).parameters
        else:
            if entry.owner not in instances:
                instances[entry.owner] = _instance(entry.owner)
            found = hasattr(instances[entry.owner], entry.name)
        if not found:
            gone.append(f"{entry} - needed for: {entry.why}")
    return gone
