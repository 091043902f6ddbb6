"""Channel history: every message of a channel has a position, and a client
that reconnects gets what it missed.

A channel matched by a pattern of ``SOCKETIO_HISTORY`` keeps its last
``size`` messages for ``ttl`` seconds::

    SOCKETIO_HISTORY = {"^room-": {"size": 200, "ttl": 600}}

Each message published to it (by a handler, out of band, by an emitter, by
another process) gets a **position**: the channel's **epoch**, which changes
whenever its history is lost (a restart without it, a Redis flush, the ttl
passing with no message), and an **offset** that grows by exactly one per
message, across every process. The position travels with the message as one
more argument, ``{"wsio:position": {"channel": ..., "epoch": ..., "offset":
...}}``, which clients that do not know it ignore. Subscribing again with
``since`` (the last position a client saw) replays what it missed, in order
and before anything newer, or says why it cannot (``recovered: false`` and a
reason).

Where the history lives:

- in this process (:class:`MemoryStore`, no queue configured: the embedded
  default); ``wsio runserver`` keeps it across reloads;
- in Redis (:class:`RedisStore`) when ``SOCKETIO_MESSAGE_QUEUE`` is a Redis
  URL: one stream per channel, and a Lua script that appends, numbers,
  expires and publishes in one step, so the offset seen on pub/sub and in
  the stream is the same. A process that sees a gap in a channel's offsets
  (a lost publish, a resubscribed listener) fetches the missing range from
  the stream before it delivers anything newer (:class:`Sequencer`).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import settings
from .exceptions import ImproperlyConfigured
from .wire import DEFAULT_NAMESPACE, POSITION_KEY

logger = logging.getLogger("webpy_socketio")

#: The largest offset a client may name (JavaScript's safe integers).
MAX_OFFSET = 2**53 - 1
#: Longest epoch string a client may send.
MAX_EPOCH_LENGTH = 64
#: How many earlier socket ids a client may name, to skip its own messages.
MAX_PREVIOUS_SIDS = 8

# reasons a recovery is refused (the ack's "reason")
EPOCH_CHANGED = "epoch changed"
GAP_TOO_LARGE = "gap larger than the history"
TTL_EXPIRED = "ttl expired"
AHEAD = "offset ahead of the channel"
NO_HISTORY = "no history for this channel"


# -- configuration ------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """How much history a channel keeps."""

    pattern: str
    size: int
    ttl: float


_policies: tuple[tuple[re.Pattern[str], Policy], ...] | None = None
_policy_source: Any = None


def check_setting(value: Any) -> None:
    """Raise :class:`ImproperlyConfigured` unless ``value`` is a valid
    ``SOCKETIO_HISTORY``."""
    name = "SOCKETIO_HISTORY"
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(
            f'{name} must be a dict of channel patterns, such as {{"^room-": {{"size": 200, '
            f'"ttl": 600}}}}, not {value!r}.'
        )
    for pattern, options in value.items():
        if not isinstance(pattern, str) or not pattern:
            raise ImproperlyConfigured(f"{name}: {pattern!r} is not a channel pattern string.")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ImproperlyConfigured(
                f"{name}: {pattern!r} is not a regular expression: {exc}."
            ) from None
        if not isinstance(options, Mapping) or set(options) - {"size", "ttl"}:
            raise ImproperlyConfigured(
                f'{name}[{pattern!r}] must be {{"size": messages, "ttl": seconds}}, '
                f"not {options!r}."
            )
        size, ttl = options.get("size", 100), options.get("ttl", 600)
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 100_000:
            raise ImproperlyConfigured(
                f"{name}[{pattern!r}]['size'] must be a number of messages from 1 to 100000, "
                f"not {size!r}."
            )
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0:
            raise ImproperlyConfigured(
                f"{name}[{pattern!r}]['ttl'] must be a positive number of seconds, not {ttl!r}."
            )


def _compiled() -> tuple[tuple[re.Pattern[str], Policy], ...]:
    global _policies, _policy_source
    value = settings.get("SOCKETIO_HISTORY")
    if _policies is None or value is not _policy_source:
        policies = []
        for pattern, options in (value or {}).items():
            policy = Policy(pattern, int(options.get("size", 100)), float(options.get("ttl", 600)))
            policies.append((re.compile(pattern), policy))
        _policies, _policy_source = tuple(policies), value
    return _policies


def policy(channel: str) -> Policy | None:
    """The history policy of ``channel`` (the first pattern that matches,
    with ``re.match``), or None when it keeps no history."""
    for pattern, found in _compiled():
        if pattern.match(channel):
            return found
    return None


def enabled() -> bool:
    """Whether any channel keeps history."""
    return bool(_compiled())


# -- positions and entries ------------------------------------------------------


@dataclass(frozen=True)
class Position:
    """Where a channel's history stands: its epoch and its last offset
    (0 before the first message)."""

    epoch: str
    offset: int

    def as_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "offset": self.offset}


@dataclass(frozen=True)
class Entry:
    """One message of a channel's history."""

    offset: int
    event: str
    args: list[Any]
    time: float
    #: the socket that sent it and did not get it (broadcast_channel)
    skip: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data = self.args[0] if len(self.args) == 1 else list(self.args)
        return {"offset": self.offset, "event": self.event, "data": data, "time": self.time}


