"""Out-of-band sends: reach sockets from any web.py handler, a script or a
worker, outside of an event handler.

Without a message queue, these functions reach the sockets connected to
this process and raise :class:`~webpy_socketio.NoSocket` when none could
receive the message. With ``SOCKETIO_MESSAGE_QUEUE`` set, they publish to
the queue, every server process delivers to its own sockets, and NoSocket
is never raised: one process cannot know who is connected to the others.
A process that runs no server (a cron job, a worker) publishes through a
write-only emitter made on first use; there, a queue that cannot be reached
raises :class:`~webpy_socketio.MessageQueueError`, since no local socket got
the message either. A server process never raises it: its own sockets get
the message, and the outage is logged (see :mod:`.messagequeue`).

Each function takes ``namespace=`` (default ``"/"``): sockets, channels and
broadcasts belong to one namespace.
"""

from __future__ import annotations

import threading
from typing import Any

from . import _engine as boundary
from . import _history, _presence, channels, clients, settings
from .engine import client_manager, current_engine
from .exceptions import NoSocket
from .sockets import _payload
from .wire import DEFAULT_NAMESPACE, MESSAGE_EVENT


class Emitter:
    """Publishes to a message queue without running a server::

        from webpy_socketio import emitter
        news = emitter("redis://127.0.0.1:6379/0")
        news.broadcast_channel({"headline": "..."}, "news")

    :param url: the queue URL, as in ``SOCKETIO_MESSAGE_QUEUE``.

    It only publishes: it starts no listener and holds no subscription.
    Every method raises :class:`~webpy_socketio.MessageQueueError` when the
    message could not be published.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.manager = client_manager(url, write_only=True)

    def __repr__(self) -> str:
        return f"<Emitter {self.url}>"

    def emit(
        self,
        event: str,
        data: Any,
        to: Any = None,
        skip_sid: Any = None,
        namespace: str = DEFAULT_NAMESPACE,
    ) -> None:
        """Publish a named event to ``to`` (a session id, a room or a list
        of rooms; everybody in ``namespace`` when None)."""
        self.manager.emit(event, data, namespace=namespace, room=to, skip_sid=skip_sid)

    def send(self, session_id: str, message: Any, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.emit(MESSAGE_EVENT, _payload(message), to=session_id, namespace=namespace)

    def broadcast(self, message: Any, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.emit(MESSAGE_EVENT, _payload(message), namespace=namespace)

    def broadcast_channel(
        self,
        message: Any,
        channel: str,
        event: str = MESSAGE_EVENT,
        namespace: str = DEFAULT_NAMESPACE,
    ) -> None:
        rule = _history.policy(channels.validate(channel))
        if rule is not None:
            _history.publish_write_only(
                self.manager, namespace, channel, rule, event, [_payload(message)]
            )
            return
        self.emit(event, _payload(message), to=channels.room(channel), namespace=namespace)

    def history(
        self, channel: str, since: Any = None, limit: int = 50, namespace: str = DEFAULT_NAMESPACE
    ) -> _history.Page:
        """A channel's last messages, from the queue's Redis (see :func:`history`)."""
        return _history.page(self.manager, namespace, channels.validate(channel), since, limit)

    def presence(
        self, channel: str, namespace: str = DEFAULT_NAMESPACE
    ) -> dict[str, list[dict[str, Any]]]:
        """Who is in a channel, from the queue's Redis (see :func:`presence`)."""
        return _presence.members(self.manager, namespace, channels.validate(channel))


def emitter(url: str) -> Emitter:
    """A write-only :class:`Emitter` for the queue at ``url``."""
    return Emitter(url)


_queue_emitters: dict[str, Emitter] = {}
_queue_lock = threading.Lock()


def _through_queue() -> Any:
    """What publishes to the configured queue (the local engine when this
    process runs a server), or None when no queue is configured."""
    url = settings.get("SOCKETIO_MESSAGE_QUEUE")
    if not url:
        return None
    engine = current_engine()
    if engine is not None:
        return engine
    with _queue_lock:
        if url not in _queue_emitters:
            _queue_emitters[url] = Emitter(url)
        return _queue_emitters[url]


def _local_engine_or_raise(reason: str) -> Any:
    engine = current_engine()
    if engine is None:
        raise NoSocket(f"{reason} (no server has started in this process).")
    return engine


def _in(namespace: str) -> str:
    return "" if namespace == DEFAULT_NAMESPACE else f" in namespace {namespace!r}"


