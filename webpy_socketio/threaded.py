"""Handlers that run in gevent's thread pool (``threaded=True``).

A CPU-bound handler (a report, an image, a long calculation) holds the
event loop, and so every connection, until it returns. Registered with
``threaded=True`` it runs in a thread of gevent's pool instead: its own
connection waits for it, so that connection's events stay in order, and
every other connection goes on meanwhile::

    @on("report", threaded=True)
    def report(request, socket, context, spec):
        return build_the_report(spec)      # seconds of CPU, the others unaffected

The thread never touches the event loop itself. The ``socket`` it gets
sends through the loop: ``send``, ``emit``, the broadcasts, ``subscribe``,
``unsubscribe`` and ``disconnect`` are handed to a greenlet that runs them
in order, and they all go out before the handler's acknowledgement.
``channels``, ``transport`` and ``connected`` are read when the handler
starts. Anything else the handler does must be safe in a thread (plain
computation, thread-safe libraries); gevent's pool has 10 threads unless
``gevent.get_hub().threadpool.maxsize`` is changed.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable
from typing import Any

#: the socket methods a threaded handler may call: run in the event loop
_SENDS = (
    "send",
    "emit",
    "broadcast",
    "send_and_broadcast",
    "broadcast_channel",
    "send_and_broadcast_channel",
    "subscribe",
    "unsubscribe",
    "disconnect",
)


class ThreadSocket:
    """What a threaded handler gets as ``socket`` (module docstring)."""

    def __init__(self, socket: Any) -> None:
        import gevent

        self._socket = socket
        self._loop = gevent.get_hub().loop
        self._calls: deque[tuple[Callable[..., Any], tuple, dict]] = deque()
        self._drainer: Any = None
        self._done = gevent.event.Event()
        self._done.set()
        self.session_id = socket.session_id
        self.namespace = socket.namespace
        self.session = socket.session
        self.disconnect_reason = socket.disconnect_reason
        self.channels = socket.channels
        self.transport = socket.transport
        self.connected = socket.connected

    def __repr__(self) -> str:
        return f"<ThreadSocket {self.session_id}>"

    def __getattr__(self, name: str) -> Any:
        if name in _SENDS:
            method = getattr(self._socket, name)
            return functools.partial(self._call, method)
        raise AttributeError(
            f"{name!r}: a threaded handler's socket offers {', '.join(_SENDS)} and the "
            "connection's attributes"
        )

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        # in the handler's thread: queue it, and wake the loop
        self._calls.append((method, args, kwargs))
        self._loop.run_callback_threadsafe(self._kick)

    def _kick(self) -> None:
        # in the loop: one greenlet runs the calls, in order
        import gevent

        if self._drainer is None:
            self._done.clear()
            self._drainer = gevent.spawn(self._drain)

    def _drain(self) -> None:
        try:
            while self._calls:
                method, args, kwargs = self._calls.popleft()
                try:
                    method(*args, **kwargs)
                except Exception:
                    import logging

                    logging.getLogger("webpy_socketio").exception(
                        "%s from a threaded handler raised", getattr(method, "__name__", method)
                    )
        finally:
            self._drainer = None
            self._done.set()

    def finish(self) -> None:
        """In the loop, after the handler returned: wait until every call it
        made has run (so they go out before its acknowledgement)."""
        while self._calls or self._drainer is not None:
            if self._drainer is None:
                self._kick()
            self._done.wait()


def in_thread(handler: Callable[..., Any]) -> Callable[..., Any]:
    """``handler`` made to run in gevent's thread pool (module docstring)."""

    @functools.wraps(handler)
    def run(request: Any, socket: Any, context: dict, *args: Any) -> Any:
        import gevent

        proxy = ThreadSocket(socket)
        try:
            return gevent.get_hub().threadpool.apply(handler, (request, proxy, context, *args))
        finally:
            proxy.finish()

    run.wsio_threaded = True  # type: ignore[attr-defined]
    return run