@dataclass
class Page:
    """What :func:`history` returns: the channel's position and its last
    messages (oldest first). ``messages`` are dicts with ``offset``,
    ``event``, ``data`` and ``time``."""

    channel: str
    epoch: str
    offset: int
    messages: list[dict[str, Any]] = field(default_factory=list)
    #: with ``since``: whether the messages after it could all be served
    recovered: bool | None = None
    reason: str | None = None

    @property
    def position(self) -> dict[str, Any]:
        """``{"epoch", "offset"}``: what a page hands the client, which
        subscribes with it as ``since`` and so misses nothing after it."""
        return {"epoch": self.epoch, "offset": self.offset}

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "channel": self.channel,
            "epoch": self.epoch,
            "offset": self.offset,
            "messages": self.messages,
        }
        if self.recovered is not None:
            data["recovered"] = self.recovered
            if self.reason:
                data["reason"] = self.reason
        return data


@dataclass
class Recovery:
    """What a ``since`` position gets: the entries after it (if it can be
    served), the channel's position, and whether it was recovered."""

    position: Position
    entries: list[Entry]
    recovered: bool
    reason: str | None = None


def position_argument(namespace: str, channel: str, epoch: str, offset: int) -> dict[str, Any]:
    """The argument appended to a channel message."""
    del namespace  # one namespace's channel names are its own; the socket knows it
    return {POSITION_KEY: {"channel": channel, "epoch": epoch, "offset": offset}}


def parse_since(value: Any) -> tuple[Position, list[str]] | str:
    """A client's ``since`` as a position and the socket ids it had, or the
    reason it is refused."""
    if not isinstance(value, Mapping):
        return "since must be an object {epoch, offset}"
    epoch, offset = value.get("epoch"), value.get("offset")
    if not isinstance(epoch, str) or not epoch or len(epoch) > MAX_EPOCH_LENGTH:
        return "since.epoch must be a non-empty string"
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        return "since.offset must be a non-negative integer"
    sids = value.get("sids", [])
    if not isinstance(sids, list) or not all(isinstance(s, str) and len(s) <= 64 for s in sids):
        return "since.sids must be a list of socket ids"
    return Position(epoch, offset), sids[-MAX_PREVIOUS_SIDS:]


def _new_epoch() -> str:
    return secrets.token_urlsafe(6)


def _recover(
    current: Position, entries: list[Entry], since: Position, size: int, ttl: float
) -> Recovery:
    """Decide a recovery from the entries a store holds after ``since``."""
    if since.epoch != current.epoch:
        return Recovery(current, [], False, EPOCH_CHANGED)
    if since.offset > current.offset:
        return Recovery(current, [], False, AHEAD)
    missed = current.offset - since.offset
    if missed == 0:
        return Recovery(current, [], True)
    if not entries or entries[0].offset != since.offset + 1 or len(entries) != missed:
        return Recovery(current, [], False, GAP_TOO_LARGE if missed > size else TTL_EXPIRED)
    if entries[0].time < time.time() - ttl:
        return Recovery(current, [], False, TTL_EXPIRED)
    return Recovery(current, entries, True)


