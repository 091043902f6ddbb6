"""WSGI glue: hands the Socket.IO resource to the engine, the rest to the
web.py application.

:class:`~webpy_socketio.server.SocketIOServer` wraps every application in
this middleware, so Socket.IO traffic reaches the engine before web.py:
web.py processors (sessions, database transactions, body-reading hooks)
never run per poll, and long-polling keeps its request body. The route in
``socketio_urls`` does the same job when the app runs under another server.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any

from .engine import get_engine

SCRIPT_NAME = "wsio.js"
#: The health endpoint, under the Socket.IO resource (``/socket.io/health``).
HEALTH_NAME = "health"

_script: tuple[bytes, str] | None = None


def client_script() -> tuple[bytes, str]:
    """The extension script's bytes and their ETag."""
    global _script
    if _script is None:
        body = resources.files("webpy_socketio").joinpath("static", SCRIPT_NAME).read_bytes()
        _script = (body, '"' + hashlib.sha256(body).hexdigest()[:16] + '"')
    return _script


def serve_client_script(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    body, etag = client_script()
    if environ.get("HTTP_IF_NONE_MATCH") == etag:
        start_response("304 Not Modified", [("ETag", etag)])
        return []
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/javascript; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-cache"),
            ("ETag", etag),
        ],
    )
    return [body]


def serve_health(
    engine: Any, environ: dict[str, Any], start_response: Callable[..., Any]
) -> list[bytes]:
    """200 while this process serves and its message queue (if any) hears
    its heartbeat; 503 with the reason otherwise. JSON either way::

        {"status": "ok", "queue": {"healthy": true, "lag": 0.0004, ...}}
        {"status": "unhealthy", "reason": "message queue subscription deaf: ..."}
    """
    import json

    from . import _engine as boundary

    queue = boundary.queue_health(engine)
    reason = queue["reason"] if queue is not None and not queue["healthy"] else None
    body = {"status": "ok" if reason is None else "unhealthy", "queue": queue}
    if reason is not None:
        body["reason"] = reason
    data = json.dumps(body).encode()
    start_response(
        "200 OK" if reason is None else "503 Service Unavailable",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"),
        ],
    )
    return [] if environ.get("REQUEST_METHOD") == "HEAD" else [data]


def resource_prefix(resource: str) -> str:
    """``"socket.io"`` -> ``"/socket.io/"``."""
    return "/" + resource.strip("/") + "/"


class SocketIOMiddleware:
    """Serve ``/<resource>/`` with the engine and everything else with
    ``app``.

    :param app: the web.py application's WSGI callable (``app.wsgifunc()``).
    :param resource: the Socket.IO path, ``socket.io`` unless the client
        was given another ``path``.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], resource: str = "socket.io") -> None:
        self.app = app
        self.engine = get_engine()
        self.prefix = resource_prefix(resource)
        self.script_path = self.prefix + SCRIPT_NAME
        self.health_path = self.prefix + HEALTH_NAME
        from . import settings

        metrics = settings.get("SOCKETIO_METRICS")
        #: the metrics' path on this port, when they are served here
        self.metrics_path = metrics if isinstance(metrics, str) and metrics[:1] == "/" else None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO") or ""
        if path == self.metrics_path:
            from . import metrics

            return metrics.serve(environ, start_response)
        if path.startswith(self.prefix):
            if path == self.script_path:
                return serve_client_script(environ, start_response)
            if path == self.health_path:
                return serve_health(self.engine, environ, start_response)
            return self.engine.handle_request(environ, start_response)
        return self.app(environ, start_response)
