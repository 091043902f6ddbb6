"""Ending a server's sockets cleanly, and telling its pages what changed.

What a server process does when it stops on purpose: ``wsio serve`` on
SIGTERM, ``wsio runserver`` on every restart. Any program that runs
:class:`~webpy_socketio.SocketIOServer` itself can stop it the same way::

    from webpy_socketio.lifecycle import close_sockets

    server.close()               # accept no new connection
    left = close_sockets(10.0)   # on_disconnect, on_unsubscribe, on_finish run
    server.stop(timeout=1)

Both functions act on this process's sockets only, never through a message
queue: another process's sockets are that process's business.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from .wire import RELOAD as RELOAD_EVENT


def _engine() -> Any:
    # imported here: this module must stay importable before gevent patches
    from .engine import current_engine

    return current_engine()


def close_sockets(timeout: float) -> int:
    """Close every connected socket of this process at the Engine.IO level
    and wait, at most ``timeout`` seconds, until their handlers have run.

    ``on_disconnect``, ``on_unsubscribe`` (per channel) and ``on_finish``
    run for each socket; clients are told the transport closed, so the
    official client reconnects by itself.

    :returns: how many sockets were still registered when the time was up
        (0 when no server runs in this process).
    """
    import gevent
    from gevent.pool import Group

    from . import clients

    engine = _engine()
    if engine is None:
        return 0
    group = Group()
    for sid in list(clients.CLIENTS):
        eio_sid = engine.manager.eio_sid_from_sid(sid, "/")
        if eio_sid is not None:
            # one greenlet per socket: closing a long-polling socket waits
            # for its client's next poll, and a vanished client never polls
            group.spawn(engine.eio.disconnect, eio_sid)
    deadline = time.monotonic() + timeout
    group.join(timeout=timeout)
    while clients.count() and time.monotonic() < deadline:
        gevent.sleep(0.05)
    group.kill(block=False)
    return clients.count()


def notify_reload(changed: Iterable[str], reload: bool) -> bool:
    """Tell this process's pages that the server restarts because
    ``changed`` (paths relative to the project) changed.

    The event is :data:`RELOAD_EVENT` with ``{"reload": reload, "changed":
    [...]}``. Under ``wsio runserver`` the client extension (``wsio.js``)
    then reconnects as soon as the socket closes, without the client's
    back-off, and reloads the page when ``reload`` is true (a template or a
    static file changed).

    :returns: False when no server runs in this process (nobody to tell).
    """
    engine = _engine()
    if engine is None:
        return False
    payload = {"reload": bool(reload), "changed": sorted(changed)}
    engine.emit(RELOAD_EVENT, payload, namespace="/", ignore_queue=True)
    return True