# -- the in-process store --------------------------------------------------------


class _Log:
    __slots__ = ("epoch", "offset", "entries", "touched")

    def __init__(self, size: int) -> None:
        self.epoch = _new_epoch()
        self.offset = 0
        self.entries: deque[Entry] = deque(maxlen=size)
        self.touched = time.time()


class MemoryStore:
    """Channel histories in this process."""

    def __init__(self, handover: str | None = None) -> None:
        self._logs: dict[tuple[str, str], _Log] = {}
        self._lock = threading.Lock()
        #: under ``wsio runserver``: the history passed between its workers
        self.handover = Handover(handover) if handover else None
        self._taken = self.handover is None

    def _ready(self) -> None:
        if not self._taken:
            # the first use: the previous dev worker's history first
            self._taken = True
            assert self.handover is not None
            self.handover.take(self)

    def _log(self, namespace: str, channel: str, rule: Policy, now: float) -> _Log:
        key = (namespace, channel)
        log = self._logs.get(key)
        if log is None or now - log.touched > rule.ttl:
            # no message for a whole ttl: the history is gone, and so is its epoch
            log = self._logs[key] = _Log(rule.size)
        elif log.entries.maxlen != rule.size:
            log.entries = deque(log.entries, maxlen=rule.size)
        return log

    def append(
        self,
        namespace: str,
        channel: str,
        rule: Policy,
        event: str,
        args: list[Any],
        skip: str | None,
    ) -> tuple[Position, Entry]:
        self._ready()
        now = time.time()
        with self._lock:
            log = self._log(namespace, channel, rule, now)
            log.offset += 1
            log.touched = now
            entry = Entry(log.offset, event, args, now, skip)
            log.entries.append(entry)
            return Position(log.epoch, log.offset), entry

    def position(self, namespace: str, channel: str, rule: Policy) -> Position:
        self._ready()
        with self._lock:
            log = self._log(namespace, channel, rule, time.time())
            return Position(log.epoch, log.offset)

    def recover(self, namespace: str, channel: str, rule: Policy, since: Position) -> Recovery:
        self._ready()
        with self._lock:
            log = self._log(namespace, channel, rule, time.time())
            current = Position(log.epoch, log.offset)
            entries = [e for e in log.entries if e.offset > since.offset]
        return _recover(current, entries, since, rule.size, rule.ttl)

    def last(
        self, namespace: str, channel: str, rule: Policy, limit: int
    ) -> tuple[Position, list[Entry]]:
        self._ready()
        now = time.time()
        with self._lock:
            log = self._log(namespace, channel, rule, now)
            entries = [e for e in log.entries if e.time >= now - rule.ttl]
            return Position(log.epoch, log.offset), entries[-limit:] if limit else []

    # -- surviving a reload (wsio runserver) ------------------------------------

    def dump(self) -> str:
        with self._lock:
            return json.dumps(
                {
                    f"{ns}\n{ch}": {
                        "epoch": log.epoch,
                        "offset": log.offset,
                        "touched": log.touched,
                        "size": log.entries.maxlen,
                        "entries": [
                            [e.offset, e.event, e.args, e.time, e.skip] for e in log.entries
                        ],
                    }
                    for (ns, ch), log in self._logs.items()
                }
            )

    def load(self, text: str) -> None:
        data = json.loads(text)
        with self._lock:
            for key, item in data.items():
                namespace, _, channel = key.partition("\n")
                log = _Log(int(item["size"]))
                log.epoch, log.offset, log.touched = (
                    item["epoch"],
                    int(item["offset"]),
                    item["touched"],
                )
                log.entries.extend(
                    Entry(o, ev, args, t, sk) for o, ev, args, t, sk in item["entries"]
                )
                self._logs[(namespace, channel)] = log


# -- the Redis store --------------------------------------------------------------

