"""The server side of the official Socket.IO Admin UI (``SOCKETIO_ADMIN_UI``).

The Admin UI (npm ``@socket.io/admin-ui``, hosted at admin.socket.io, or its
``ui/dist`` folder served by anything) connects to the namespace ``/admin``
of a server and shows its sockets, their channels, the events they send and
the server's traffic. This module speaks its protocol::

    SOCKETIO_ADMIN_UI = {"username": "admin", "password": os.environ["ADMIN_PASSWORD"]}
    SOCKETIO_CORS_ALLOWED_ORIGINS = ["https://admin.socket.io"]   # where the UI is served

Off by default. The UI must log in with that username and password (then it
gets a session id, good until the server restarts, so a reload of the page
needs no password); ``"auth": False`` instead of the credentials turns the
check off, which only makes sense on a machine nobody else reaches.
Read-only by default: ``"read_only": False`` lets the UI make sockets join and
leave channels, and disconnect them. ``"namespace"`` moves it off
``/admin``. Channels are shown by their names; the ids of the sockets'
own rooms too, as Node socket.io shows them. Cookies and
``Authorization`` headers are never sent to the UI.

python-socketio's ``Server.instrument()`` implements the same protocol, but
by replacing methods of engine.io's classes for the whole process, which
this package's own engine classes override; this module hooks where this
package already sees each event instead, and costs nothing while no admin
is connected. It shows the sockets of the process it is connected to (one
worker of ``wsio serve``).
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import socket as _socket
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from .exceptions import ImproperlyConfigured

logger = logging.getLogger("webpy_socketio")

#: Seconds between two server_stats messages (as Node's admin server).
STATS_SECONDS = 2.0
#: Headers never shown to the UI.
HIDDEN_HEADERS = frozenset({"cookie", "authorization", "proxy-authorization"})

#: whether an admin is connected (the hooks below do nothing otherwise)
active = False

_config: dict[str, Any] | None = None
_admins: set[str] = set()
_sessions: set[str] = set()
_stats_task: Any = None
_started = time.time()


def check_setting(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise ImproperlyConfigured(
            "SOCKETIO_ADMIN_UI must be None or a dict such as {'username': 'admin', "
            f"'password': '...'}}, not {value!r}."
        )
    unknown = set(value) - {"username", "password", "auth", "read_only", "namespace"}
    if unknown:
        raise ImproperlyConfigured(
            f"SOCKETIO_ADMIN_UI has unknown keys {sorted(unknown)}; use username, password, "
            "auth, read_only and namespace."
        )
    if value.get("auth", True) is not False:
        for key in ("username", "password"):
            if not isinstance(value.get(key), str) or not value[key]:
                raise ImproperlyConfigured(
                    f"SOCKETIO_ADMIN_UI needs a non-empty {key!r} (or 'auth': False to let "
                    "anyone who reaches the server in, which only suits a private machine)."
                )
    if not isinstance(value.get("read_only", True), bool):
        raise ImproperlyConfigured("SOCKETIO_ADMIN_UI['read_only'] must be True or False.")
    namespace = value.get("namespace", "/admin")
    if not isinstance(namespace, str) or not namespace.startswith("/") or namespace == "/":
        raise ImproperlyConfigured(
            "SOCKETIO_ADMIN_UI['namespace'] must be a namespace such as '/admin', not "
            f"{namespace!r}."
        )


def configure(value: dict[str, Any] | None) -> None:
    """Apply the setting (the engine calls this)."""
    global _config
    _config = None if value is None else {"read_only": True, "namespace": "/admin", **value}


def namespace() -> str | None:
    """The admin namespace, or None when the Admin UI is off."""
    return None if _config is None else str(_config["namespace"])


def _now() -> str:
    return datetime.now(UTC).isoformat()


# -- the admin sockets ---------------------------------------------------------------


def connect(engine: Any, sid: str, auth: Any) -> None:
    """An Admin UI connects: check it, then send it what it shows.

    :raises ConnectionRefusedError: for wrong credentials.
    """
    global active, _stats_task
    from socketio.exceptions import ConnectionRefusedError

    assert _config is not None
    auth = auth if isinstance(auth, dict) else {}
    session = None
    if _config.get("auth", True) is not False:
        if auth.get("sessionId") in _sessions:
            pass
        elif _matches(auth.get("username"), _config["username"]) & _matches(
            auth.get("password"), _config["password"]
        ):
            session = secrets.token_hex(16)
            _sessions.add(session)
        else:
            logger.warning("Admin UI: refused a login (invalid credentials)")
            raise ConnectionRefusedError("invalid credentials")
    ns = _config["namespace"]
    _admins.add(sid)
    active = True
    if session is not None:
        engine.emit("session", session, to=sid, namespace=ns)
    features = ["AGGREGATED_EVENTS", "ALL_EVENTS"]
    if not _config["read_only"]:
        features += ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"]
    engine.emit("config", {"supportedFeatures": features}, to=sid, namespace=ns)
    engine.emit(
        "all_sockets",
        [_serialize(engine, s, n) for s, n in _all_sockets(engine)],
        to=sid,
        namespace=ns,
    )
    if _stats_task is None:
        _stats_task = engine.start_background_task(_stats, engine)


def _matches(given: Any, expected: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


def disconnect(sid: str) -> None:
    global active
    _admins.discard(sid)
    active = bool(_admins)


def request(engine: Any, event: str, args: tuple[Any, ...]) -> None:
    """A command from the UI (ignored in read-only mode)."""
    from . import _engine as boundary
    from . import clients
    from .exceptions import InvalidChannel

    if _config is None or _config["read_only"]:
        return
    if event == "emit" and len(args) >= 3:
        ns, room, name = args[0], args[1], args[2]
        if isinstance(name, str) and boundary.namespace_exists(engine, ns):
            to = ("#" + room if not _is_socket(room) else room) if room else None
            engine.emit(name, args[3] if len(args) == 4 else tuple(args[3:]), to=to, namespace=ns)
        return
    if event in ("join", "leave", "_disconnect") and len(args) >= 2:
        ns = args[0]
        target = args[2] if len(args) > 2 else None
        for sid in list(boundary.sockets_in(engine, ns)):
            if target and sid != target and not boundary.in_room(engine, ns, "#" + target, sid):
                continue
            client = clients.get(sid)
            if client is None:
                continue
            if event == "_disconnect":
                client.socket.disconnect()
                continue
            try:
                if event == "join":
                    client.socket.subscribe(args[1])
                else:
                    client.socket.unsubscribe(args[1])
            except InvalidChannel:
                return  # the same rules as a client's subscribe


def _is_socket(room: Any) -> bool:
    from . import clients

    return isinstance(room, str) and clients.get(room) is not None


# -- what the UI is told -----------------------------------------------------------------


def _emit(engine: Any, event: str, *args: Any) -> None:
    assert _config is not None
    engine.emit(event, args, namespace=_config["namespace"])


def socket_connected(engine: Any, sid: str, ns: str) -> None:
    if ns != namespace():
        _emit(engine, "socket_connected", _serialize(engine, sid, ns), _now())


def socket_disconnected(engine: Any, sid: str, ns: str, reason: Any) -> None:
    if ns != namespace():
        _emit(engine, "socket_disconnected", ns, sid, str(reason), _now())


def room_joined(engine: Any, sid: str, ns: str, channel: str) -> None:
    _emit(engine, "room_joined", ns, channel, sid, _now())


def room_left(engine: Any, sid: str, ns: str, channel: str) -> None:
    _emit(engine, "room_left", ns, channel, sid, _now())


def event_received(engine: Any, sid: str, ns: str, args: list[Any]) -> None:
    if ns != namespace():
        _emit(engine, "event_received", ns, sid, args, _now())


def _all_sockets(engine: Any) -> list[tuple[str, str]]:
    from . import _engine as boundary

    admin_ns = namespace()
    found: list[tuple[str, str]] = []
    for ns in boundary.namespaces(engine):
        if ns != admin_ns:
            found.extend((sid, ns) for sid in boundary.sockets_in(engine, ns))
    return found


def _serialize(engine: Any, sid: str, ns: str) -> dict[str, Any]:
    from . import _engine as boundary

    eio_sid, environ, transport = boundary.session_of(engine, sid, ns)
    from . import clients

    rooms = [r[1:] if r.startswith("#") else r for r in boundary.rooms_of(engine, sid, ns)]
    client = clients.get(sid)
    issued = client.connected_at if client is not None else time.time()
    headers = {
        key[5:].lower().replace("_", "-"): value
        for key, value in environ.items()
        if key.startswith("HTTP_") and key[5:].lower().replace("_", "-") not in HIDDEN_HEADERS
    }
    query = {
        k: v[0] if len(v) == 1 else v for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()
    }
    return {
        "id": sid,
        "clientId": (eio_sid or "")[:12],
        "transport": transport,
        "nsp": ns,
        "data": {},
        "handshake": {
            "address": environ.get("HTTP_X_FORWARDED_FOR") or environ.get("REMOTE_ADDR", ""),
            "headers": headers,
            "query": query,
            "secure": environ.get("wsgi.url_scheme") == "https",
            "url": environ.get("PATH_INFO", ""),
            "issued": int(issued * 1000),
            "time": datetime.fromtimestamp(issued, UTC).isoformat(),
            "xdomain": bool(environ.get("HTTP_ORIGIN")),
        },
        "rooms": rooms,
    }


def _stats(engine: Any) -> None:
    """While an admin is connected: the server's figures every 2 s."""
    global _stats_task
    from . import _engine as boundary
    from ._websocket.connection import TRAFFIC

    last = _traffic(TRAFFIC)
    try:
        while _admins:
            engine.sleep(STATS_SECONDS)
            now = _traffic(TRAFFIC)
            stamp = int(time.time()) * 1000
            events = [
                {"timestamp": stamp, "type": kind, "count": now[kind] - last[kind]}
                for kind in now
                if now[kind] > last[kind]
            ]
            last = now
            counts = boundary.connection_counts(engine)
            by_ns: dict[str, int] = {}
            for ns, _, n in counts:
                by_ns[ns] = by_ns.get(ns, 0) + n
            sessions = boundary.session_counts(engine)
            _emit(
                engine,
                "server_stats",
                {
                    "serverId": f"{_socket.gethostname()}#{os.getpid()}",
                    "hostname": _socket.gethostname(),
                    "pid": os.getpid(),
                    "uptime": time.time() - _started,
                    "clientsCount": sessions[0],
                    "pollingClientsCount": sessions[1],
                    "aggregatedEvents": events,
                    "namespaces": [
                        {"name": ns, "socketsCount": n} for ns, n in sorted(by_ns.items())
                    ],
                },
            )
    finally:
        _stats_task = None


def _traffic(traffic: Any) -> dict[str, int]:
    return {
        "packetsIn": traffic.packets_in + traffic.poll_packets_in,
        "packetsOut": traffic.packets_out + traffic.poll_packets_out,
        "bytesIn": traffic.bytes_in + traffic.poll_bytes_in,
        "bytesOut": traffic.bytes_out + traffic.poll_bytes_out,
    }
