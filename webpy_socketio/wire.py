"""Every name webpy-socketio puts on the wire, or keeps off it.

The README's wire protocol section documents these; the client extension
(``static/wsio.js``) uses the same strings.
"""

from __future__ import annotations

#: The Socket.IO event of ``socket.send(data)`` in the browser and of
#: :meth:`~webpy_socketio.sockets.Socket.send` on the server.
MESSAGE_EVENT = "message"

#: Prefix of the events webpy-socketio itself uses; an application cannot
#: register handlers for names that start with it.
PROTOCOL_PREFIX = "wsio:"
#: Client -> server: subscribe to a channel (acked ``{"ok": ...}``).
SUBSCRIBE = "wsio:subscribe"
#: Client -> server: unsubscribe from a channel.
UNSUBSCRIBE = "wsio:unsubscribe"
#: Server -> client, under ``wsio runserver``: a template or static file
#: changed (``{"reload": true}``), or the app reloaded.
RELOAD = "wsio:reload"
#: Local event of the client extension (never sent): a channel that the
#: server refused when it was subscribed again after a reconnect.
REFUSED = "wsio:refused"
#: Local event of the client extension: a channel whose history could not
#: cover what the client missed (the page reloads from the app's data).
RECOVERY_FAILED = "wsio:recovery-failed"
#: The key of the last argument of a channel message with history: its
#: position, ``{"channel", "epoch", "offset"}``.
POSITION_KEY = "wsio:position"

#: Names socket.io-client reserves on the browser side, plus the engine's
#: own: an application cannot register handlers for these with ``on()``,
#: and a client's event with one of them is dropped (python-socketio would
#: call its own "connect" or "disconnect" handler with what the client
#: sent). "*" is python-socketio's catch-all: an event of that name would
#: reach it without its name.
RESERVED_EVENT_NAMES = frozenset(
    {
        "*",
        "connect",
        "connect_error",
        "disconnect",
        "disconnecting",
        "newListener",
        "removeListener",
    }
)

#: The namespace a client reaches with ``io()`` / ``io(url)``.
DEFAULT_NAMESPACE = "/"
#: What a client that asks for a namespace no handler is registered for is
#: told (``CONNECT_ERROR``), as Node socket.io says it.
INVALID_NAMESPACE = "Invalid namespace"