# KEYS: epoch, offset, stream. ARGV: size, ttl (ms), candidate epoch, the
# message's JSON before the epoch, between epoch and offset, after the
# offset, the pub/sub channel. Appends, numbers, trims, expires and
# publishes in one step: the offset on pub/sub is the offset in the stream.
_APPEND = """
local epoch = redis.call('GET', KEYS[1])
if (not epoch) or redis.call('EXISTS', KEYS[2]) == 0 then
  -- no history (never, or lost): a new epoch, from offset 1
  epoch = ARGV[3]
  redis.call('SET', KEYS[1], epoch)
  redis.call('DEL', KEYS[2], KEYS[3])
end
local offset = redis.call('INCR', KEYS[2])
local t = redis.call('TIME')
local now = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
local message = ARGV[4] .. epoch .. ARGV[5] .. offset .. ',"time":' .. now .. ARGV[6]
redis.call('XADD', KEYS[3], 'MAXLEN', ARGV[1], offset .. '-0', 'm', message)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
if ARGV[7] ~= '' then
  redis.call('PUBLISH', ARGV[7], message)
end
return {epoch, offset, message}
"""

# KEYS: epoch, offset, stream. ARGV: candidate epoch, ttl (ms). The
# position, starting a history (epoch, offset 0) when there is none.
_POSITION = """
local epoch = redis.call('GET', KEYS[1])
local offset = redis.call('GET', KEYS[2])
if (not epoch) or (not offset) then
  epoch = ARGV[1]
  offset = '0'
  redis.call('SET', KEYS[1], epoch, 'PX', ARGV[2])
  redis.call('SET', KEYS[2], offset, 'PX', ARGV[2])
  redis.call('DEL', KEYS[3])
end
return {epoch, tonumber(offset)}
"""


def _keys(namespace: str, channel: str) -> tuple[str, str, str]:
    # one hash tag for a channel's keys: one Redis Cluster slot
    base = "wsio:h:{" + namespace + " " + channel + "}"
    return base + ":epoch", base + ":offset", base + ":stream"


def message_template(
    namespace: str,
    channel: str,
    event: str,
    args: list[Any],
    skip: str | None,
    host_id: str,
    dumps: Any,
) -> tuple[str, str, str]:
    """A python-socketio pub/sub ``emit`` message for a channel message, cut
    where the script puts the epoch and the offset (and the time)."""
    body = dumps(
        {
            "method": "emit",
            "event": event,
            "data": args,
            "binary": False,
            "namespace": namespace,
            "room": "#" + channel,
            "skip_sid": skip,
            "callback": None,
            "host_id": host_id,
        }
    )
    if not body.endswith("}"):
        raise ValueError("not a JSON object")
    head = body[:-1] + ',"wsio":{"channel":' + dumps(channel) + ',"epoch":"'
    return head, '","offset":', "}}"


def entry_of(message: Mapping[str, Any]) -> Entry:
    position = message["wsio"]
    return Entry(
        int(position["offset"]),
        message["event"],
        list(message["data"]),
        float(position["time"]),
        message.get("skip_sid"),
    )


class RedisStore:
    """Channel histories in Redis (one stream per channel).

    :param queue: the message queue (its Redis client, channel, host id).
    """

    def __init__(self, queue: Any) -> None:
        # the queue's client, looked up on each call: the queue replaces it
        # when it reconnects
        self.queue = queue
        self._append = queue.redis.register_script(_APPEND)
        self._position = queue.redis.register_script(_POSITION)

    @property
    def redis(self) -> Any:
        return self.queue.redis

    def append(
        self,
        namespace: str,
        channel: str,
        rule: Policy,
        event: str,
        args: list[Any],
        skip: str | None,
    ) -> tuple[Position, Entry, dict[str, Any]]:
        from ._engine import fastjson

        head, middle, tail = message_template(
            namespace, channel, event, args, skip, self.queue.host_id, fastjson.dumps
        )
        epoch, offset, text = self._append(
            keys=_keys(namespace, channel),
            args=[
                rule.size,
                int(rule.ttl * 1000),
                _new_epoch(),
                head,
                middle,
                tail,
                self.queue.channel,
            ],
            client=self.redis,
        )
        message = json.loads(text)
        return Position(_text(epoch), int(offset)), entry_of(message), message

    def position(self, namespace: str, channel: str, rule: Policy) -> Position:
        epoch, offset = self._position(
            keys=_keys(namespace, channel),
            args=[_new_epoch(), int(rule.ttl * 1000)],
            client=self.redis,
        )
        return Position(_text(epoch), int(offset))

    def entries(
        self, namespace: str, channel: str, first: int, last: int | None = None
    ) -> list[dict[str, Any]]:
        """The stored messages with offsets from ``first`` to ``last``."""
        _, _, stream = _keys(namespace, channel)
        end = "+" if last is None else f"{last}-0"
        rows = self.redis.xrange(stream, f"{first}-0", end)
        return [
            json.loads(_text(fields[b"m"] if b"m" in fields else fields["m"])) for _, fields in rows
        ]

    def recover(self, namespace: str, channel: str, rule: Policy, since: Position) -> Recovery:
        current = self.position(namespace, channel, rule)
        entries: list[Entry] = []
        if since.epoch == current.epoch and since.offset < current.offset:
            entries = [
                entry_of(m)
                for m in self.entries(namespace, channel, since.offset + 1, current.offset)
            ]
        return _recover(current, entries, since, rule.size, rule.ttl)

    def last(
        self, namespace: str, channel: str, rule: Policy, limit: int
    ) -> tuple[Position, list[Entry]]:
        current = self.position(namespace, channel, rule)
        if not limit or not current.offset:
            return current, []
        first = max(1, current.offset - limit + 1)
        now = time.time()
        entries = [entry_of(m) for m in self.entries(namespace, channel, first, current.offset)]
        return current, [e for e in entries if e.time >= now - rule.ttl]


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


