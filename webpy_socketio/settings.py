"""Settings, read from the application's settings module or given to
:func:`configure`.

The settings module is named by the ``WSIO_SETTINGS_MODULE`` environment
variable and defaults to ``settings`` (the ``settings.py`` beside ``app.py``
in a ``wsio new`` project). Only its ``SOCKETIO_*`` names are read; an
unknown ``SOCKETIO_*`` name is an error that names the closest valid one, so
a typo never passes silently. Values given to :func:`configure` win over the
module.

Read a setting as an attribute of this module::

    from webpy_socketio import settings
    settings.SOCKETIO_PORT
"""

from __future__ import annotations

import difflib
import importlib
import os
import threading
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from . import jsclient
from .exceptions import ImproperlyConfigured

#: The official client, pinned, as the socket.io documentation gives it, and
#: its subresource-integrity hash. The pin itself is in webpy_socketio.jsclient.
DEFAULT_CLIENT_URL = jsclient.CDN_URL
DEFAULT_CLIENT_INTEGRITY = jsclient.INTEGRITY

DEFAULTS: dict[str, Any] = {
    # Where ``wsio runserver`` and ``wsio serve`` listen by default.
    "SOCKETIO_HOST": "127.0.0.1",
    "SOCKETIO_PORT": 8000,
    # One line per received message, interpolated with the connect request's
    # environ keys plus TIME and MESSAGE; None turns the log off.
    "SOCKETIO_MESSAGE_LOG_FORMAT": (
        '%(REMOTE_ADDR)s - - [%(TIME)s] "Socket.IO message: %(MESSAGE)s"'
    ),
    # None: same origin only. A list such as ["https://example.com"] allows
    # those origins besides the app's own; "*" allows any.
    "SOCKETIO_CORS_ALLOWED_ORIGINS": None,
    # Where browsers load the official client from. A copy at
    # static/socket.io.min.js in the app's folder is used instead when present.
    "SOCKETIO_CLIENT_URL": DEFAULT_CLIENT_URL,
    # Integrity hash for a custom SOCKETIO_CLIENT_URL (None: no integrity
    # attribute). The default URL always carries its pinned hash.
    "SOCKETIO_CLIENT_INTEGRITY": None,
    # Largest message a client may send, in bytes; bigger ones close the
    # connection.
    "SOCKETIO_MAX_MESSAGE_BYTES": 100_000,
    # How many channels one socket may be subscribed to at a time.
    "SOCKETIO_MAX_CHANNELS_PER_SOCKET": 100,
    # Channels whose subscribers are tracked (presence): a list of channel
    # patterns such as ["^room-"]. None: only subscriptions an app tracks
    # with socket.track().
    "SOCKETIO_PRESENCE": None,
    # Seconds after which the presence members of a process that stopped
    # refreshing them (killed, machine lost) expire; each process refreshes
    # its own every third of this.
    "SOCKETIO_PRESENCE_TIMEOUT": 15,
    # Largest presence meta (socket.track(channel, key, meta)), in bytes of
    # JSON.
    "SOCKETIO_PRESENCE_MAX_META_BYTES": 2048,
    # "redis://host:port/db" to share broadcasts between processes.
    "SOCKETIO_MESSAGE_QUEUE": None,
    # Engine.IO heartbeat, in seconds. nginx timeouts must exceed their sum.
    "SOCKETIO_PING_INTERVAL": 25,
    "SOCKETIO_PING_TIMEOUT": 20,
    # Channels that keep their last messages, so a client that reconnects
    # gets what it missed: {"^room-": {"size": 200, "ttl": 600}} (a channel
    # pattern, messages kept, seconds kept). None: no history.
    "SOCKETIO_HISTORY": None,
    # Close a connection whose session has connected no namespace this many
    # seconds after its handshake (as Node socket.io's connectTimeout); None
    # turns it off.
    "SOCKETIO_CONNECT_TIMEOUT": 45,
    # A malformed packet (or one for a namespace the client has not
    # connected) closes the connection, as Node socket.io does; False drops
    # the packet and keeps the connection.
    "SOCKETIO_STRICT_PROTOCOL": True,
    # This project's fast path for the commonest packets; False runs
    # python-socketio's and engine.io's own code paths (the same protocol,
    # more CPU), e.g. to tell whether a problem comes from the fast path.
    "SOCKETIO_FAST_PATH": True,
    # Log a warning, with the stack, when code (a handler's blocking call)
    # holds the event loop, and so every connection, longer than this many
    # seconds; None turns the watch off.
    "SOCKETIO_BLOCKING_WARNING_SECONDS": 0.5,
    # Bytes queued in the process for one client that reads slower than it is
    # written to (beyond what the kernel buffers) before it is disconnected.
    "SOCKETIO_MAX_QUEUED_BYTES": 16 * 1024 * 1024,
    # Bytes queued for all clients of the process together; when reached, the
    # clients with the largest queues are disconnected first.
    "SOCKETIO_MAX_QUEUED_BYTES_TOTAL": 64 * 1024 * 1024,
    # The kernel send buffer of each accepted connection (SO_SNDBUF), in
    # bytes; None keeps the kernel's own sizing (megabytes per slow client).
    "SOCKETIO_SEND_BUFFER_BYTES": 256 * 1024,
    # Rate limits per socket on the events a client sends, for every event
    # ("*") and per event name: {"*": "50/s burst 100", "message": "10/s"},
    # byte rules with a unit ("64KB/s burst 256KB"). None: no limit.
    "SOCKETIO_RATE_LIMIT": None,
    # A client that stays over its rate limit this many seconds is
    # disconnected; None: never.
    "SOCKETIO_RATE_LIMIT_DISCONNECT_SECONDS": 10,
    # Prometheus metrics: a path on the app's port ("/metrics"), an address
    # of their own ("127.0.0.1:9300"), or None (off).
    "SOCKETIO_METRICS": None,
    # Seconds between two heartbeats a process sends itself through the
    # message queue, to find a deaf subscription (and re-subscribe); None: off.
    "SOCKETIO_QUEUE_HEARTBEAT": 5,
    # The official Socket.IO Admin UI: {"username": ..., "password": ...}
    # (read-only unless "read_only": False); None: off.
    "SOCKETIO_ADMIN_UI": None,
}

