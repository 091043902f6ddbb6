"""The web.py URL mapping: ``urls += socketio_urls``.

Handlers are named by import string, so ``import webpy_socketio`` does not
import web.py (which must come after gevent's monkey patching).

Under :class:`~webpy_socketio.server.SocketIOServer`, the middleware answers
these paths before web.py sees them. Under any other WSGI server (gunicorn's
gevent websocket worker, say) this route carries the traffic, with two
adjustments web.py needs: the POST body is handed over intact even when a
processor has already read it, and web.py's response headers are set from
the engine's.
"""

from __future__ import annotations

import io
from typing import Any

from .middleware import SCRIPT_NAME, serve_client_script

socketio_urls = (
    # the dot is escaped: "/socketXio/" is the app's path, not the engine's
    r"/socket\.io/.*",
    "webpy_socketio.urls.SocketIOHandler",
)


def _body_refusal(environ: dict[str, Any], limit: int | None) -> str | None:
    """The status that refuses a POST before its body is read, or None.

    ``web.data()`` reads as many bytes as Content-Length announces, so a
    request that announces gigabytes would make the process allocate them.
    """
    import web

    if "data" in web.ctx:
        return None  # already read by a processor: nothing left to guard
    declared = environ.get("CONTENT_LENGTH") or "0"
    try:
        length = int(declared)
    except ValueError:
        return "400 Bad Request"
    if length < 0:
        return "400 Bad Request"
    if limit is not None and length > limit:
        return "413 Payload Too Large"
    return None


class SocketIOHandler:
    """web.py handler class for ``/socket.io/``."""

    def _dispatch(self) -> bytes:
        import web

        from .engine import get_engine

        environ = web.ctx.env
        status_headers: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            status_headers[:] = [status, headers]
            return lambda data: None

        if environ.get("PATH_INFO", "").endswith("/" + SCRIPT_NAME):
            body = b"".join(serve_client_script(environ, start_response))
        else:
            engine = get_engine()
            refusal = None
            if environ.get("REQUEST_METHOD") == "POST":
                refusal = _body_refusal(environ, engine.eio.max_http_buffer_size)
                if refusal is None:
                    # a processor may have consumed wsgi.input already;
                    # web.data() returns the cached body either way
                    environ = dict(environ, **{"wsgi.input": io.BytesIO(web.data())})
            if refusal is not None:
                start_response(refusal, [("Content-Type", "text/plain")])
                body = refusal.encode()
            else:
                body = b"".join(engine.handle_request(environ, start_response) or [])
        if status_headers:
            web.ctx.status = status_headers[0]
            for name, value in status_headers[1]:
                web.header(name, value, unique=False)
        return body

    GET = POST = OPTIONS = _dispatch