# -- delivery in order, across processes ---------------------------------------------


class Sequencer:
    """Delivers one channel's messages to this process's subscribers in
    offset order, each once, filling gaps from the stream."""

    def __init__(
        self, store: RedisStore, namespace: str, channel: str, position: Position, deliver: Any
    ) -> None:
        self.store = store
        self.namespace, self.channel = namespace, channel
        self.epoch, self.delivered = position.epoch, position.offset
        self.deliver = deliver
        self.pending: dict[int, dict[str, Any]] = {}
        self.fetching = False

    def offer(self, message: dict[str, Any]) -> None:
        position = message["wsio"]
        epoch, offset = position["epoch"], int(position["offset"])
        if epoch != self.epoch:
            # the history was lost and began again: nothing before can come
            self.epoch, self.delivered = epoch, offset - 1
            self.pending = {o: m for o, m in self.pending.items() if m["wsio"]["epoch"] == epoch}
        if offset <= self.delivered:
            return  # delivered already (our own publish, or a gap fetch)
        self.pending[offset] = message
        self._drain()
        if self.pending and not self.fetching:
            self.fetching = True
            import gevent

            gevent.spawn(self._fill)

    def catch_up(self) -> None:
        """After this process missed pub/sub for a while: fetch what the
        stream has beyond what was delivered."""
        rule = policy(self.channel)
        if rule is None:
            return
        current = self.store.position(self.namespace, self.channel, rule)
        if current.epoch != self.epoch:
            logger.warning("Channel %r lost its history while this process was away", self.channel)
            self.epoch, self.delivered = current.epoch, current.offset
            self.pending.clear()
            return
        for message in self.store.entries(
            self.namespace, self.channel, self.delivered + 1, current.offset
        ):
            self.offer(message)

    def _drain(self) -> None:
        while self.delivered + 1 in self.pending:
            self.delivered += 1
            self.deliver(self.pending.pop(self.delivered))

    def _fill(self) -> None:
        try:
            while self.pending:
                first, last = self.delivered + 1, min(self.pending) - 1
                if last < first:
                    self._drain()
                    continue
                found = [m for m in self.store.entries(self.namespace, self.channel, first, last)]
                for message in found:
                    if message["wsio"]["epoch"] == self.epoch:
                        self.pending.setdefault(int(message["wsio"]["offset"]), message)
                if (
                    min(self.pending) != self.delivered + 1
                    and self.delivered + 1 not in self.pending
                ):
                    lost = min(self.pending) - self.delivered - 1
                    logger.warning(
                        "Channel %r lost %d messages from the history before this process got them",
                        self.channel,
                        lost,
                    )
                    self.delivered = min(self.pending) - 1
                self._drain()
        except Exception as exc:
            logger.warning("Could not fill a gap in channel %r from Redis (%s)", self.channel, exc)
            if self.pending:
                self.delivered = min(self.pending) - 1
                self._drain()
        finally:
            self.fetching = False


