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

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO") or ""
        if path.startswith(self.prefix):
            if path == self.script_path:
                return serve_client_script(environ, start_response)
            return self.engine.handle_request(environ, start_response)
        return self.app(environ, start_response)
