"""The process-wide python-socketio server that carries every socket.

It is created on first use from the settings, so ``configure()`` must come
before the first connection for the settings that shape it (the message
queue); the others (origins, message size, heartbeat) are applied live.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from . import clients, settings
from .exceptions import ImproperlyConfigured

_lock = threading.Lock()
_engine: Any = None


def _own_origins(environ: Mapping[str, Any]) -> list[str]:
    """The origins of the app's own pages for this request: the Host it was
    asked for and, behind a proxy, the scheme and host the proxy forwards
    (as engine.io computes them for its same-origin default)."""
    host = environ.get("HTTP_HOST")
    if not host:
        return []
    scheme = environ.get("wsgi.url_scheme", "http")
    origins = [f"{scheme}://{host}"]
    if "HTTP_X_FORWARDED_PROTO" in environ or "HTTP_X_FORWARDED_HOST" in environ:
        proto = environ.get("HTTP_X_FORWARDED_PROTO", scheme).split(",")[0].strip()
        forwarded = environ.get("HTTP_X_FORWARDED_HOST", host).split(",")[0].strip()
        origins.append(f"{proto}://{forwarded}")
    return origins


class _SameOriginAnd:
    """engine.io origin check: the app's own origin plus a list of others."""

    def __init__(self, others: list[str]) -> None:
        self.others = frozenset(others)

    def __repr__(self) -> str:
        return f"<same origin and {sorted(self.others)}>"

    def __call__(self, origin: str | None, environ: Mapping[str, Any]) -> bool:
        return origin in self.others or origin in _own_origins(environ)


def _cors(value: Any) -> Any:
    # None: same origin only (python-socketio's default too); "*": anyone; a
    # list adds origins to the app's own, so listing a partner site never
    # locks out the app's own pages
    if value is None or value == "*" or callable(value):
        return value
    return _SameOriginAnd([value] if isinstance(value, str) else list(value))


def client_manager(url: str | None, write_only: bool = False) -> Any:
    """The python-socketio manager for a message queue URL (None: in-memory,
    this process only). Redis URLs get :class:`~.messagequeue.RedisQueue`.

    :raises ImproperlyConfigured: when the queue's client library is missing.
    """
    if not url:
        return None
    from .messagequeue import queue_manager

    return queue_manager(url, write_only=write_only)


def create_engine() -> Any:
    """Build a python-socketio server from the current settings, with the
    webpy_socketio dispatcher installed."""
    from . import fastjson
    from .dispatch import Dispatcher
    from .fastpath import Server

    # python-socketio's server, with websocket packets written straight to
    # the sockets (fastpath.py): same protocol, a fraction of the CPU
    engine = Server(
        async_mode="gevent",
        client_manager=client_manager(settings.get("SOCKETIO_MESSAGE_QUEUE")),
        cors_allowed_origins=_cors(settings.get("SOCKETIO_CORS_ALLOWED_ORIGINS")),
        max_http_buffer_size=settings.get("SOCKETIO_MAX_MESSAGE_BYTES"),
        ping_interval=settings.get("SOCKETIO_PING_INTERVAL"),
        ping_timeout=settings.get("SOCKETIO_PING_TIMEOUT"),
        # one connection's events are handled in order, in that connection's
        # greenlet; other connections are not held up by a slow handler
        async_handlers=False,
        # orjson where it gives the same packets (fastjson.py)
        json=fastjson,
        logger=False,
        engineio_logger=False,
    )
    Dispatcher(engine).install()
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


def _apply(values: Mapping[str, Any]) -> None:
    engine = _engine
    if engine is None:
        return
    eio = engine.eio
    if "SOCKETIO_MESSAGE_QUEUE" in values and values["SOCKETIO_MESSAGE_QUEUE"] != settings.get(
        "SOCKETIO_MESSAGE_QUEUE"
    ):
        raise ImproperlyConfigured(
            "SOCKETIO_MESSAGE_QUEUE cannot change once the server has started; set it in "
            "the settings module or call configure() before the first connection."
        )
    if "SOCKETIO_CORS_ALLOWED_ORIGINS" in values:
        eio.cors_allowed_origins = _cors(values["SOCKETIO_CORS_ALLOWED_ORIGINS"])
    if "SOCKETIO_MAX_MESSAGE_BYTES" in values:
        eio.max_http_buffer_size = values["SOCKETIO_MAX_MESSAGE_BYTES"]
    if "SOCKETIO_PING_INTERVAL" in values:
        eio.ping_interval = values["SOCKETIO_PING_INTERVAL"]
    if "SOCKETIO_PING_TIMEOUT" in values:
        eio.ping_timeout = values["SOCKETIO_PING_TIMEOUT"]


settings.on_change(_apply)
