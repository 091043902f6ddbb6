"""python-socketio's Redis manager with the outage behaviour a chat server needs.

Everything here overrides python-socketio's ``RedisManager`` (``_publish``,
``_redis_listen_with_retries``, ``_redis_connect``, ``_handle_emit``; see
:mod:`webpy_socketio._engine`); :mod:`webpy_socketio.messagequeue` says what
it changes and why, and chooses it for ``redis://`` queue URLs.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ..exceptions import MessageQueueError
from ..messagequeue import CONNECT_TIMEOUT, describe
from ..messagequeue import reason as _reason
from . import fastjson

logger = logging.getLogger("webpy_socketio.queue")

#: Seconds a Redis command may take once connected.
COMMAND_TIMEOUT = 5.0
#: After a failed publish, seconds during which messages are not offered to
#: Redis (delivered locally only), so a dead Redis costs one attempt, not one
#: per message.
PUBLISH_PAUSE = 0.5
#: Longest wait between two attempts of the listener to subscribe again.
MAX_RETRY_DELAY = 2.0
#: Connections to Redis per process; more handlers at once wait for one.
MAX_CONNECTIONS = 64


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

    def client(self) -> Any:
        """The Redis client, made on first use (python-socketio makes a
        write-only queue's only when it first publishes)."""
        if self.redis is None:
            self._redis_connect()
        return self.redis

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

    def _handle_emit(self, message: dict[str, Any]) -> Any:
        # a channel message with a position (webpy_socketio._history's Lua
        # script published it): delivered in offset order, gaps filled
        if "wsio" in message:
            from .. import _history

            return _history.on_message(self.server, message)
        # a change of a presence channel (webpy_socketio._presence's Lua
        # scripts published it): applied in the order of its version
        if "wsio_presence" in message:
            from .. import _presence

            return _presence.on_diff(self.server, message)
        return super()._handle_emit(message)

    def history_lost(self, exc: BaseException) -> None:
        """A history append failed: Redis is away (logged once, as for any
        publish)."""
        self.connected = False
        self._pause_until = time.monotonic() + PUBLISH_PAUSE
        self._lost(exc)
        with self._state:
            self._not_shared += 1

    def _publish(self, data: Any) -> Any:
        if self._down_since is not None and time.monotonic() < self._pause_until:
            return self._not_published(None)
        try:
            if not self.connected:
                self._redis_connect()
            result = self.redis.publish(self.channel, fastjson.dumps(data))
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

    def _redis_connect(self) -> None:
        super()._redis_connect()
        # redis-py 8 caps a client's pool at 100 connections and then raises
        # "Too many connections": a burst of handlers reaching Redis at once
        # (a thousand subscribes to a presence channel, each running a
        # script) lost messages and members. A blocking pool of the same
        # connections makes them wait for a free one instead.
        import redis

        pool = self.redis.connection_pool
        if type(pool) is not redis.ConnectionPool:
            return  # Sentinel, valkey: as python-socketio made it
        blocking = redis.BlockingConnectionPool(
            max_connections=MAX_CONNECTIONS,
            timeout=COMMAND_TIMEOUT,
            connection_class=pool.connection_class,
            **pool.connection_kwargs,
        )
        pool.disconnect()
        self.redis = redis.Redis(connection_pool=blocking)
        self.redis.auto_close_connection_pool = True
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)

    def _redis_listen_with_retries(self) -> Any:
        delay = 0.25
        while True:
            try:
                self._redis_connect()
                self.pubsub.subscribe(self.channel)
                # Redis answers in order: once its confirmation is read, every
                # message published later reaches this process
                self.pubsub.get_message(timeout=COMMAND_TIMEOUT)
                if self._subscribed.is_set():
                    # subscribed again after a loss: what was published
                    # meanwhile never reached this process; fetch it
                    from .. import _history, _presence

                    _history.catch_up(self.server)
                    _presence.resync_all(self.server)
                self._subscribed.set()
                self._restored()
                delay = 0.25
                yield from self.pubsub.listen()
            except Exception as exc:
                self._lost(exc)
                time.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)


def ping(url: str, timeout: float) -> None:
    """Connect to the Redis at ``url`` and PING it once (raises on failure)."""
    probe = RedisQueue(url, write_only=True, connect_timeout=timeout)
    try:
        probe._redis_connect()
        probe.redis.ping()
    finally:
        if probe.redis is not None:
            probe.redis.close()
