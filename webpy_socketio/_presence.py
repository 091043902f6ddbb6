"""Presence: who is in a channel, with joins and leaves pushed live, across
every process.

A channel has presence when a pattern of ``SOCKETIO_PRESENCE`` matches it
(``re.match``; every accepted subscription is then tracked, under the
socket's id unless the app says otherwise), or for a subscription that an
application tracks with ``socket.track(channel, key, meta)`` (typically in
``on_subscribe``). A tracked subscription is one **meta** under a **key**:
one user with two tabs is one key with two metas. Each meta carries a
reference (``"wsio:ref"``) on the wire, unique to it, so clients can tell
two equal metas apart.

What a subscriber of a presence channel gets:

- the channel's state in its subscribe ack, ``"presence": {key: [meta]}``;
- then every change as the event ``wsio:presence``, ``{"channel", "joins":
  {key: [meta]}, "leaves": {key: [meta]}}``; an update of a meta is a leave
  of the old one and a join of the new one in the same event. A key has
  left when its last meta has. After a resynchronisation (see below) the
  event carries the whole state instead, ``{"channel", "state": {...}}``.

Only accepted subscriptions are tracked or see anything: a refused one is
in no list and gets no event.

Where the members live:

- in this process (:class:`MemoryStore`, no queue configured);
- in Redis (:class:`RedisStore`) when ``SOCKETIO_MESSAGE_QUEUE`` is a Redis
  URL: per channel a sorted set (socket id -> expiry), a hash (socket id ->
  key and meta) and a version (an epoch and a counter), all in one Redis
  Cluster hash slot, changed by Lua scripts that also publish the change.
  Each process refreshes the expiry of its own members every third of
  ``SOCKETIO_PRESENCE_TIMEOUT``; the members of a process that stops doing
  so (killed, machine lost) expire that many seconds after its last
  refresh, and the first script to run on the channel afterwards (any
  join, leave, read, or the refresh of a process that has subscribers
  there, at least every third of the timeout) removes them and publishes
  their leaves. So they leave everywhere within the timeout and a third
  (20 s by default) of the process's death. A clean disconnect leaves at
  once.

  Each process that has subscribers of a channel keeps a copy of its state
  (a replica), updated from the published changes in the order Redis made
  them (the version says which ones were missed). A replica that misses a
  change (its pub/sub connection was lost) reads the state again and sends
  it to its subscribers.

Either way a process's subscribers get the changes from a replica (the
in-process store feeds one too): those that come within
:data:`FLUSH_DELAY` of each other go out as one change, and the state a
subscribe's ack carries is the one delivered so far, so a subscriber gets
exactly the changes after the state it was given.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import _engine as boundary
from . import settings
from .exceptions import ImproperlyConfigured, PresenceError
from .wire import PRESENCE, PRESENCE_REF

logger = logging.getLogger("webpy_socketio")

#: The room of a channel's presence subscribers ("%" + channel). Channels
#: are "#" rooms and socket ids use [A-Za-z0-9_-], so the names never meet.
ROOM_PREFIX = "%"
#: Longest presence key, in characters.
MAX_KEY_LENGTH = 200
#: Field of the pub/sub message that carries a change's version.
VERSION_FIELD = "wsio_presence"
#: Seconds a subscribe waits for its own join to come back from Redis
#: pub/sub, so that the state in its ack includes it.
JOIN_WAIT = 2.0
#: Seconds the changes received from Redis wait, at most, to be delivered
#: together to this process's subscribers.
FLUSH_DELAY = 0.02


def room(channel: str) -> str:
    """The room of ``channel``'s presence subscribers."""
    return ROOM_PREFIX + channel


# -- configuration ------------------------------------------------------------

_patterns: tuple[re.Pattern[str], ...] | None = None
_pattern_source: Any = None


def check_setting(value: Any) -> None:
    """Raise :class:`ImproperlyConfigured` unless ``value`` is a valid
    ``SOCKETIO_PRESENCE``."""
    name = "SOCKETIO_PRESENCE"
    if value is None:
        return
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ImproperlyConfigured(
            f'{name} must be a list of channel patterns, such as ["^room-"], or None, '
            f"not {value!r}."
        )
    for pattern in value:
        if not isinstance(pattern, str) or not pattern:
            raise ImproperlyConfigured(f"{name}: {pattern!r} is not a channel pattern string.")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ImproperlyConfigured(
                f"{name}: {pattern!r} is not a regular expression: {exc}."
            ) from None


def _compiled() -> tuple[re.Pattern[str], ...]:
    global _patterns, _pattern_source
    value = settings.get("SOCKETIO_PRESENCE")
    if _patterns is None or value is not _pattern_source:
        _patterns, _pattern_source = tuple(re.compile(p) for p in value or ()), value
    return _patterns


def matches(channel: str) -> bool:
    """Whether a pattern of ``SOCKETIO_PRESENCE`` matches ``channel``."""
    return any(pattern.match(channel) for pattern in _compiled())


def _timeout() -> float:
    return float(settings.get("SOCKETIO_PRESENCE_TIMEOUT"))


# -- what is tracked --------------------------------------------------------------


@dataclass(frozen=True)
class Tracking:
    """One tracked subscription: its key, its meta (as JSON) and the
    reference that names this meta on the wire."""

    key: str
    ref: str
    meta_json: str
    #: what the stores keep: the key as JSON, a tab, the meta with its ref
    value: str
    #: the meta with its ref, as subscribers get it
    wire: dict[str, Any] = field(compare=False, repr=False)

    def meta(self) -> dict[str, Any]:
        """A fresh copy of the meta the application gave."""
        return dict(json.loads(self.meta_json))


