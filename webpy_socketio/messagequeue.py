"""The message queue that joins several server processes
(``SOCKETIO_MESSAGE_QUEUE``).

python-socketio's Redis manager does the work: every broadcast is delivered
to this process's sockets and published on a Redis channel, where the other
processes pick it up. :class:`RedisQueue` changes how it behaves when Redis
goes away, because the stock behaviour does not fit a chat server:

- the stock manager logs two errors for every message sent while Redis is
  down; here the loss is logged once, and the return once, with the number
  of messages that could not be shared;
- it waits up to 5 s per connection attempt (redis-py's default) and tries
  twice per message, which would stall the handler that sends; here a failed
  attempt opens a short pause during which messages are delivered locally
  at once and not offered to Redis;
- it waits up to 60 s between listener reconnections; here at most
  :data:`MAX_RETRY_DELAY`, so cross-process delivery resumes soon after Redis
  is back;
- it subscribes on the first client connection; here the server subscribes
  when it starts, so a Redis that is down at start is a clear error, and a
  broadcast made right after a client connects cannot be missed;
- it publishes every send, even one to a socket of this very process; here
  those are delivered locally only.

Local delivery never depends on Redis: the manager hands a message to this
process's sockets before it publishes it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .exceptions import ImproperlyConfigured, MessageQueueError

#: Seconds a connection attempt to Redis may take.
CONNECT_TIMEOUT = 3.0
#: How long a starting server waits for its subscription.
START_TIMEOUT = 10.0

_REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel")
_VALKEY_SCHEMES = ("valkey", "valkeys", "valkey+sentinel")


def describe(url: str) -> str:
    """``url`` with its password hidden, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower()


def _require(module: str, url: str, extra: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise ImproperlyConfigured(
            f"SOCKETIO_MESSAGE_QUEUE={describe(url)!r} needs the {module} package, which is not "
            f"installed: pip install {extra}."
        ) from None


def queue_manager(url: str, write_only: bool = False) -> Any:
    """The python-socketio client manager for ``url``.

    :param write_only: publish only (for processes that run no server).
    :raises ImproperlyConfigured: when the queue's client library is missing.
    """
    scheme = _scheme(url)
    if scheme in _REDIS_SCHEMES:
        _require("redis", url, "'webpy-socketio[redis]'")
    elif scheme in _VALKEY_SCHEMES:
        _require("valkey", url, "valkey")
    if scheme in _REDIS_SCHEMES + _VALKEY_SCHEMES:
        from . import settings
        from ._engine.redis_queue import RedisQueue

        return RedisQueue(
            url, write_only=write_only, heartbeat=settings.get("SOCKETIO_QUEUE_HEARTBEAT")
        )
    _require("kombu", url, "kombu (only redis:// URLs work out of the box)")
    import socketio

    return socketio.KombuManager(url, write_only=write_only)


def check_reachable(url: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Connect to the queue at ``url`` once, from any process (gevent or not).

    :raises ImproperlyConfigured: when the queue's client library is missing.
    :raises MessageQueueError: naming the queue and the reason.
    """
    scheme = _scheme(url)
    if scheme not in _REDIS_SCHEMES + _VALKEY_SCHEMES:
        return  # other brokers are checked by kombu when the server starts
    if scheme in _REDIS_SCHEMES:
        _require("redis", url, "'webpy-socketio[redis]'")
    else:
        _require("valkey", url, "valkey")
    from ._engine.redis_queue import ping

    try:
        ping(url, timeout)
    except Exception as exc:
        raise MessageQueueError(
            f"Cannot reach the message queue {describe(url)} ({reason(exc)}). Start it, or "
            "fix SOCKETIO_MESSAGE_QUEUE."
        ) from None


def start(engine: Any, timeout: float = START_TIMEOUT) -> None:
    """Start ``engine``'s queue listener now and wait until it has
    subscribed (python-socketio would start it on the first connection).

    :raises MessageQueueError: when the queue cannot be reached in time.
    """
    from ._engine.redis_queue import RedisQueue

    manager = engine.manager
    if engine.manager_initialized:
        return
    engine.manager_initialized = True
    manager.initialize()
    if isinstance(manager, RedisQueue) and not manager.wait_subscribed(timeout):
        reason = manager.last_error or f"no subscription within {timeout:g} s"
        raise MessageQueueError(
            f"Cannot reach the message queue {describe(manager.redis_url)} ({reason}). Start "
            "it, or fix SOCKETIO_MESSAGE_QUEUE."
        )


def reason(exc: BaseException) -> str:
    """The first line of an exception's text, for one-line messages."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0].rstrip(".")