# -- across the reloads of wsio runserver ---------------------------------------------------

#: Where ``wsio runserver`` has its workers hand the in-memory history to
#: the next one (a file of the supervisor's; unset elsewhere).
HANDOVER_ENV = "WSIO_HISTORY_HANDOVER"
#: How long a new worker waits for the previous one to hand its history over.
HANDOVER_WAIT = 10.0


class Handover:
    """The in-memory history passed from one dev worker to the next.

    The worker that holds the history holds an exclusive lock on
    ``path + ".lock"`` from the moment it first uses it. When it stops
    (cleanly) it writes the history to ``path`` and exits, which releases
    the lock; the next worker takes the lock (waiting for it at its first
    use of history, not at start), reads the file and removes it. A worker
    that dies without writing (a crash, SIGKILL) leaves nothing: the next
    one starts a new epoch, and its clients' recovery says so, rather than
    numbering anew from a stale copy.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def take(self, store: MemoryStore) -> None:
        import fcntl
        import os

        fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + HANDOVER_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    logger.warning("The previous worker kept the channel history; starting anew")
                    os.close(fd)
                    return
                _sleep(0.02)
        self._fd = fd
        try:
            with open(self.path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            return
        os.unlink(self.path)
        try:
            store.load(text)
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("Could not read the channel history handed over (%s)", exc)

    def give(self, store: MemoryStore) -> None:
        import os

        if self._fd is None:
            return  # this worker never used history: the lock is not ours
        temporary = f"{self.path}.{os.getpid()}"
        with open(temporary, "w", encoding="utf-8") as f:
            f.write(store.dump())
        os.replace(temporary, self.path)
        os.close(self._fd)  # the next worker may take it from here
        self._fd = None


def _sleep(seconds: float) -> None:
    try:
        import gevent

        gevent.sleep(seconds)
    except ImportError:  # pragma: no cover - gevent is a dependency
        time.sleep(seconds)


def hand_over() -> None:
    """Write this process's in-memory history for the next dev worker
    (``wsio runserver`` calls it as a worker stops; nothing elsewhere)."""
    if _memory.handover is not None:
        _memory.handover.give(_memory)


# -- the process's history --------------------------------------------------------------


def _new_memory() -> MemoryStore:
    import os

    return MemoryStore(os.environ.get(HANDOVER_ENV) or None)


_memory = _new_memory()
#: (namespace, channel) -> Sequencer, for channels with subscribers here
_sequencers: dict[tuple[str, str], Sequencer] = {}


def memory_store() -> MemoryStore:
    """This process's in-memory store (used when no queue is configured)."""
    return _memory


def reset() -> None:
    """Forget every history and sequencer of this process (for tests)."""
    global _memory
    _memory = _new_memory()
    _sequencers.clear()


def _redis_of(manager: Any) -> Any:
    from ._engine.redis_queue import RedisQueue

    return manager if isinstance(manager, RedisQueue) else None


def store_of(manager: Any) -> MemoryStore | RedisStore:
    """The store for a python-socketio manager: Redis when it is the
    project's Redis queue, this process's memory otherwise.

    :raises ImproperlyConfigured: for a queue that cannot keep history.
    """
    if manager is None:
        return _memory
    queue = _redis_of(manager)
    if queue is None:
        if getattr(manager, "write_only", False) or type(manager).__name__ == "KombuManager":
            raise ImproperlyConfigured(
                "SOCKETIO_HISTORY needs a Redis message queue (or none): other queues "
                "cannot number a channel's messages across processes."
            )
        return _memory
    store = getattr(queue, "wsio_history", None)
    if store is None:
        store = queue.wsio_history = RedisStore(queue)
    return store


def split(channels: Iterable[str]) -> tuple[list[str], list[tuple[str, Policy]]]:
    """Split channels into those without history and those with theirs."""
    plain, kept = [], []
    for channel in channels:
        rule = policy(channel)
        if rule is None:
            plain.append(channel)
        else:
            kept.append((channel, rule))
    return plain, kept