def make_tracking(key: Any, meta: Any) -> Tracking:
    """Check a key and a meta and encode them.

    :raises PresenceError: naming what is wrong (nothing is changed).
    """
    if not isinstance(key, str):
        raise PresenceError(
            f"a presence key must be a string, not {type(key).__name__} (use str() for a "
            "number such as a user id)"
        )
    if not key:
        raise PresenceError("a presence key must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise PresenceError(
            f"a presence key has at most {MAX_KEY_LENGTH} characters, not {len(key)}"
        )
    if meta is None:
        meta = {}
    if not isinstance(meta, Mapping):
        raise PresenceError(
            f"a presence meta must be a dict (a JSON object), not {type(meta).__name__}"
        )
    if PRESENCE_REF in meta:
        raise PresenceError(f"a presence meta must not have the key {PRESENCE_REF!r} (reserved)")
    try:
        text = json.dumps(dict(meta), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise PresenceError(f"a presence meta must be JSON-serialisable: {exc}") from None
    limit = settings.get("SOCKETIO_PRESENCE_MAX_META_BYTES")
    size = len(text.encode("utf-8"))
    if size > limit:
        raise PresenceError(
            f"this presence meta is {size} bytes as JSON; SOCKETIO_PRESENCE_MAX_META_BYTES "
            f"allows {limit}"
        )
    ref = secrets.token_urlsafe(6)
    wire = text[:-1] + ("," if text != "{}" else "") + f'"{PRESENCE_REF}":"{ref}"}}'
    # json.dumps escapes control characters, so the key's JSON has no tab
    value = json.dumps(key, ensure_ascii=False) + "\t" + wire
    return Tracking(key, ref, text, value, json.loads(wire))


def _split(value: str) -> tuple[str, dict[str, Any]]:
    key, _, meta = value.partition("\t")
    return json.loads(key), json.loads(meta)


class _State:
    """A channel's members as subscribers see them: key -> ref -> meta."""

    __slots__ = ("keys", "refs")

    def __init__(self) -> None:
        self.keys: dict[str, dict[str, dict[str, Any]]] = {}
        self.refs: dict[str, str] = {}

    def add(self, key: str, meta: dict[str, Any]) -> None:
        ref = meta.get(PRESENCE_REF)
        if not isinstance(ref, str) or ref in self.refs:
            return
        self.keys.setdefault(key, {})[ref] = meta
        self.refs[ref] = key

    def remove(self, ref: Any) -> None:
        key = self.refs.pop(ref, None)
        if key is None:
            return
        metas = self.keys[key]
        metas.pop(ref, None)
        if not metas:
            del self.keys[key]

    def apply(self, diff: Mapping[str, Any]) -> None:
        # joins first: an update (a new meta for a key, the old one leaving)
        # never empties the key on the way
        for key, metas in (diff.get("joins") or {}).items():
            for meta in metas:
                self.add(key, meta)
        for metas in (diff.get("leaves") or {}).values():
            for meta in metas:
                self.remove(meta.get(PRESENCE_REF))

    def reset(self, values: list[str]) -> None:
        self.keys.clear()
        self.refs.clear()
        for value in values:
            self.add(*_split(value))

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        return {key: list(metas.values()) for key, metas in self.keys.items()}


def _diff(channel: str, joins: dict[str, Any], leaves: dict[str, Any]) -> dict[str, Any]:
    return {"channel": channel, "joins": joins, "leaves": leaves}


# -- the in-process store -----------------------------------------------------------


class _Channel:
    __slots__ = ("members", "state", "epoch", "n")

    def __init__(self) -> None:
        self.members: dict[str, Tracking] = {}  # socket id -> its tracking
        self.state = _State()
        # the version of the changes, as Redis counts them
        self.epoch = secrets.token_urlsafe(6)
        self.n = 0


class MemoryStore:
    """The members of every channel, in this process. Each change goes to
    the channel's replica (the subscribers here) with its version, as a
    change from Redis would."""

    def __init__(self) -> None:
        self._channels: dict[tuple[str, str], _Channel] = {}
        self._lock = threading.Lock()

    def join(
        self, engine: Any, namespace: str, channel: str, sid: str, tracking: Tracking
    ) -> tuple[str, int]:
        """Track ``sid`` (or update it); the channel's version after it."""
        with self._lock:
            entry = self._channels.setdefault((namespace, channel), _Channel())
            old = entry.members.get(sid)
            if old is not None and old.value == tracking.value:
                return entry.epoch, entry.n
            entry.members[sid] = tracking
            leaves = {}
            if old is not None:
                entry.state.remove(old.ref)
                leaves = {old.key: [old.wire]}
            entry.state.add(tracking.key, tracking.wire)
            entry.n += 1
            version = entry.epoch, entry.n
        diff = _diff(channel, {tracking.key: [tracking.wire]}, leaves)
        _receive(engine, (namespace, channel), diff, *version)
        return version

    def leave(self, engine: Any, namespace: str, channel: str, sid: str) -> int | None:
        """Remove ``sid``'s meta; return how many metas its key still has
        (None when it was not tracked)."""
        key = (namespace, channel)
        with self._lock:
            entry = self._channels.get(key)
            old = entry.members.pop(sid, None) if entry is not None else None
            if entry is None or old is None:
                return None
            entry.state.remove(old.ref)
            remaining = len(entry.state.keys.get(old.key, ()))
            entry.n += 1
            version = entry.epoch, entry.n
            if not entry.members and key not in _replicas:
                del self._channels[key]
        _receive(engine, key, _diff(channel, {}, {old.key: [old.wire]}), *version)
        return remaining

    def current(self, namespace: str, channel: str) -> tuple[str, int, dict[str, Any]]:
        """The channel's version and state, for a new replica (the channel's
        entry is kept while it has one, so its version goes on)."""
        with self._lock:
            entry = self._channels.setdefault((namespace, channel), _Channel())
            return entry.epoch, entry.n, entry.state.snapshot()

    def forget_if_empty(self, namespace: str, channel: str) -> None:
        with self._lock:
            entry = self._channels.get((namespace, channel))
            if entry is not None and not entry.members:
                del self._channels[(namespace, channel)]

    def read(self, namespace: str, channel: str) -> dict[str, list[dict[str, Any]]]:
        """The state as the application gave it (fresh copies, no refs)."""
        with self._lock:
            entry = self._channels.get((namespace, channel))
            trackings = list(entry.members.values()) if entry is not None else []
        found: dict[str, list[dict[str, Any]]] = {}
        for tracking in trackings:
            found.setdefault(tracking.key, []).append(tracking.meta())
        return found


def _send(engine: Any, namespace: str, channel: str, data: dict[str, Any], **kwargs: Any) -> None:
    engine.emit(PRESENCE, data, to=room(channel), namespace=namespace, **kwargs)


# -- the Redis store -------------------------------------------------------------------

# KEYS: the members' expiries (sorted set), the members (hash: socket id ->
# key JSON, tab, meta JSON), the version (hash: e = epoch, n = counter).
# ARGV: timeout (ms), pub/sub channel, the published message's head, a
# candidate epoch; then each script's own.
_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local timeout = tonumber(ARGV[1])
local joins, jorder, leaves, lorder = {}, {}, {}, {}
local changed = false

local function group(map, order, value)
  local tab = string.find(value, '\\t', 1, true)
  local key = string.sub(value, 1, tab - 1)
  if not map[key] then
    map[key] = {}
    order[#order + 1] = key
  end
  local metas = map[key]
  metas[#metas + 1] = string.sub(value, tab + 1)
  changed = true
end

local function as_json(map, order)
  local parts = {}
  for i, key in ipairs(order) do
    parts[i] = key .. ':[' .. table.concat(map[key], ',') .. ']'
  end
  return '{' .. table.concat(parts, ',') .. '}'
end

-- members whose process stopped refreshing them: they leave
local function sweep()
  while true do
    local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 500)
    if #dead == 0 then
      return
    end
    local values = redis.call('HMGET', KEYS[2], unpack(dead))
    for _, value in ipairs(values) do
      if value then
        group(leaves, lorder, value)
      end
    end
    redis.call('ZREM', KEYS[1], unpack(dead))
    redis.call('HDEL', KEYS[2], unpack(dead))
  end
end

-- count the change (if any), publish it, keep the keys alive
local function finish()
  local epoch = redis.call('HGET', KEYS[3], 'e')
  if not epoch then
    epoch = ARGV[4]
    redis.call('HSET', KEYS[3], 'e', epoch, 'n', 0)
  end
  local n
  if changed then
    n = redis.call('HINCRBY', KEYS[3], 'n', 1)
    if ARGV[2] ~= '' then
      redis.call('PUBLISH', ARGV[2], ARGV[3] .. '"joins":' .. as_json(joins, jorder)
        .. ',"leaves":' .. as_json(leaves, lorder) .. '}],"wsio_presence":{"epoch":"'
        .. epoch .. '","n":' .. n .. '}}')
    end
  else
    n = tonumber(redis.call('HGET', KEYS[3], 'n'))
  end
  redis.call('PEXPIRE', KEYS[1], timeout)
  redis.call('PEXPIRE', KEYS[2], timeout)
  redis.call('PEXPIRE', KEYS[3], timeout)
  return epoch, n
end
"""

# ARGV[5]: socket id, ARGV[6]: its value. Tracks it, or updates it;
# returns the epoch and the counter after it.
_JOIN = """
sweep()
local old = redis.call('HGET', KEYS[2], ARGV[5])
if old ~= ARGV[6] then
  if old then
    group(leaves, lorder, old)
  end
  redis.call('HSET', KEYS[2], ARGV[5], ARGV[6])
  group(joins, jorder, ARGV[6])
end
redis.call('ZADD', KEYS[1], now + timeout, ARGV[5])
local epoch, n = finish()
return {epoch, n}
"""

# ARGV[5]: socket id, ARGV[6]: '1' to count the metas its key still has.
# Returns that count (0: the key left), or -1 when it was not tracked.
_LEAVE = """
sweep()
local old = redis.call('HGET', KEYS[2], ARGV[5])
local remaining = -1
if old then
  group(leaves, lorder, old)
  redis.call('HDEL', KEYS[2], ARGV[5])
  redis.call('ZREM', KEYS[1], ARGV[5])
  remaining = 0
  if ARGV[6] == '1' then
    local prefix = string.sub(old, 1, string.find(old, '\\t', 1, true))
    for _, value in ipairs(redis.call('HVALS', KEYS[2])) do
      if string.sub(value, 1, #prefix) == prefix then
        remaining = remaining + 1
      end
    end
  end
end
finish()
return remaining
"""

# Returns the epoch, the counter and every member's value.
_STATE = """
sweep()
local epoch, n = finish()
return {epoch, n, redis.call('HVALS', KEYS[2])}
"""

# ARGV[5...]: this process's socket ids in the channel, whose expiry is
# pushed back (before the sweep: a member that is late by a moment never
# left anybody's list). Returns the epoch, the counter and the ids that are
# not there any more (expired while the process could not refresh them, or
# lost with Redis's data), for the process to track again.
_BEAT = """
local missing = {}
for i = 5, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], now + timeout, ARGV[i])
  else
    missing[#missing + 1] = ARGV[i]
  end
end
sweep()
local epoch, n = finish()
return {epoch, n, missing}
"""


def _keys(namespace: str, channel: str) -> tuple[str, str, str]:
    # one hash tag for a channel's keys: one Redis Cluster slot
    base = "wsio:p:{" + namespace + " " + channel + "}"
    return base + ":z", base + ":m", base + ":v"


def _head(namespace: str, channel: str) -> str:
    """The start of the pub/sub message of a change (python-socketio's emit
    message), up to where the script writes the joins and the leaves. Its
    host_id is nobody's, so every process, this one included, takes it from
    pub/sub, in the order Redis made the changes."""
    return (
        '{"method":"emit","event":' + json.dumps(PRESENCE) + ',"namespace":'
        + json.dumps(namespace) + ',"room":' + json.dumps(room(channel))
        + ',"skip_sid":null,"callback":null,"binary":false,"host_id":"","data":[{"channel":'
        + json.dumps(channel) + ","
    )  # fmt: skip


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class RedisStore:
    """The members of every channel, in Redis (see the module docstring).

    :param queue: the message queue (its Redis client and pub/sub channel).
    """

    #: channels per pipeline of the heartbeat
    BATCH = 100

    def __init__(self, queue: Any) -> None:
        # the queue's client, looked up on each call: the queue replaces it
        # when it reconnects
        self.queue = queue
        client = queue.client()
        self._join = client.register_script(_PRELUDE + _JOIN)
        self._leave = client.register_script(_PRELUDE + _LEAVE)
        self._state = client.register_script(_PRELUDE + _STATE)
        self._beat = client.register_script(_PRELUDE + _BEAT)

    @property
    def redis(self) -> Any:
        return self.queue.client()

    def _args(self, namespace: str, channel: str) -> list[Any]:
        timeout = max(1, int(_timeout() * 1000))
        return [timeout, self.queue.channel, _head(namespace, channel), secrets.token_urlsafe(6)]

    def join(self, namespace: str, channel: str, sid: str, value: str) -> tuple[str, int]:
        """Track ``sid`` (or update it); the channel's version after it."""
        epoch, n = self._join(
            keys=_keys(namespace, channel),
            args=[*self._args(namespace, channel), sid, value],
            client=self.redis,
        )
        return _text(epoch), int(n)

    def leave(self, namespace: str, channel: str, sid: str, count: bool = False) -> int:
        """Remove ``sid``; return how many metas its key still has (counted
        with ``count`` only, else 0), or -1 when it was not tracked."""
        return int(
            self._leave(
                keys=_keys(namespace, channel),
                args=[*self._args(namespace, channel), sid, "1" if count else "0"],
                client=self.redis,
            )
        )

    def state(self, namespace: str, channel: str) -> tuple[str, int, list[str]]:
        """The channel's epoch, counter and members' values."""
        epoch, n, values = self._state(
            keys=_keys(namespace, channel), args=self._args(namespace, channel), client=self.redis
        )
        return _text(epoch), int(n), [_text(v) for v in values]

    def beat(
        self, items: list[tuple[tuple[str, str], list[str]]]
    ) -> list[tuple[str, int, list[str]]]:
        """Refresh this process's members of each channel (pipelined);
        for each, the epoch, the counter and the ids that are missing."""
        out = []
        for start in range(0, len(items), self.BATCH):
            pipe = self.redis.pipeline(transaction=False)
            for (namespace, channel), sids in items[start : start + self.BATCH]:
                self._beat(
                    keys=_keys(namespace, channel),
                    args=[*self._args(namespace, channel), *sids],
                    client=pipe,
                )
            for epoch, n, missing in pipe.execute():
                out.append((_text(epoch), int(n), [_text(s) for s in missing]))
        return out


# -- this process --------------------------------------------------------------------

_memory = MemoryStore()
#: (namespace, channel) -> {socket id: value}: this process's members, in Redis
_local: dict[tuple[str, str], dict[str, str]] = {}
#: (namespace, channel) -> the state, for the channels with subscribers here
_replicas: dict[tuple[str, str], _Replica] = {}
_heart: dict[str, Any] = {"greenlet": None}
_failing = {"now": False}


def reset() -> None:
    """Forget every member, replica and heartbeat of this process (tests)."""
    global _memory
    _memory = MemoryStore()
    _local.clear()
    _replicas.clear()
    beat, _heart["greenlet"] = _heart["greenlet"], None
    if beat is not None:
        beat.kill(block=False)


def store_of(manager: Any) -> MemoryStore | RedisStore:
    """The store for a python-socketio manager: Redis when it is the
    project's Redis queue, this process's memory when there is none.

    :raises ImproperlyConfigured: for a queue that cannot share presence.
    """
    if manager is None:
        return _memory
    from ._engine.redis_queue import RedisQueue

    if not isinstance(manager, RedisQueue):
        if getattr(manager, "write_only", False) or type(manager).__name__ == "KombuManager":
            raise ImproperlyConfigured(
                "presence needs a Redis message queue (or none): other queues cannot share "
                "a channel's members between processes."
            )
        return _memory
    store = getattr(manager, "wsio_presence", None)
    if store is None:
        store = manager.wsio_presence = RedisStore(manager)
    return store  # type: ignore[no-any-return]


def _redis_failed(what: str, channel: str | None, exc: BaseException) -> None:
    # logged once until Redis answers again (a beat that works)
    if _failing["now"]:
        return
    _failing["now"] = True
    from .messagequeue import reason

    where = f" of channel {channel!r}" if channel else ""
    logger.warning(
        "Presence: could not %s%s in Redis (%s); retried every %.1f s until it answers",
        what,
        where,
        reason(exc),
        _timeout() / 3,
    )


# -- replicas: a channel's state where its subscribers are -----------------------------


class _Replica(_State):
    """A channel's state where its subscribers are. Changes (from Redis
    pub/sub, or from the in-process store) are received in version order
    into ``pending`` and delivered to the subscribers here together, at
    most :data:`FLUSH_DELAY` later: a burst of joins then costs each
    subscriber a few messages, not one per join.
    The state (what a subscribe's ack carries) is the one delivered so far,
    so a new subscriber gets exactly the changes after its state."""

    __slots__ = (
        "epoch",
        "n",
        "delivered",
        "pending",
        "pending_refs",
        "flusher",
        "cached",
        "loading",
        "stale",
        "behind",
        "buffer",
        "users",
        "ready",
        "moved",
    )

    def __init__(self) -> None:
        super().__init__()
        self.epoch = ""
        #: the version received (pending changes included) and delivered
        self.n = 0
        self.delivered = 0
        self.pending: list[Mapping[str, Any]] = []
        self.pending_refs: set[Any] = set()
        self.flusher: Any = None
        #: the snapshot of the delivered state, while it does not change
        self.cached: dict[str, list[dict[str, Any]]] | None = None
        self.loading = False
        #: the last read failed: read again at the next heartbeat
        self.stale = False
        #: the counter Redis had at the last heartbeat, if ahead of this one
        self.behind: int | None = None
        #: changes received while the state is being read
        self.buffer: list[tuple[Mapping[str, Any], Mapping[str, Any]]] = []
        #: greenlets waiting for it
        self.users = 0
        #: set when a read ends; when changes are delivered
        self.ready: Any = None
        self.moved: Any = None

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        if self.cached is None:
            self.cached = super().snapshot()
        return self.cached

    def reset(self, values: list[str]) -> None:
        super().reset(values)
        self.pending.clear()
        self.pending_refs.clear()
        self.cached = None

    def start_from(self, epoch: str, n: int, state: dict[str, list[dict[str, Any]]]) -> None:
        """Begin at a state (of the in-process store) and its version."""
        for key, metas in state.items():
            for meta in metas:
                self.add(key, meta)
        self.epoch, self.n, self.delivered = epoch, n, n

    def advanced(self) -> None:
        moved, self.moved = self.moved, None
        if moved is not None:
            moved.set()

    def wait_for(self, epoch: str, n: int, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) until this replica has
        delivered the change numbered ``n`` of ``epoch``."""
        from gevent.event import Event

        deadline = time.monotonic() + timeout
        while (self.loading or (self.epoch == epoch and self.delivered < n)) and (
            remaining := deadline - time.monotonic()
        ) > 0:
            if self.moved is None:
                self.moved = Event()
            self.users += 1
            try:
                self.moved.wait(remaining)
            finally:
                self.users -= 1


def _refs(diff: Mapping[str, Any]) -> set[Any]:
    return {
        meta.get(PRESENCE_REF)
        for part in ("joins", "leaves")
        for metas in (diff.get(part) or {}).values()
        for meta in metas
    }


def _flush(engine: Any, key: tuple[str, str], replica: _Replica) -> None:
    """Deliver the pending changes, as one, to the subscribers here."""
    if not replica.pending:
        return
    joins: dict[str, list[Any]] = {}
    leaves: dict[str, list[Any]] = {}
    for diff in replica.pending:
        replica.apply(diff)
        for part, into in (("joins", joins), ("leaves", leaves)):
            for name, metas in (diff.get(part) or {}).items():
                into.setdefault(name, []).extend(metas)
    replica.pending.clear()
    replica.pending_refs.clear()
    replica.delivered = replica.n
    replica.cached = None
    _send(engine, key[0], key[1], _diff(key[1], joins, leaves), ignore_queue=True)
    replica.advanced()


def _flush_later(engine: Any, key: tuple[str, str], replica: _Replica) -> None:
    replica.flusher = None
    _flush(engine, key, replica)


def _replica(engine: Any, store: RedisStore, namespace: str, channel: str) -> _Replica:
    """The replica of a channel, read from Redis first if this process has
    none; waits while it is being read."""
    key = (namespace, channel)
    replica = None
    for _ in range(3):
        replica = _replicas.get(key)
        if replica is None:
            replica = _replicas[key] = _Replica()
            _begin(replica)
            _load(engine, store, namespace, channel, replica, notify=False)
        elif replica.loading and replica.ready is not None:
            replica.users += 1
            try:
                replica.ready.wait(10)
            finally:
                replica.users -= 1
        if _replicas.get(key) is replica:
            return replica
    assert replica is not None
    return replica


def _begin(replica: _Replica) -> None:
    """Mark ``replica`` as being read: changes wait in its buffer, and
    subscribers wait for it."""
    from gevent.event import Event

    replica.loading = True
    replica.ready = Event()


def _load(
    engine: Any, store: RedisStore, namespace: str, channel: str, replica: _Replica, notify: bool
) -> None:
    """Read the channel's state into ``replica`` (begun), then apply what
    arrived meanwhile; with ``notify``, send the state to the local
    subscribers (it replaces the changes still pending)."""
    ready = replica.ready
    try:
        epoch, n, values = store.state(namespace, channel)
    except Exception as exc:
        replica.stale = True
        _redis_failed("read the members", channel, exc)
    else:
        replica.reset(values)
        replica.epoch, replica.n, replica.stale, replica.behind = epoch, n, False, None
        for info, diff in replica.buffer:
            if info.get("epoch") != replica.epoch or int(info.get("n", 0)) <= replica.n:
                continue
            if int(info["n"]) != replica.n + 1:
                replica.stale = True  # a change was lost on the way: read again
                break
            replica.apply(diff)
            replica.n += 1
        replica.delivered = replica.n
    finally:
        replica.buffer = []
        replica.loading = False
        if ready is not None:
            ready.set()
        replica.advanced()
    if notify:
        _send(
            engine,
            namespace,
            channel,
            {"channel": channel, "state": replica.snapshot()},
            ignore_queue=True,
        )


def _resync(engine: Any, store: RedisStore, key: tuple[str, str], replica: _Replica) -> None:
    import gevent

    if replica.loading:
        return
    _begin(replica)  # what arrives from now on waits in the buffer
    gevent.spawn(_load, engine, store, key[0], key[1], replica, True)


def on_diff(engine: Any, message: Mapping[str, Any]) -> None:
    """A change from Redis pub/sub (of any process, this one included):
    take it into the channel's replica, in the order of its version, for
    the subscribers here."""
    data = message.get("data")
    info = message.get(VERSION_FIELD)
    if not isinstance(data, list) or not data or not isinstance(info, Mapping):
        return
    diff = data[0]
    if not isinstance(diff, Mapping):
        return
    namespace = message.get("namespace") or "/"
    key = (namespace, diff.get("channel"))
    replica = _replicas.get(key)  # type: ignore[arg-type]
    if replica is None:
        return  # nobody here subscribes to it
    if replica.loading:
        replica.buffer.append((info, diff))
        return
    n = int(info.get("n", 0))
    if info.get("epoch") != replica.epoch or n > replica.n + 1:
        # lost with Redis's data, or changes missed: read the state again
        replica.buffer.append((info, diff))
        _resync(engine, store_of(engine.manager), key, replica)  # type: ignore[arg-type]
        return
    if n <= replica.n:
        return  # in the state already
    _take(engine, key, replica, diff, n)  # type: ignore[arg-type]


def _receive(
    engine: Any, key: tuple[str, str], diff: Mapping[str, Any], epoch: str, n: int
) -> None:
    """A change of the in-process store, for the subscribers here."""
    replica = _replicas.get(key)
    if replica is not None and replica.epoch == epoch and n > replica.n:
        _take(engine, key, replica, diff, n)


def _batching() -> bool:
    """Whether this runs in a greenlet of a server (a connection's, the
    queue listener's): then changes can wait a moment to go out together.
    In a main greenlet (the in-process test client, a script) they go out
    at once."""
    import greenlet

    return greenlet.getcurrent().parent is not None


def _take(
    engine: Any, key: tuple[str, str], replica: _Replica, diff: Mapping[str, Any], n: int
) -> None:
    """The next change of a replica, numbered ``n``: pending until the next
    delivery."""
    refs = _refs(diff)
    if replica.pending_refs & refs:
        # a meta already pending (a leave, then the same meta back): the
        # order matters, so what is pending goes first
        _flush(engine, key, replica)
    replica.pending.append(diff)
    replica.pending_refs |= refs
    replica.n = n
    if not _batching():
        _flush(engine, key, replica)
    elif replica.flusher is None:
        import gevent

        replica.flusher = gevent.spawn_later(FLUSH_DELAY, _flush_later, engine, key, replica)


def resync_all(engine: Any) -> None:
    """After this process missed pub/sub for a while: read every replica's
    state again and send it to its subscribers."""
    store = store_of(engine.manager)
    if not isinstance(store, RedisStore):
        return
    for key, replica in list(_replicas.items()):
        _resync(engine, store, key, replica)


def _drop_replica(engine: Any, namespace: str, channel: str) -> None:
    replica = _replicas.get((namespace, channel))
    if (
        replica is not None
        and not replica.loading
        and not replica.users
        and not boundary.room_members(engine, namespace, room(channel))
    ):
        del _replicas[(namespace, channel)]
        if replica.flusher is not None:
            replica.flusher.kill(block=False)
        store = store_of(engine.manager)
        if isinstance(store, MemoryStore):
            store.forget_if_empty(namespace, channel)


# -- the heartbeat ------------------------------------------------------------------------


def _ensure_beat(engine: Any, store: RedisStore) -> None:
    beat = _heart["greenlet"]
    if beat is None or beat.dead:
        import gevent

        _heart["greenlet"] = gevent.spawn(_beat_loop, engine, store)


def _beat_loop(engine: Any, store: RedisStore) -> None:
    import gevent

    while True:
        gevent.sleep(_timeout() / 3)
        try:
            beat(engine, store)
        except Exception as exc:
            _redis_failed("refresh the members", None, exc)
        else:
            _failing["now"] = False


def beat(engine: Any, store: RedisStore) -> None:
    """One heartbeat: push back the expiry of this process's members, track
    again those Redis lost, sweep the channels this process has subscribers
    in, and read again the replicas that fell behind."""
    items: list[tuple[tuple[str, str], list[str]]] = []
    for key in set(_local) | set(_replicas):
        members = _local.get(key, {})
        for sid in [s for s in members if not boundary.has_socket(engine, s, key[0])]:
            # a socket that went without leaving (it should not happen)
            members.pop(sid, None)
            store.leave(key[0], key[1], sid)
        if not members:
            _local.pop(key, None)
        items.append((key, list(members)))
    if not items:
        return
    for (key, _sids), (epoch, n, missing) in zip(items, store.beat(items), strict=True):
        members = _local.get(key, {})
        lost = [sid for sid in missing if sid in members]
        if lost:
            logger.warning(
                "Presence: %d members of channel %r had expired in Redis while this process "
                "was alive (blocked, or Redis lost its data); tracked again",
                len(lost),
                key[1],
            )
        for sid in lost:
            store.join(key[0], key[1], sid, members[sid])
        replica = _replicas.get(key)
        if replica is None or replica.loading:
            continue
        if not replica.users and not boundary.room_members(engine, key[0], room(key[1])):
            _drop_replica(engine, *key)
        elif (
            replica.stale
            or epoch != replica.epoch
            or (replica.behind is not None and replica.n < replica.behind)
        ):
            _resync(engine, store, key, replica)
        else:
            replica.behind = n if n > replica.n else None


# -- subscriptions ------------------------------------------------------------------------


@dataclass
class Subscription:
    """A socket's presence in one channel (``socket._presence[channel]``)."""

    #: what it is tracked as (before the join: what it will be)
    tracking: Tracking | None = None
    #: untrack() before the join: a subscriber that is not tracked
    untracked: bool = False
    #: joined: it gets the channel's changes (it is in the presence room)
    active: bool = False


def _subscribed(socket: Any, channel: str) -> bool:
    from .channels import room as channel_room

    return channel in socket._joined and boundary.in_room(
        socket._engine, socket.namespace, channel_room(channel), socket.session_id
    )


def _store_join(socket: Any, channel: str, tracking: Tracking) -> tuple[str, int] | None:
    """Track the socket; with Redis, the channel's version after it."""
    engine, namespace, sid = socket._engine, socket.namespace, socket.session_id
    store = store_of(engine.manager)
    if isinstance(store, MemoryStore):
        return store.join(engine, namespace, channel, sid, tracking)
    # recorded first: if Redis does not answer, the heartbeat tracks it
    _local.setdefault((namespace, channel), {})[sid] = tracking.value
    _ensure_beat(engine, store)
    try:
        return store.join(namespace, channel, sid, tracking.value)
    except Exception as exc:
        _redis_failed("track a member", channel, exc)
        return None


def _store_leave(socket: Any, channel: str, count: bool = False) -> int | None:
    engine, namespace, sid = socket._engine, socket.namespace, socket.session_id
    store = store_of(engine.manager)
    if isinstance(store, MemoryStore):
        return store.leave(engine, namespace, channel, sid)
    members = _local.get((namespace, channel))
    if members is not None:
        members.pop(sid, None)
        if not members:
            del _local[(namespace, channel)]
    try:
        remaining = store.leave(namespace, channel, sid, count)
    except Exception as exc:
        # it expires by itself within the timeout
        _redis_failed("remove a member", channel, exc)
        return None
    return remaining if remaining >= 0 else None


def _snapshot(
    socket: Any, channel: str, after: tuple[str, int] | None = None
) -> dict[str, list[dict[str, Any]]] | None:
    """The channel's state for this socket, with the socket put among its
    presence subscribers in the same step (no change can come between);
    None when the socket went away meanwhile. ``after``: a version the
    state must include (the socket's own join), waited for a moment."""
    engine, namespace, sid = socket._engine, socket.namespace, socket.session_id
    store = store_of(engine.manager)
    if isinstance(store, MemoryStore):
        replica = _replicas.get((namespace, channel))
        if replica is None:
            replica = _replicas[(namespace, channel)] = _Replica()
            replica.start_from(*store.current(namespace, channel))
    else:
        replica = _replica(engine, store, namespace, channel)
    if after is not None:
        # the socket's own join is delivered in a moment (with Redis, once it
        # came back through pub/sub); a reply without it would be followed
        # by it, so this is only for a state that includes the socket itself
        replica.wait_for(*after, timeout=JOIN_WAIT)
    if not boundary.has_socket(engine, sid, namespace):
        return None
    state = replica.snapshot()
    engine.enter_room(sid, room(channel), namespace=namespace)
    return state


def _activate(socket: Any, channel: str, sub: Subscription) -> dict[str, Any] | None:
    """Start presence for an accepted subscription: track it (if it is to
    be), make it a subscriber of the changes; return the state."""
    sub.active = True
    version = None
    if sub.tracking is not None:
        version = _store_join(socket, channel, sub.tracking)
    state = None
    if socket._presence.get(channel) is sub:
        state = _snapshot(socket, channel, after=version)
    if state is None or socket._presence.get(channel) is not sub:
        # the socket went away while Redis answered: undo what it began
        if sub.tracking is not None:
            _store_leave(socket, channel)
        return None
    return state


def track(socket: Any, channel: str, key: Any, meta: Any) -> None:
    """``socket.track()``: see :meth:`webpy_socketio.sockets.Socket.track`."""
    tracking = make_tracking(socket.session_id if key is None else key, meta)
    sub = socket._presence.get(channel)
    if sub is None:
        sub = socket._presence[channel] = Subscription()
    if sub.active:
        # an update: one change, the old meta leaving and the new one joining
        sub.tracking, sub.untracked = tracking, False
        _store_join(socket, channel, tracking)
        return
    sub.tracking, sub.untracked = tracking, False
    if _subscribed(socket, channel):
        # subscribed before, to a channel without presence: it starts now,
        # and the socket gets the state as an event
        state = _activate(socket, channel, sub)
        if state is not None:
            socket._engine.emit(
                PRESENCE,
                {"channel": channel, "state": state},
                to=socket.session_id,
                namespace=socket.namespace,
            )


def untrack(socket: Any, channel: str) -> int | None:
    """``socket.untrack()``: see :meth:`webpy_socketio.sockets.Socket.untrack`."""
    sub = socket._presence.get(channel)
    if sub is None:
        if matches(channel) and not _subscribed(socket, channel):
            socket._presence[channel] = Subscription(untracked=True)
        return None
    if not sub.active:
        sub.tracking, sub.untracked = None, True
        return None
    tracking, sub.tracking = sub.tracking, None
    if tracking is None:
        return None
    return _store_leave(socket, channel, count=True)


def joined(socket: Any, channel: str, ack: bool = True) -> dict[str, Any]:
    """Called once a subscription is accepted and the socket has joined the
    channel: start its presence, if the channel has any. Returns the ack's
    field (``{"presence": state}``), or with ``ack=False`` (a subscribe
    from the server side) sends the state to the socket as an event."""
    sub = socket._presence.get(channel)
    if sub is not None and sub.active:
        state = _snapshot(socket, channel)  # subscribed again: the state as it is
    else:
        pattern = matches(channel)
        if sub is None:
            if not pattern:
                return {}
            sub = socket._presence[channel] = Subscription()
        if sub.tracking is None:
            if not pattern:
                del socket._presence[channel]  # untracked before it began: nothing
                return {}
            if not sub.untracked:
                sub.tracking = make_tracking(socket.session_id, None)
        state = _activate(socket, channel, sub)
    if state is None:
        return {}
    if ack:
        return {"presence": state}
    socket._engine.emit(
        PRESENCE,
        {"channel": channel, "state": state},
        to=socket.session_id,
        namespace=socket.namespace,
    )
    return {}


def refused(socket: Any, channel: str) -> None:
    """A subscription was refused: what on_subscribe tracked is forgotten."""
    sub = socket._presence.get(channel)
    if sub is not None and not sub.active:
        del socket._presence[channel]


def left(socket: Any, channel: str) -> None:
    """The socket left ``channel`` (unsubscribed): its meta leaves."""
    sub = socket._presence.pop(channel, None)
    if sub is not None and sub.active:
        _stop(socket, channel, sub)


def disconnected(socket: Any) -> None:
    """The socket closed: its metas leave every channel at once."""
    subs, socket._presence = socket._presence, {}
    for channel, sub in subs.items():
        if sub.active:
            _stop(socket, channel, sub)


def _stop(socket: Any, channel: str, sub: Subscription) -> None:
    engine, namespace = socket._engine, socket.namespace
    # out of the room first: the socket does not get its own leave
    engine.leave_room(socket.session_id, room(channel), namespace=namespace)
    try:
        if sub.tracking is not None:
            _store_leave(socket, channel)
    finally:
        _drop_replica(engine, namespace, channel)


# -- reading it ---------------------------------------------------------------------------


def members(manager: Any, namespace: str, channel: str) -> dict[str, list[dict[str, Any]]]:
    """``{key: [meta, ...]}`` of ``channel`` (see :func:`webpy_socketio.presence`).

    :raises PresenceError: for a channel without presence.
    """
    store = store_of(manager)
    if isinstance(store, MemoryStore):
        found = store.read(namespace, channel)
    else:
        _, _, values = store.state(namespace, channel)
        found = {}
        for value in values:
            key, meta = _split(value)
            meta.pop(PRESENCE_REF, None)
            found.setdefault(key, []).append(meta)
    if not found and not matches(channel):
        raise PresenceError(
            f"channel {channel!r} has no presence: no pattern of SOCKETIO_PRESENCE matches it "
            "and no subscription of it is tracked (socket.track())"
        )
    return found


__all__ = [
    "MAX_KEY_LENGTH",
    "MemoryStore",
    "RedisStore",
    "Subscription",
    "Tracking",
    "joined",
    "make_tracking",
    "matches",
    "members",
    "on_diff",
    "room",
    "track",
    "untrack",
]