_lock = threading.Lock()
_overrides: dict[str, Any] = {}
_module_values: dict[str, Any] | None = None
_listeners: list[Callable[[Mapping[str, Any]], None]] = []


def _check_name(name: str, where: str) -> None:
    if name in DEFAULTS:
        return
    close = difflib.get_close_matches(name, list(DEFAULTS), n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]}?" if close else ""
    valid = ", ".join(sorted(DEFAULTS))
    raise ImproperlyConfigured(f"Unknown setting {name} {where}.{hint} Valid settings: {valid}.")


def _positive_int(name: str, value: Any, upper: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ImproperlyConfigured(f"{name} must be a positive integer, not {value!r}.")
    if upper is not None and value > upper:
        raise ImproperlyConfigured(f"{name} must be at most {upper}, not {value!r}.")


def _check_value(name: str, value: Any) -> None:
    """Raise :class:`ImproperlyConfigured` when ``value`` cannot work for
    ``name``; the message says what is expected."""
    if name == "SOCKETIO_PORT":
        _positive_int(name, value, 65535)
    elif name in (
        "SOCKETIO_MAX_MESSAGE_BYTES",
        "SOCKETIO_MAX_CHANNELS_PER_SOCKET",
        "SOCKETIO_PRESENCE_MAX_META_BYTES",
        "SOCKETIO_MAX_QUEUED_BYTES",
        "SOCKETIO_MAX_QUEUED_BYTES_TOTAL",
    ):
        _positive_int(name, value)
    elif name == "SOCKETIO_PRESENCE":
        from ._presence import check_setting as check_presence

        check_presence(value)
    elif name == "SOCKETIO_PRESENCE_TIMEOUT":
        # each process refreshes its members every third of it, in Redis
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 1:
            raise ImproperlyConfigured(
                f"{name} must be a number of seconds of at least 1, not {value!r}."
            )
    elif name == "SOCKETIO_SEND_BUFFER_BYTES":
        if value is not None:
            _positive_int(name, value)
            if value < 4096:
                raise ImproperlyConfigured(
                    f"{name} must be at least 4096 bytes (or None for the kernel's own "
                    f"sizing), not {value!r}."
                )
    elif name == "SOCKETIO_RATE_LIMIT":
        from .ratelimit import parse_setting

        parse_setting(value)
    elif name == "SOCKETIO_RATE_LIMIT_DISCONNECT_SECONDS":
        from .ratelimit import check_disconnect_setting

        check_disconnect_setting(value)
    elif name == "SOCKETIO_ADMIN_UI":
        from .admin import check_setting as check_admin

        check_admin(value)
    elif name == "SOCKETIO_METRICS":
        from .metrics import check_setting

        check_setting(value)
    elif name == "SOCKETIO_HISTORY":
        from ._history import check_setting

        check_setting(value)
    elif name in ("SOCKETIO_STRICT_PROTOCOL", "SOCKETIO_FAST_PATH"):
        if not isinstance(value, bool):
            raise ImproperlyConfigured(f"{name} must be True or False, not {value!r}.")
    elif name in (
        "SOCKETIO_PING_INTERVAL",
        "SOCKETIO_PING_TIMEOUT",
        "SOCKETIO_BLOCKING_WARNING_SECONDS",
        "SOCKETIO_CONNECT_TIMEOUT",
        "SOCKETIO_QUEUE_HEARTBEAT",
    ):
        optional = name in (
            "SOCKETIO_BLOCKING_WARNING_SECONDS",
            "SOCKETIO_CONNECT_TIMEOUT",
            "SOCKETIO_QUEUE_HEARTBEAT",
        )
        if optional and value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            also = {
                "SOCKETIO_BLOCKING_WARNING_SECONDS": " (or None to turn the warning off)",
                "SOCKETIO_CONNECT_TIMEOUT": " (or None for no limit)",
                "SOCKETIO_QUEUE_HEARTBEAT": " (or None for no heartbeat)",
            }.get(name, "")
            raise ImproperlyConfigured(
                f"{name} must be a positive number of seconds{also}, not {value!r}."
            )
    elif name in ("SOCKETIO_HOST", "SOCKETIO_CLIENT_URL"):
        if not isinstance(value, str) or not value.strip():
            raise ImproperlyConfigured(f"{name} must be a non-empty string, not {value!r}.")
    elif name in ("SOCKETIO_CLIENT_INTEGRITY", "SOCKETIO_MESSAGE_QUEUE"):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ImproperlyConfigured(f"{name} must be None or a non-empty string, not {value!r}.")
        if name == "SOCKETIO_MESSAGE_QUEUE" and value and "://" not in value:
            raise ImproperlyConfigured(
                f"{name} must be a URL such as 'redis://127.0.0.1:6379/0', not {value!r}."
            )
    elif name == "SOCKETIO_MESSAGE_LOG_FORMAT":
        if value is None:
            return
        if not isinstance(value, str):
            raise ImproperlyConfigured(f"{name} must be a %-format string or None, not {value!r}.")
        try:
            value % _AnyKey()
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(
                f"{name} is not a valid %-format string ({exc}); use keys such as "
                "%(REMOTE_ADDR)s, %(TIME)s and %(MESSAGE)s."
            ) from None
    elif name == "SOCKETIO_CORS_ALLOWED_ORIGINS":
        if value is None or value == "*" or callable(value):
            return
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple) or not all(isinstance(o, str) for o in value):
            raise ImproperlyConfigured(
                f"{name} must be None (same origin), '*', or a list of origins such as "
                f"['https://example.com'], not {value!r}."
            )