def _local_deliver(engine: Any, namespace: str, channel: str) -> Any:
    def deliver(message: dict[str, Any]) -> None:
        position = message["wsio"]
        meta = position_argument(namespace, channel, position["epoch"], int(position["offset"]))
        engine.emit(
            message["event"],
            tuple(message["data"]) + (meta,),
            to="#" + channel,
            skip_sid=message.get("skip_sid"),
            namespace=namespace,
            ignore_queue=True,
        )

    return deliver


def publish(
    engine: Any,
    namespace: str,
    channel: str,
    rule: Policy,
    event: str,
    args: list[Any],
    skip: str | None,
) -> Position | None:
    """Record a message in ``channel``'s history and deliver it (to this
    process's subscribers, and through Redis to the others'). Returns its
    position, or None when Redis could not be reached (delivered here
    only, without a position)."""
    store = store_of(engine.manager)
    from . import metrics

    metrics.count("wsio_history_appends_total")
    if isinstance(store, MemoryStore):
        position, entry = store.append(namespace, channel, rule, event, args, skip)
        meta = position_argument(namespace, channel, position.epoch, position.offset)
        engine.emit(
            event, tuple(args) + (meta,), to="#" + channel, skip_sid=skip, namespace=namespace
        )
        return position
    try:
        position, _, message = store.append(namespace, channel, rule, event, args, skip)
    except Exception as exc:
        # Redis is away: this process's subscribers still get it, without a
        # position (their next recovery finds a new epoch, or a gap)
        engine.manager.history_lost(exc)
        engine.emit(
            event,
            tuple(args),
            to="#" + channel,
            skip_sid=skip,
            namespace=namespace,
            ignore_queue=True,
        )
        return None
    on_message(engine, message)
    return position


def on_message(engine: Any, message: dict[str, Any]) -> None:
    """A channel message from Redis (ours or another process's): deliver it
    in order to this process's subscribers."""
    namespace = message.get("namespace") or DEFAULT_NAMESPACE
    channel = message["wsio"]["channel"]
    sequencer = _sequencers.get((namespace, channel))
    if sequencer is None:
        return  # nobody here listens to it
    from . import _engine as boundary

    if not boundary.room_members(engine, namespace, "#" + channel):
        del _sequencers[(namespace, channel)]
        return
    sequencer.offer(message)


def catch_up(engine: Any) -> None:
    """Fill every channel's gap after the queue's listener was away."""
    for sequencer in list(_sequencers.values()):
        try:
            sequencer.catch_up()
        except Exception as exc:
            logger.warning("Could not catch up channel %r from Redis (%s)", sequencer.channel, exc)


def publish_write_only(
    manager: Any, namespace: str, channel: str, rule: Policy, event: str, args: list[Any]
) -> None:
    """Publish from a process that runs no server (an :class:`Emitter`)."""
    store = store_of(manager)
    if isinstance(store, MemoryStore):
        raise ImproperlyConfigured("an emitter needs a Redis queue to publish to a history channel")
    store.append(namespace, channel, rule, event, args, None)


class Hold:
    """While a socket subscribes to a history channel, what is sent to it
    waits (the engine holds it): the replay of what it missed goes out
    first, then what waited, minus the live messages the replay covered.
    The dispatcher holds from before the ``on_subscribe`` handlers, so what
    they send (a greeting, which is newer) comes after the replay too."""

    def __init__(self, socket: Any) -> None:
        self.engine = socket._engine
        self.eio_sid = self.engine.manager.eio_sid_from_sid(socket.session_id, socket.namespace)
        self.owner = self.engine.hold(self.eio_sid)
        #: the channel joined and the last offset the replay or the ack covered
        self.channel: str | None = None
        self.last = 0

    def __enter__(self) -> Hold:
        return self

    def __exit__(self, *exc: Any) -> None:
        channel, last = self.channel, self.last
        self.engine.release(
            self.eio_sid,
            self.owner,
            drop=(lambda args: _covered(args, channel, last)) if channel else None,
        )

    def replay(self, packet: Any) -> None:
        # straight to the socket, ahead of what is held; if something else
        # holds it (a subscribe from on_connect), behind what that holds
        if self.owner:
            self.engine.deliver_packet(self.eio_sid, packet)
        else:
            self.engine._send_packet(self.eio_sid, packet)


