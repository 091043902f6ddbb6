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

#: A subscription whose heartbeats have not come back for this many
#: heartbeat intervals is deaf.
DEAF_AFTER_BEATS = 2
#: The method name of heartbeat messages (python-socketio ignores it).
HEARTBEAT_METHOD = "wsio:heartbeat"


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
        self,
        url: str,
        write_only: bool = False,
        connect_timeout: float = CONNECT_TIMEOUT,
        heartbeat: float | None = None,
    ) -> None:
        super().__init__(
            url,
            write_only=write_only,
            logger=logger,
            redis_options=_redis_options(connect_timeout),
        )
        #: seconds between two heartbeats through Redis (None: none)
        self.heartbeat = None if write_only else heartbeat
        self._beat = 0
        self._beat_prefix = (
            f'{{"method":"{HEARTBEAT_METHOD}","host_id":"{self.host_id}","n":'.encode()
        )
        self._sent_at: dict[int, float] = {}
        self._last_echo = time.monotonic()
        self._lag: float | None = None
        self._deaf_since: float | None = None
        self._repairing = False
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

    # -- health: a heartbeat to itself through Redis --------------------------

    def initialize(self) -> None:
        super().initialize()
        if self.heartbeat and not self.write_only:
            self.server.start_background_task(self._heartbeats)

    def health(self) -> dict[str, Any]:
        """``healthy``, a ``reason`` when not, the last heartbeat's round
        trip (``lag``, seconds) and how long ago it came back."""
        now = time.monotonic()
        age = now - self._last_echo
        reason = None
        # the reason is shown to whoever asks the health endpoint: the
        # details (addresses, errors) are in the log only
        if self._down_since is not None:
            reason = f"message queue unreachable for {now - self._down_since:.0f} s"
        elif not self._subscribed.is_set():
            reason = "message queue not subscribed yet"
        elif self._deaf_since is not None or (
            self.heartbeat and age > DEAF_AFTER_BEATS * self.heartbeat + self.heartbeat
        ):
            reason = (
                f"message queue subscription deaf: no heartbeat back for {age:.1f} s "
                "(re-subscribing)"
            )
        return {"healthy": reason is None, "reason": reason, "lag": self._lag, "heartbeat_age": age}

    def _heartbeats(self) -> None:
        """Every :attr:`heartbeat` seconds, publish a message to this very
        process; when they stop coming back, the subscription is deaf: say
        so once, count it, and subscribe again."""
        from .. import metrics

        interval = self.heartbeat
        assert interval
        while True:
            time.sleep(interval)
            self._beat += 1
            n = self._beat
            self._sent_at[n] = time.monotonic()
            for old in [k for k in self._sent_at if k < n - 20]:
                del self._sent_at[old]
            # in a greenlet of its own: a frozen Redis holds the publish (up to
            # the command timeout), and the check below must still run
            self.server.start_background_task(self._publish_beat, n)
            silent = time.monotonic() - self._last_echo
            if silent > DEAF_AFTER_BEATS * interval and self._subscribed.is_set():
                if self._deaf_since is None:
                    self._deaf_since = time.monotonic()
                    metrics.count("wsio_queue_deaf_total")
                    logger.error(
                        "The message queue subscription %s is deaf: no heartbeat came back "
                        "for %.1f s. Subscribing again; until then this process misses "
                        "broadcasts from the others.",
                        describe(self.redis_url),
                        silent,
                    )
                if not self._repairing:
                    self._repairing = True
                    self._drop_subscription()

    def _publish_beat(self, n: int) -> None:
        from .. import metrics

        try:
            if not self.connected:
                self._redis_connect()
            self.redis.publish(self.channel, self._beat_prefix + b"%d}" % n)
            metrics.count("wsio_queue_heartbeats_total", "sent")
        except Exception as exc:
            self.connected = False
            self._lost(exc)
            metrics.count("wsio_queue_heartbeats_total", "unpublished")

    def _drop_subscription(self) -> None:
        """Close the listener's connection: its read fails, and it
        subscribes again (:meth:`_redis_listen_with_retries`)."""
        try:
            connection = self.pubsub.connection
            if connection is not None:
                connection.disconnect()
        except Exception as exc:  # already broken: the listener notices
            logger.debug("closing the deaf subscription: %s", exc)

    def _echo(self, data: bytes) -> None:
        from .. import metrics

        try:
            n = int(data[len(self._beat_prefix) : -1])
        except ValueError:
            return
        sent = self._sent_at.pop(n, None)
        now = time.monotonic()
        self._last_echo = now
        if sent is not None:
            self._lag = now - sent
        metrics.count("wsio_queue_heartbeats_total", "received")
        if self._deaf_since is not None:
            logger.warning(
                "The message queue subscription %s hears again after %.1f s.",
                describe(self.redis_url),
                now - self._deaf_since,
            )
            self._deaf_since = None

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
            _count_published()
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
        from .. import metrics

        delay = 0.25
        prefix = b'{"method":"' + HEARTBEAT_METHOD.encode() + b'"'
        mine = self._beat_prefix
        while True:
            try:
                self._redis_connect()
                self.pubsub.subscribe(self.channel)
                # Redis answers in order: once its confirmation is read, every
                # message published later reaches this process
                if not self._confirmed():
                    raise TimeoutError(f"no subscription within {COMMAND_TIMEOUT:g} s")
                if self._repairing:
                    self._repairing = False
                    metrics.count("wsio_queue_resubscribes_total")
                self._last_echo = max(self._last_echo, time.monotonic() - 0.001)
                if self._subscribed.is_set():
                    # subscribed again after a loss: what was published
                    # meanwhile never reached this process; fetch it
                    from .. import _history, _presence

                    _history.catch_up(self.server)
                    _presence.resync_all(self.server)
                self._subscribed.set()
                self._restored()
                delay = 0.25
                for message in self.pubsub.listen():
                    data = message.get("data")
                    if type(data) is bytes and data.startswith(prefix):
                        if data.startswith(mine):
                            self._echo(data)
                        continue  # another process's heartbeat
                    metrics.count("wsio_queue_received_total")
                    yield message
            except Exception as exc:
                self._lost(exc)
                time.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)

    def _confirmed(self) -> bool:
        """Read the subscription's confirmation (Redis's reply to SUBSCRIBE);
        False when it does not come within :data:`COMMAND_TIMEOUT` (a frozen
        Redis accepts the connection and the command, and answers later)."""
        pubsub = self.pubsub
        deadline = time.monotonic() + COMMAND_TIMEOUT
        pubsub.ignore_subscribe_messages = False
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                reply = pubsub.get_message(timeout=left)
                if reply is not None and reply.get("type") == "subscribe":
                    return True
        finally:
            pubsub.ignore_subscribe_messages = True


def _count_published() -> None:
    from .. import metrics

    metrics.count("wsio_queue_published_total")


def ping(url: str, timeout: float) -> None:
    """Connect to the Redis at ``url`` and PING it once (raises on failure)."""
    probe = RedisQueue(url, write_only=True, connect_timeout=timeout)
    try:
        probe._redis_connect()
        probe.redis.ping()
    finally:
        if probe.redis is not None:
            probe.redis.close()