def send(session_id: str, message: Any, namespace: str = DEFAULT_NAMESPACE) -> None:
    """Send ``message`` to the socket whose id is ``session_id``.

    :raises NoSocket: without a queue, when no such socket is connected here.
    """
    target = _through_queue()
    if target is None:
        reason = f"There is no socket with session id {session_id!r}{_in(namespace)}"
        target = _local_engine_or_raise(reason)
        client = clients.get(session_id)
        if client is None or client.socket.namespace != namespace:
            raise NoSocket(f"{reason}.")
    target.emit(MESSAGE_EVENT, _payload(message), to=session_id, namespace=namespace)


def broadcast(message: Any, namespace: str = DEFAULT_NAMESPACE) -> None:
    """Send ``message`` to every connected socket of ``namespace``.

    :raises NoSocket: without a queue, when no socket is connected here.
    """
    target = _through_queue()
    if target is None:
        reason = f"There are no connected sockets to broadcast to{_in(namespace)}"
        target = _local_engine_or_raise(reason)
        if next(boundary.sockets_in(target, namespace), None) is None:
            raise NoSocket(f"{reason}.")
    target.emit(MESSAGE_EVENT, _payload(message), namespace=namespace)


def broadcast_channel(
    message: Any, channel: str, event: str = MESSAGE_EVENT, namespace: str = DEFAULT_NAMESPACE
) -> None:
    """Send ``message`` to every socket subscribed to ``channel``.

    :param event: the Socket.IO event name; ``"message"`` by default.
    :raises NoSocket: without a queue, when nobody here is subscribed (a
        channel with history has recorded the message all the same).
    :raises InvalidChannel: for a name that is not a valid channel.
    """
    channels.validate(channel)
    target = _through_queue()
    nobody = None
    if target is None:
        reason = f"There are no sockets subscribed to channel {channel!r}{_in(namespace)}"
        target = _local_engine_or_raise(reason)
        if not channels.members(target, channel, namespace):
            if _history.policy(channel) is None:
                raise NoSocket(f"{reason}.")
            # recorded all the same, for those who come back
            nobody = NoSocket(f"{reason} (the message is in its history).")
    if isinstance(target, Emitter):
        target.broadcast_channel(message, channel, event, namespace=namespace)
    else:
        _history.send_to_channels(target, namespace, [channel], event, [_payload(message)], None)
    if nobody is not None:
        raise nobody


def history(
    channel: str, since: Any = None, limit: int = 50, namespace: str = DEFAULT_NAMESPACE
) -> _history.Page:
    """The history of ``channel`` (it must match ``SOCKETIO_HISTORY``): its
    position and its last ``limit`` messages, oldest first, for a page's
    first render. The page hands ``page.position`` to the client, which
    subscribes with it as ``since`` and so misses nothing in between::

        page = history("room-42", limit=50)
        return render.room(page.messages, json.dumps(page.position))

    With ``since`` (a position), only the messages after it, and whether
    all of them could be served (``page.recovered``, ``page.reason``).

    :raises ValueError: for a channel without history or a bad ``since``.
    """
    channels.validate(channel)
    target = _through_queue()
    if isinstance(target, Emitter):
        return target.history(channel, since, limit, namespace)
    engine = current_engine()
    manager = engine.manager if engine is not None else None
    return _history.page(manager, namespace, channel, since, limit)


def presence(channel: str, namespace: str = DEFAULT_NAMESPACE) -> dict[str, list[dict[str, Any]]]:
    """Who is in ``channel``, across every process: ``{key: [meta, ...]}``,
    one meta per tracked subscription (a user with two tabs is one key with
    two metas), as the application gave them to ``socket.track()``; the
    socket's id and ``{}`` for subscriptions it did not track itself. From
    a handler, a web.py page or any process that has the queue configured::

        names = sorted(metas[0]["name"] for metas in presence("room-42").values())

    :raises PresenceError: for a channel without presence (no
        ``SOCKETIO_PRESENCE`` pattern matches it and none of its
        subscriptions is tracked).
    :raises InvalidChannel: for a name that is not a valid channel.
    """
    channels.validate(channel)
    target = _through_queue()
    if isinstance(target, Emitter):
        return target.presence(channel, namespace)
    engine = current_engine()
    manager = engine.manager if engine is not None else None
    return _presence.members(manager, namespace, channel)