class _AnyKey(dict):
    """A mapping that answers every key, to test a log format once."""

    def __missing__(self, key: str) -> str:
        return "-"


def _read_module() -> dict[str, Any]:
    explicit = bool(os.environ.get(MODULE_ENV, "").strip())
    name = selected_module()
    try:
        module: ModuleType = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if not explicit and exc.name == name:
            return {}  # no settings module: defaults apply
        raise ImproperlyConfigured(
            f"Could not import the settings module {name!r} ({exc}). Check "
            "WSIO_SETTINGS_MODULE or the --settings option."
        ) from None
    values = {}
    for attr in dir(module):
        if attr.startswith("SOCKETIO_"):
            _check_name(attr, f"in settings module {name!r}")
            value = getattr(module, attr)
            _check_value(attr, value)
            values[attr] = value
    return values


def _module() -> dict[str, Any]:
    global _module_values
    if _module_values is None:
        with _lock:
            if _module_values is None:
                _module_values = _read_module()
    return _module_values


def get(name: str) -> Any:
    """Return the current value of the setting ``name``.

    :raises ImproperlyConfigured: for a name that is not a setting.
    """
    if name in _overrides:
        return _overrides[name]
    if name not in DEFAULTS:
        _check_name(name, "requested")
    return _module().get(name, DEFAULTS[name])


def configure(**values: Any) -> None:
    """Set settings in code; they win over the settings module::

        webpy_socketio.configure(SOCKETIO_CORS_ALLOWED_ORIGINS=["https://example.com"])

    :raises ImproperlyConfigured: for an unknown name or a bad value, before
        anything is changed.
    """
    for name, value in values.items():
        _check_name(name, "passed to configure()")
        _check_value(name, value)
    for listener in list(_listeners):
        listener(values)
    _overrides.update(values)


def on_change(listener: Callable[[Mapping[str, Any]], None]) -> None:
    """Call ``listener(values)`` before :func:`configure` applies new values;
    the listener may raise :class:`ImproperlyConfigured` to refuse them."""
    _listeners.append(listener)


def reset() -> None:
    """Forget values given to :func:`configure` and re-read the settings
    module on next use (for tests)."""
    global _module_values
    _overrides.clear()
    _module_values = None


def as_dict() -> dict[str, Any]:
    """Every setting with its current value."""
    return {name: get(name) for name in DEFAULTS}


def __getattr__(name: str) -> Any:
    if name.startswith("SOCKETIO_"):
        return get(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- which module the settings come from -------------------------------------------

#: The environment variable naming the settings module (``wsio runserver
#: --settings`` and ``wsio serve --settings`` set it for their processes).
MODULE_ENV = "WSIO_SETTINGS_MODULE"
#: The settings module when :data:`MODULE_ENV` is not set.
DEFAULT_MODULE = "settings"


def selected_module() -> str:
    """The name of the module settings are read from."""
    return os.environ.get(MODULE_ENV, "").strip() or DEFAULT_MODULE
