"""The gevent server that serves a web.py application with Socket.IO.

::

    from gevent import monkey; monkey.patch_all()   # first, before import web

    import web
    from webpy_socketio import SocketIOServer, socketio_urls

    urls = ("/", "index") + socketio_urls
    app = web.application(urls, globals())

    if __name__ == "__main__":
        SocketIOServer(("127.0.0.1", 8000), app.wsgifunc()).serve_forever()
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from gevent import pywsgi

from .exceptions import MonkeyPatchError, WebpySocketIOError
from .middleware import SocketIOMiddleware


class AddressInUse(WebpySocketIOError, OSError):
    """Raised when the server's port is already taken."""

    def __str__(self) -> str:
        return str(self.strerror)


def check_monkey_patched() -> None:
    """Raise :class:`MonkeyPatchError` unless gevent patched the standard
    library, and did so before web.py was imported.

    The second check matters most: web.py binds ``threading.local`` at
    import time, so when it was imported first, ``web.ctx`` is one object
    shared by every concurrent request, and nothing else fails loudly.
    """
    from gevent import monkey

    fix = (
        "Put 'from gevent import monkey; monkey.patch_all()' at the very top of your "
        "program, before 'import web' and before any import of webpy_socketio, or start "
        "it with 'wsio runserver' / 'wsio serve', which patch first."
    )
    missing = [
        name for name in ("socket", "threading", "select") if not monkey.is_module_patched(name)
    ]
    if missing:
        raise MonkeyPatchError(f"gevent has not monkey-patched {', '.join(missing)}. {fix}")
    web_utils = sys.modules.get("web.utils")
    local_class = getattr(web_utils, "threadlocal", None)
    if local_class is not None and not local_class.__module__.startswith("gevent"):
        raise MonkeyPatchError(
            "web.py was imported before gevent's monkey patching, so web.ctx would be shared "
            f"between concurrent requests. {fix}"
        )


def websocket_handler_class() -> type[pywsgi.WSGIHandler]:
    """The pywsgi handler that carries websockets.

    It hands an upgraded connection to this package's websocket transport
    (:mod:`webpy_socketio._websocket`) and sends no HTTP response after it,
    whichever websocket library engine.io would pick by itself.
    """
    from ._websocket.handler import WebSocketHandler

    return WebSocketHandler


def _enable_message_log(stream: Any) -> None:
    logger = logging.getLogger("webpy_socketio.messages")
    if logger.handlers:
        return  # the application configured logging itself
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


class SocketIOServer(pywsgi.WSGIServer):
    """A ``gevent.pywsgi.WSGIServer`` that also serves Socket.IO.

    :param listener: ``(host, port)``, or a bound listening socket.
    :param application: the WSGI application, usually ``app.wsgifunc()``.
    :param resource: the Socket.IO path (the client's ``path`` option).
    :param static: serve ``./static/`` at ``/static/`` as web.py's own
        development server does (nginx serves it in production).
    :param kwargs: passed to ``gevent.pywsgi.WSGIServer`` (``log``,
        ``error_log``, ``spawn``, ...).
    :raises MonkeyPatchError: when gevent's patching is missing or late.
    """

    def __init__(
        self,
        listener: Any,
        application: Callable[..., Any],
        resource: str = "socket.io",
        static: bool = True,
        **kwargs: Any,
    ) -> None:
        check_monkey_patched()
        self.resource = resource
        app: Callable[..., Any] = application
        if static and os.path.isdir("static"):
            from web.httpserver import StaticMiddleware

            app = StaticMiddleware(app)
        app = SocketIOMiddleware(app, resource=resource)
        kwargs.setdefault("handler_class", websocket_handler_class())
        #: whether requests are logged (``log=None`` turns it off; the
        #: handler then does not even format the lines)
        self.request_log = kwargs.get("log", "default") is not None
        super().__init__(listener, app, **kwargs)
        _enable_message_log(sys.stderr)
        from . import blocking, settings

        blocking.watch(settings.get("SOCKETIO_BLOCKING_WARNING_SECONDS"))
        from . import metrics

        #: the metrics' own listener, for an address setting
        self.metrics_listener = metrics.start(settings.get("SOCKETIO_METRICS"))

    def stop(self, timeout: float | None = None) -> None:
        """Stop as ``gevent.pywsgi.WSGIServer`` does (its request greenlets
        are ended after ``timeout``), and drop the websockets this server
        accepted that are still open: an idle one has no greenlet of its
        own to end (it is parked). For a clean end, with the handlers run,
        call :func:`webpy_socketio.lifecycle.close_sockets` first."""
        super().stop(timeout)
        from .engine import current_engine

        engine = current_engine()
        if engine is None:
            return
        for session in list(engine.eio.sockets.values()):
            transport = getattr(session, "transport", None)
            if transport is not None and transport.owner is self and transport.ws is not None:
                transport.ws.abort()

    def init_socket(self) -> None:
        try:
            super().init_socket()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            host, port = self.address[:2]
            raise AddressInUse(
                exc.errno,
                f"Port {port} on {host} is already in use; stop the other server or choose "
                "another port.",
            ) from None
