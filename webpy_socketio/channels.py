"""Channels: named groups of sockets, stored as python-socketio rooms.

A channel ``room-42`` is the room ``#room-42`` of the socket's namespace
(the same name in two namespaces is two channels). python-socketio also puts
every socket in a room named after its own session id; session ids use only
``[A-Za-z0-9_-]``, so the ``#`` prefix keeps a client from subscribing to a
"channel" that is really another socket's private room (and reading its
messages), in this process or, through the message queue, in any other.
"""

from __future__ import annotations

from typing import Any

from .exceptions import InvalidChannel

ROOM_PREFIX = "#"
#: Longest channel name accepted, in characters.
MAX_CHANNEL_LENGTH = 200


def validate(channel: Any) -> str:
    """Return ``channel`` if it is a usable channel name.

    :raises InvalidChannel: with a message fit to show the client.
    """
    if not isinstance(channel, str):
        raise InvalidChannel(f"channel must be a string, not {type(channel).__name__}")
    if not channel:
        raise InvalidChannel("channel must not be empty")
    if len(channel) > MAX_CHANNEL_LENGTH:
        raise InvalidChannel(f"channel is longer than {MAX_CHANNEL_LENGTH} characters")
    if not channel.isprintable():
        raise InvalidChannel("channel must not contain control characters")
    return channel


def room(channel: str) -> str:
    """The room name that stores ``channel``."""
    return ROOM_PREFIX + channel


def members(engine: Any, channel: str, namespace: str = "/") -> list[str]:
    """Session ids of this process's sockets subscribed to ``channel``."""
    from . import _engine as boundary

    return boundary.room_members(engine, namespace, room(channel))
