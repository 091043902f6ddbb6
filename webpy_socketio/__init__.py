"""Realtime websockets for web.py apps: channels, events and out-of-band
sends, on python-socketio and gevent.

Importing this package is light: it imports neither gevent nor web.py nor
python-socketio, so it can come first in a program (before gevent's
monkey patching) and in command-line tools. The server and the test client
load on first use.
"""

from __future__ import annotations

from typing import Any

from .emitter import Emitter, broadcast, broadcast_channel, emitter, history, presence, send
from .events import (
    on,
    on_connect,
    on_disconnect,
    on_error,
    on_finish,
    on_message,
    on_rate_limited,
    on_subscribe,
    on_unsubscribe,
)
from .exceptions import (
    Denied,
    EventError,
    ImproperlyConfigured,
    InvalidChannel,
    MessageQueueError,
    MonkeyPatchError,
    NoSocket,
    PresenceError,
    WebpySocketIOError,
)
from .requests import use_session
from .settings import configure
from .urls import socketio_urls

__all__ = [
    "Denied",
    "Emitter",
    "EventError",
    "ImproperlyConfigured",
    "InvalidChannel",
    "MessageQueueError",
    "MonkeyPatchError",
    "NoSocket",
    "PresenceError",
    "SocketIOServer",
    "WebpySocketIOError",
    "broadcast",
    "broadcast_channel",
    "configure",
    "emitter",
    "history",
    "on",
    "on_connect",
    "on_disconnect",
    "on_error",
    "on_finish",
    "on_message",
    "on_rate_limited",
    "on_subscribe",
    "on_unsubscribe",
    "presence",
    "send",
    "socketio_urls",
    "use_session",
]


def __getattr__(name: str) -> Any:
    # __version__ is read from the installed metadata only when asked for:
    # importlib.metadata alone costs more than the rest of this package, and
    # `wsio --help` imports the package
    if name == "__version__":
        from importlib import metadata

        try:
            return metadata.version("webpy-socketio")
        except metadata.PackageNotFoundError:  # a checkout that is not installed
            return "0+unknown"
    # the server imports gevent; load it only when asked for
    if name == "SocketIOServer":
        from .server import SocketIOServer

        return SocketIOServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