def join(
    socket: Any,
    channel: str,
    rule: Policy,
    since: Position | None,
    sids: list[str],
    hold: Hold | None = None,
) -> dict[str, Any]:
    """Subscribe ``socket`` to a history channel, replay what it missed
    after ``since``, and return the ack's position fields (see
    :class:`Hold` for the order of what the socket gets)."""
    if hold is None:
        with Hold(socket) as own:
            return join(socket, channel, rule, since, sids, own)
    engine = socket._engine
    namespace = socket.namespace
    store = store_of(engine.manager)
    socket._join(channel)
    hold.channel = channel
    if isinstance(store, RedisStore) and (namespace, channel) not in _sequencers:
        current = store.position(namespace, channel, rule)
        _sequencers[(namespace, channel)] = Sequencer(
            store, namespace, channel, current, _local_deliver(engine, namespace, channel)
        )
    if since is None:
        current = store.position(namespace, channel, rule)
        hold.last = current.offset
        return {"epoch": current.epoch, "offset": current.offset}
    recovery = store.recover(namespace, channel, rule, since)
    hold.last = recovery.position.offset
    skip = set(sids) | {socket.session_id}
    from socketio.packet import EVENT

    for entry in recovery.entries:
        if entry.skip in skip:
            continue  # the client's own message, which it did not get either
        meta = position_argument(namespace, channel, recovery.position.epoch, entry.offset)
        hold.replay(
            engine.packet_class(EVENT, data=[entry.event, *entry.args, meta], namespace=namespace)
        )
    reply: dict[str, Any] = {
        "epoch": recovery.position.epoch,
        "offset": recovery.position.offset,
        "recovered": recovery.recovered,
    }
    from . import metrics

    metrics.count(
        "wsio_history_recoveries_total",
        "recovered" if recovery.recovered else str(recovery.reason),
    )
    if not recovery.recovered:
        reply["reason"] = recovery.reason
    return reply


def _covered(args: Any, channel: str | None, last: int) -> bool:
    """Whether a held event (its argument list) is a message of ``channel``
    at or before ``last``."""
    if not isinstance(args, list) or not args:
        return False
    meta = args[-1]
    if not isinstance(meta, dict) or POSITION_KEY not in meta:
        return False
    position = meta[POSITION_KEY]
    return position.get("channel") == channel and int(position.get("offset", 0)) <= last


def send_to_channels(
    engine: Any, namespace: str, channels: list[str], event: str, args: list[Any], skip: str | None
) -> None:
    """Send an event to the subscribers of ``channels`` (each once for the
    channels without history; through its history for each that has one)."""
    plain, kept = split(channels)
    if plain:
        to = ["#" + c for c in plain]
        engine.emit(
            event,
            args[0] if len(args) == 1 else tuple(args),
            to=to,
            skip_sid=skip,
            namespace=namespace,
        )
    for channel, rule in kept:
        publish(engine, namespace, channel, rule, event, args, skip)


def page(manager: Any, namespace: str, channel: str, since: Any, limit: int) -> Page:
    """The channel's position and its last ``limit`` messages, or (with
    ``since``) the messages after that position."""
    rule = policy(channel)
    if rule is None:
        raise ValueError(f"channel {channel!r} keeps no history (see SOCKETIO_HISTORY)")
    store = store_of(manager)
    if since is None:
        position, entries = store.last(namespace, channel, rule, limit)
        return Page(channel, position.epoch, position.offset, [e.as_dict() for e in entries])
    parsed = parse_since(since)
    if isinstance(parsed, str):
        raise ValueError(parsed)
    recovery = store.recover(namespace, channel, rule, parsed[0])
    entries = recovery.entries[-limit:] if limit else []
    return Page(
        channel,
        recovery.position.epoch,
        recovery.position.offset,
        [e.as_dict() for e in entries],
        recovery.recovered,
        recovery.reason,
    )


__all__ = [
    "POSITION_KEY",
    "Entry",
    "MemoryStore",
    "Page",
    "Policy",
    "Position",
    "Recovery",
    "RedisStore",
    "Sequencer",
    "join",
    "page",
    "policy",
    "publish",
]
