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

import logging
import threading
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .exceptions import ImproperlyConfigured, MessageQueueError

logger = logging.getLogger("webpy_socketio.queue")

#: Seconds a connection attempt to Redis may take.
CONNECT_TIMEOUT = 3.0
#: Seconds a Redis command may take once connected.
COMMAND_TIMEOUT = 5.0
#: After a failed publish, seconds during which messages are not offered to
#: Redis (delivered locally only), so a dead Redis costs one attempt, not one
#: per message.
PUBLISH_PAUSE = 0.5
#: Longest wait between two attempts of the listener to subscribe again.
MAX_RETRY_DELAY = 2.0
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
            f"SOCKETIO_MESSAGE_QUEUE={describe(url)!r} needs the {module} package: pip install "
            f"{extra}."
        ) from None


def queue_manager(url: str, write_only: bool = False) -> Any:
    """The python-socketio client manager for ``url``.

    :param write_only: publish only (for processes that run no server).
    :raises ImproperlyConfigured: when the queue's client library is missing.
    """
    scheme = _scheme(url)
    if scheme in _REDIS_SCHEMES:
        _require("redis", url, "'webpy-socketio[redis]'")
        return RedisQueue(url, write_only=write_only)
    if scheme in _VALKEY_SCHEMES:
        _require("valkey", url, "valkey")
        return RedisQueue(url, write_only=write_only)
    _require("kombu", url, "kombu (only redis:// URLs work out of the box)")
    import socketio

    return socketio.KombuManager(url, write_only=write_only)


def check_reachable(url: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Connect to the queue at ``url`` once, from any process (gevent or not).

    :raises MessageQueueError: naming the queue and the reason.
    """
    if _scheme(url) not in _REDIS_SCHEMES + _VALKEY_SCHEMES:
        return  # other brokers are checked by kombu when the server starts
    probe = RedisQueue(url, write_only=True, connect_timeout=timeout)
    try:
        probe._redis_connect()
        probe.redis.ping()
    except Exception as exc:
        raise MessageQueueError(
            f"Cannot reach the message queue {describe(url)} ({_reason(exc)}). Start it, or "
            "fix SOCKETIO_MESSAGE_QUEUE."
        ) from None
    finally:
        if probe.redis is not None:
            probe.redis.close()


def start(engine: Any, timeout: float = START_TIMEOUT) -> None:
    """Start ``engine``'s queue listener now and wait until it has
    subscribed (python-socketio would start it on the first connection).

    :raises MessageQueueError: when the queue cannot be reached in time.
    """
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


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0].rstrip(".")


def _redis_options(connect_timeout: float) -> dict[str, Any]:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return {
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": COMMAND_TIMEOUT,
        # one quick retry replaces a pooled connection that a Redis restart
        # killed; more would only hold up the sender while Redis is away
        "retry": Retry(NoBackoff(), 1),
    }


def _redis_manager_class() -> type:
    import socketio

    return socketio.RedisManager  # type: ignore[no-any-return]


class RedisQueue(_redis_manager_class()):  # type: ignore[misc]
    """python-socketio's ``RedisManager`` with the outage behaviour described
    in this module's docstring.

    :param url: ``redis://``, ``rediss://``, ``unix://``, ``redis+sentinel://``
        (and the ``valkey`` forms).
    :param write_only: publish only; a failed publish then raises
        :class:`~webpy_socketio.MessageQueueError`, since no local delivery
        happened and the caller must know.
    """

    # set by python-socketio's RedisManager
    connected: bool
    redis: Any
    pubsub: Any

    def __init__(
        self, url: str, write_only: bool = False, connect_timeout: float = CONNECT_TIMEOUT
    ) -> None:
        super().__init__(
            url,
            write_only=write_only,
            logger=logger,
            redis_options=_redis_options(connect_timeout),
        )
        self._state = threading.Lock()
        self._down_since: float | None = None
        self._not_shared = 0
        self._pause_until = 0.0
        self._subscribed = threading.Event()
        #: the reason of the last failure, for error messages
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return f"<RedisQueue {describe(self.redis_url)}>"

    @property
    def available(self) -> bool:
        """False while the last attempt to reach Redis failed."""
        return self._down_since is None

    def wait_subscribed(self, timeout: float) -> bool:
        return self._subscribed.wait(timeout)

    # -- outage bookkeeping -------------------------------------------------

    def _lost(self, exc: BaseException) -> None:
        self.last_error = _reason(exc)
        with self._state:
            first = self._down_since is None
            if first:
                self._down_since = time.monotonic()
                self._not_shared = 0
        if first and not self.write_only:
            logger.error(
                "Lost the message queue %s (%s). Sockets of this process still get every "
                "message; other processes miss the ones sent until it is back.",
                describe(self.redis_url),
                self.last_error,
            )

    def _restored(self) -> None:
        if self._down_since is None:
            return
        with self._state:
            since, self._down_since = self._down_since, None
            not_shared, self._not_shared = self._not_shared, 0
        if since is not None and not self.write_only:
            logger.warning(
                "The message queue %s is back after %.1f s%s.",
                describe(self.redis_url),
                time.monotonic() - since,
                f"; {not_shared} messages sent meanwhile reached this process's sockets only"
                if not_shared
                else "",
            )

    # -- python-socketio hooks ----------------------------------------------

    def emit(
        self, event: str, data: Any, namespace: Any = None, room: Any = None, **kwargs: Any
    ) -> Any:
        room = kwargs.pop("to", None) or room
        # a session id lives in one process: a send to a socket of this one
        # (socket.send(), replies) needs no trip through Redis, which every
        # other process would decode only to find no such socket
        if (
            isinstance(room, str)
            and not self.write_only
            and self.is_connected(room, namespace or "/")
        ):
            kwargs["ignore_queue"] = True
        return super().emit(event, data, namespace=namespace, room=room, **kwargs)

    def _publish(self, data: Any) -> Any:
        if self._down_since is not None and time.monotonic() < self._pause_until:
            return self._not_published(None)
        try:
            if not self.connected:
                self._redis_connect()
            result = self.redis.publish(self.channel, self.json.dumps(data))
        except Exception as exc:
            self.connected = False
            self._pause_until = time.monotonic() + PUBLISH_PAUSE
            self._lost(exc)
            return self._not_published(exc)
        self._restored()
        return result

    def _not_published(self, exc: BaseException | None) -> None:
        with self._state:
            self._not_shared += 1
        if self.write_only:
            raise MessageQueueError(
                f"Could not publish to the message queue {describe(self.redis_url)} "
                f"({_reason(exc) if exc else self.last_error}); the message was not sent."
            )

    def _redis_listen_with_retries(self) -> Any:
        delay = 0.25
        while True:
            try:
                self._redis_connect()
                self.pubsub.subscribe(self.channel)
                # Redis answers in order: once its confirmation is read, every
                # message published later reaches this process
                self.pubsub.get_message(timeout=COMMAND_TIMEOUT)
                self._subscribed.set()
                self._restored()
                delay = 0.25
                yield from self.pubsub.listen()
            except Exception as exc:
                self._lost(exc)
                time.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)
