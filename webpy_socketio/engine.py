"""The process-wide python-socketio server that carries every socket.

It is created on first use from the settings, so ``configure()`` must come
before the first connection for the settings that shape it (the message
queue, the fast path); the others (origins, message size, heartbeat,
strictness, connect timeout) are applied live.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from . import clients, origins, settings
from .exceptions import ImproperlyConfigured

_lock = threading.Lock()
_engine: Any = None


def client_manager(url: str | None, write_only: bool = False) -> Any:
    """The python-socketio manager for a message queue URL (None: in-memory,
    this process only). Redis URLs get this project's Redis manager
    (:mod:`webpy_socketio._engine.redis_queue`).

    :raises ImproperlyConfigured: when the queue's client library is missing.
    """
    if not url:
        return None
    from .messagequeue import queue_manager

    return queue_manager(url, write_only=write_only)


def create_engine() -> Any:
    """Build the server from the current settings (the fast path or the
    stock one, see :mod:`webpy_socketio._engine`), with the webpy_socketio
    dispatcher installed."""
    from ._engine import create_server
    from .dispatch import Dispatcher

    engine = create_server(
        fast_path=settings.get("SOCKETIO_FAST_PATH"),
        strict=settings.get("SOCKETIO_STRICT_PROTOCOL"),
        connect_timeout=settings.get("SOCKETIO_CONNECT_TIMEOUT"),
        async_mode="gevent",
        client_manager=client_manager(settings.get("SOCKETIO_MESSAGE_QUEUE")),
        cors_allowed_origins=origins.policy(settings.get("SOCKETIO_CORS_ALLOWED_ORIGINS")),
        max_http_buffer_size=settings.get("SOCKETIO_MAX_MESSAGE_BYTES"),
        ping_interval=settings.get("SOCKETIO_PING_INTERVAL"),
        ping_timeout=settings.get("SOCKETIO_PING_TIMEOUT"),
        # one connection's events are handled in order, in that connection's
        # greenlet; other connections are not held up by a slow handler
        async_handlers=False,
        logger=False,
        engineio_logger=False,
    )
    Dispatcher(engine).install()
    _apply_limits(settings.as_dict())
    engine.rate_limiter = _rate_limiter(settings.as_dict())
    from . import admin

    admin.configure(settings.get("SOCKETIO_ADMIN_UI"))
    if settings.get("SOCKETIO_MESSAGE_QUEUE"):
        from . import messagequeue

        # subscribe now, not on the first connection: a queue that is down
        # is an error at start, and no broadcast can slip past a new client
        messagequeue.start(engine)
    return engine


def get_engine() -> Any:
    """The process-wide python-socketio server, created on first call."""
    global _engine
    if _engine is None:
        with _lock:
            if _engine is None:
                _engine = create_engine()
    return _engine


def current_engine() -> Any:
    """The engine if it was created, else None (never creates one)."""
    return _engine


def reset() -> None:
    """Drop the engine and the client registry (for tests; connected
    clients of the old engine are not told)."""
    global _engine
    with _lock:
        _engine = None
        clients.CLIENTS.clear()


def _rate_limiter(values: Mapping[str, Any]) -> Any:
    from .ratelimit import from_settings

    return from_settings(
        values.get("SOCKETIO_RATE_LIMIT", settings.get("SOCKETIO_RATE_LIMIT")),
        values.get(
            "SOCKETIO_RATE_LIMIT_DISCONNECT_SECONDS",
            settings.get("SOCKETIO_RATE_LIMIT_DISCONNECT_SECONDS"),
        ),
    )


def _apply_limits(values: Mapping[str, Any]) -> None:
    """The limits that live in the websocket layer, process-wide."""
    from ._websocket import connection, handler

    connection.configure(
        per_client=values.get("SOCKETIO_MAX_QUEUED_BYTES"),
        total=values.get("SOCKETIO_MAX_QUEUED_BYTES_TOTAL"),
    )
    if "SOCKETIO_SEND_BUFFER_BYTES" in values:
        handler.SEND_BUFFER_BYTES = values["SOCKETIO_SEND_BUFFER_BYTES"]


def _apply(values: Mapping[str, Any]) -> None:
    engine = _engine
    if engine is None:
        return
    _apply_limits(values)
    if "SOCKETIO_RATE_LIMIT" in values or "SOCKETIO_RATE_LIMIT_DISCONNECT_SECONDS" in values:
        engine.rate_limiter = _rate_limiter(values)
    eio = engine.eio
    for name in ("SOCKETIO_MESSAGE_QUEUE", "SOCKETIO_FAST_PATH"):
        if name in values and values[name] != settings.get(name):
            raise ImproperlyConfigured(
                f"{name} cannot change once the server has started; set it in the settings "
                "module or call configure() before the first connection."
            )
    if "SOCKETIO_CORS_ALLOWED_ORIGINS" in values:
        eio.cors_allowed_origins = origins.policy(values["SOCKETIO_CORS_ALLOWED_ORIGINS"])
    if "SOCKETIO_STRICT_PROTOCOL" in values:
        engine.strict = values["SOCKETIO_STRICT_PROTOCOL"]
    if "SOCKETIO_CONNECT_TIMEOUT" in values:
        engine.connect_timeout = values["SOCKETIO_CONNECT_TIMEOUT"]
    if "SOCKETIO_MAX_MESSAGE_BYTES" in values:
        eio.max_http_buffer_size = values["SOCKETIO_MAX_MESSAGE_BYTES"]
    if "SOCKETIO_PING_INTERVAL" in values:
        eio.ping_interval = values["SOCKETIO_PING_INTERVAL"]
    if "SOCKETIO_PING_TIMEOUT" in values:
        eio.ping_timeout = values["SOCKETIO_PING_TIMEOUT"]


settings.on_change(_apply)
