"""Exceptions raised by webpy_socketio.

Every exception derives from :class:`WebpySocketIOError`, so an application
can catch the whole family with one ``except`` clause.
"""

from __future__ import annotations


class WebpySocketIOError(Exception):
    """Base class of every error raised by webpy_socketio."""


class ImproperlyConfigured(WebpySocketIOError):
    """Raised when a setting is unknown, has a bad value, or is changed at a
    moment it can no longer take effect."""


class MonkeyPatchError(ImproperlyConfigured):
    """Raised when the server starts in a process where gevent's monkey
    patching is missing or came after ``import web``.

    web.py binds ``threading.local`` when it is imported; imported before
    patching, ``web.ctx`` is shared by every greenlet, so concurrent requests
    would silently see each other's data.
    """


class EventError(WebpySocketIOError):
    """Raised when an event handler is registered wrongly: a channel pattern
    on an event that has no channel, a pattern that does not compile, a
    handler that is not callable, or a reserved event name."""


class InvalidChannel(WebpySocketIOError, ValueError):
    """Raised when a channel name is not a non-empty string of printable
    characters within the length limit."""


class PresenceError(WebpySocketIOError, ValueError):
    """Raised when a presence key or meta cannot be tracked (a key that is
    not a non-empty string within the length limit; a meta that is not a
    JSON object, cannot be encoded as JSON or is over
    ``SOCKETIO_PRESENCE_MAX_META_BYTES``), and by
    :func:`~webpy_socketio.presence` for a channel without presence. Nothing
    is changed when it is raised."""


class NoSocket(WebpySocketIOError):
    """Raised by the out-of-band :func:`~webpy_socketio.send`,
    :func:`~webpy_socketio.broadcast` and
    :func:`~webpy_socketio.broadcast_channel` when no connected socket in
    this process could receive the message.

    With a message queue configured, sockets may live in other processes, so
    these functions publish to the queue and never raise it.
    """


class MessageQueueError(WebpySocketIOError):
    """Raised when the message queue (``SOCKETIO_MESSAGE_QUEUE``) cannot be
    reached: when a server starts, or when a process that runs no server
    publishes (its message was not sent). A running server does not raise
    it: its own sockets still get every message, and the outage is logged."""


class Denied(WebpySocketIOError):
    """Raised by an ``on_connect`` or ``on_subscribe`` handler to refuse the
    connection or the subscription. The message, when given, is what the
    client is told::

        @on_subscribe(channel="^admin-")
        def only_admins(request, socket, context, channel):
            if not request.session or not request.session.get("admin"):
                raise Denied("admins only")
    """

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
