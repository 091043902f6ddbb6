"""Rate limits on what each client sends (``SOCKETIO_RATE_LIMIT``).

Per socket (one client's connection to one namespace), token buckets on the
events it sends and on their bytes, for every event together (``"*"``) and
per event name::

    SOCKETIO_RATE_LIMIT = {
        "*": ["50/s burst 100", "64KB/s burst 256KB"],   # every event together
        "message": "10/s",                              # and socket.send() alone
        "wsio:subscribe": "5/s burst 20",
    }

A rule is ``COUNT/PERIOD`` (events) or ``SIZE/PERIOD`` with a unit, ``B``,
``KB`` or ``MB`` (bytes of the packets), per ``s``, ``m`` or ``h``, and
optionally ``burst N``: how many may come at once (by default, one period's
worth). An event must fit every bucket that applies to it, or it is refused:
an event with an acknowledgement is answered ``{"ok": false, "error": "rate
limited"}``, one without is dropped, and ``on_rate_limited`` handlers run.
A client that keeps sending over its limit (never a second without a refused
event) for ``SOCKETIO_RATE_LIMIT_DISCONNECT_SECONDS`` is disconnected, with
the reason ``"rate limited"``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from .exceptions import ImproperlyConfigured

#: What a refused event's acknowledgement says.
LIMITED_REPLY = {"ok": False, "error": "rate limited"}
#: The disconnect reason of a client cut for staying over its limit.
DISCONNECT_REASON = "rate limited"
#: A second without a refused event ends a client's stretch over the limit.
GRACE_SECONDS = 1.0

ALLOWED, LIMITED, DISCONNECT = 0, 1, 2

_monotonic = time.monotonic

_UNITS = {"": 1, "b": 1, "kb": 1024, "mb": 1024 * 1024}
_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}
_PERIODS.update({"h": 3600.0, "hour": 3600.0})
_RULE = re.compile(
    r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>[a-zA-Z]*)\s*/\s*(?P<period>[a-zA-Z]+)"
    r"(?:\s+burst\s+(?P<burst>\d+(?:\.\d+)?)\s*(?P<bunit>[a-zA-Z]*))?\s*$"
)
_EXAMPLE = "'50/s burst 100' (events) or '64KB/s burst 256KB' (bytes)"


@dataclass(frozen=True, eq=False)
class Rule:
    """One token bucket: ``rate`` tokens per second, at most ``burst``;
    tokens are events, or bytes when ``in_bytes``. Compared by identity: two
    entries with the same text are two buckets."""

    text: str
    rate: float
    burst: float
    in_bytes: bool


def parse_rule(text: Any, where: str = "SOCKETIO_RATE_LIMIT") -> Rule:
    """A rule from its text.

    :raises ImproperlyConfigured: naming what is wrong and an example.
    """
    if not isinstance(text, str):
        raise ImproperlyConfigured(f"{where}: a rule is a string such as {_EXAMPLE}, not {text!r}.")
    match = _RULE.match(text)
    if match is None:
        raise ImproperlyConfigured(
            f"{where}: {text!r} is not a rate; write it as {_EXAMPLE} (per s, m or h)."
        )
    unit = match["unit"].lower()
    if unit not in _UNITS:
        raise ImproperlyConfigured(
            f"{where}: unknown unit {match['unit']!r} in {text!r}; use B, KB or MB, or no "
            "unit for a number of events."
        )
    period = _PERIODS.get(match["period"].lower())
    if period is None:
        raise ImproperlyConfigured(
            f"{where}: unknown period {match['period']!r} in {text!r}; use s, m or h."
        )
    amount = float(match["n"]) * _UNITS[unit]
    if amount <= 0:
        raise ImproperlyConfigured(f"{where}: {text!r} allows nothing; use a positive rate.")
    burst = amount
    if match["burst"] is not None:
        # a burst without a unit is counted in the rate's unit
        bunit = match["bunit"].lower() or unit
        if bunit not in _UNITS or (bunit == "") != (unit == ""):
            raise ImproperlyConfigured(
                f"{where}: the burst of {text!r} must be counted like its rate (events, or "
                "bytes with B, KB or MB)."
            )
        burst = float(match["burst"]) * _UNITS[bunit]
        if burst < 1:
            raise ImproperlyConfigured(f"{where}: the burst of {text!r} must be at least 1.")
    return Rule(text, amount / period, burst, unit != "")


def parse_setting(value: Any) -> dict[str, tuple[Rule, ...]] | None:
    """``SOCKETIO_RATE_LIMIT`` as rules per event name (``"*"``: every event).

    :raises ImproperlyConfigured: for anything that is not such a mapping.
    """
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise ImproperlyConfigured(
            "SOCKETIO_RATE_LIMIT must be None or a dict from event names ('*' for every "
            f"event) to rules such as {_EXAMPLE}, not {value!r}."
        )
    rules: dict[str, tuple[Rule, ...]] = {}
    for name, spec in value.items():
        if not isinstance(name, str) or not name:
            raise ImproperlyConfigured(
                f"SOCKETIO_RATE_LIMIT: keys are event names or '*', not {name!r}."
            )
        items = spec if isinstance(spec, list | tuple) else [spec]
        if not items:
            raise ImproperlyConfigured(f"SOCKETIO_RATE_LIMIT[{name!r}] has no rule.")
        rules[name] = tuple(parse_rule(item, f"SOCKETIO_RATE_LIMIT[{name!r}]") for item in items)
    return rules


def check_disconnect_setting(value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ImproperlyConfigured(
            "SOCKETIO_RATE_LIMIT_DISCONNECT_SECONDS must be a positive number of seconds (or "
            f"None to never disconnect for it), not {value!r}."
        )


class _State:
    """One socket's buckets (one slot per rule: the time at which that
    bucket is full again) and its stretch over the limit.

    ``calm_at`` is a time by which every bucket is full (no earlier than
    the latest slot). An event that comes after it is charged lazily: it is
    kept as ``pending`` (its plan, time and size) and written to the slots
    only when an event comes before every bucket is full again."""

    __slots__ = ("full_at", "calm_at", "pending", "over_since", "last_refused")

    def __init__(self, slots: int) -> None:
        self.full_at = [0.0] * slots
        self.calm_at = 0.0
        self.pending: tuple[_Plan, float, int] | None = None
        self.over_since: float | None = None
        self.last_refused = 0.0


class _Plan:
    """The buckets one event name is counted in: ``rules``, each ``(slot,
    seconds per token, seconds a full bucket holds, the largest cost in
    tokens: the burst for bytes, 0 for events)``, and the bounds of what an
    event can cost in seconds, to put ``calm_at`` after every charge without
    computing each: ``step`` (the longest event rule's) and ``per_byte`` up
    to ``cap`` bytes (the longest byte rule's)."""

    __slots__ = ("rules", "step", "per_byte", "cap")

    def __init__(self, rules: tuple[tuple[int, float, float, float], ...]) -> None:
        self.rules = rules
        self.step = max((per for _, per, _, cap in rules if not cap), default=0.0)
        self.per_byte = max((per for _, per, _, cap in rules if cap), default=0.0)
        self.cap = max((cap for *_, cap in rules), default=0.0)


class RateLimiter:
    """The buckets of every socket of a process.

    Each bucket is kept as the time at which it is full again (the generic
    cell rate algorithm, the same limits as a token bucket refilled at
    ``rate`` up to ``burst``): an event that costs ``c`` tokens moves it
    ``c / rate`` seconds later, and is refused when that would leave it
    more than ``burst / rate`` seconds ahead of now. One float per bucket
    and no refill arithmetic: this runs for every event.

    A client below its rates usually finds every bucket full: then its event
    fits whatever it costs (no cost exceeds a burst), and it is counted with
    one comparison and its charges are written later, only if the next event
    comes before the buckets are full again (:class:`_State`).

    :param rules: from :func:`parse_setting`.
    :param disconnect_after: seconds over the limit before a disconnect
        (None: never).
    """

    def __init__(
        self, rules: dict[str, tuple[Rule, ...]], disconnect_after: float | None = None
    ) -> None:
        self.rules = rules
        self.disconnect_after = disconnect_after
        every = [rule for own in rules.values() for rule in own]
        self._slots = len(every)
        slot = {id(rule): k for k, rule in enumerate(every)}

        def plan(chosen: tuple[Rule, ...]) -> tuple[tuple[int, float, float, float], ...]:
            # the window has a millionth more, or sums of floats would
            # refuse the last token of a burst (0.1 + 0.2 > 0.3)
            return tuple(
                (
                    slot[id(r)],
                    1.0 / r.rate,
                    r.burst / r.rate * (1 + 1e-6),
                    r.burst if r.in_bytes else 0.0,
                )
                for r in chosen
            )

        every_event = plan(rules.get("*", ()))
        self._all = _Plan(every_event) if every_event else None
        # event name -> every rule that applies to it (only named events:
        # a client choosing names cannot grow this)
        self._for = {
            name: _Plan(every_event + plan(own)) for name, own in rules.items() if name != "*"
        }
        self._states: dict[str, _State] = {}

    def check(self, sid: str, event: str, size: int, now: float | None = None) -> int:
        """Count one event of ``size`` bytes from ``sid``: :data:`ALLOWED`,
        :data:`LIMITED` (refuse it) or :data:`DISCONNECT` (refuse it, and the
        client has stayed over its limit too long)."""
        plan = self._for.get(event, self._all)
        if plan is None:
            return ALLOWED
        if now is None:
            now = _monotonic()
        state = self._states.get(sid)
        if state is None:
            state = self._states[sid] = _State(self._slots)
        if now < state.calm_at:
            return self._check_busy(state, plan, size, now)
        # every bucket is full: the event fits; its charges wait in pending
        # (an earlier pending one is spent: its buckets are full again)
        state.pending = (plan, now, size)
        cap = plan.cap
        spent = (size if size < cap else cap) * plan.per_byte
        state.calm_at = now + (spent if spent > plan.step else plan.step)
        return ALLOWED

    def _check_busy(self, state: _State, plan: _Plan, size: int, now: float) -> int:
        """:meth:`check` when some bucket may not be full: charge each
        bucket, all or nothing."""
        full_at = state.full_at
        if state.pending is not None:
            # the pending event came when every bucket was full
            charged, at, charged_size = state.pending
            state.pending = None
            for k, per_token, _, cap in charged.rules:
                full_at[k] = at + (
                    (charged_size if charged_size < cap else cap) if cap else 1.0
                ) * per_token
        # each bucket that has room is charged; at the first one without
        # room the charges already made are given back. A packet larger than
        # a byte bucket's burst passes when that bucket is full.
        rules = plan.rules
        for k, per_token, window, cap in rules:
            at = full_at[k]
            if at < now:
                at = now
            at += ((size if size < cap else cap) if cap else 1.0) * per_token
            if at - now > window:
                verdict = self._refused(state, rules, k, size, now)
                state.calm_at = max(full_at)
                return verdict
            full_at[k] = at
        state.calm_at = max(full_at)
        return ALLOWED

    def _refused(
        self,
        state: _State,
        rules: tuple[tuple[int, float, float, float], ...],
        full: int,
        size: int,
        now: float,
    ) -> int:
        """The rare path of :meth:`check`: bucket ``full`` (its slot) had no
        room; give back what the buckets before it were charged (a bucket
        that was full counts from now either way) and say whether the client
        stayed over its limit too long."""
        full_at = state.full_at
        for k, per_token, _, cap in rules:
            if k == full:
                break
            full_at[k] -= ((size if size < cap else cap) if cap else 1.0) * per_token
        if state.over_since is None or now - state.last_refused > GRACE_SECONDS:
            state.over_since = now
        state.last_refused = now
        after = self.disconnect_after
        if after is not None and now - state.over_since >= after:
            return DISCONNECT
        return LIMITED

    def starts_stretch(self, sid: str) -> bool:
        """Whether the last refusal for ``sid`` began a stretch over the
        limit (to log it once per stretch, not per event)."""
        state = self._states.get(sid)
        return state is not None and state.over_since == state.last_refused

    def forget(self, sid: str) -> None:
        self._states.pop(sid, None)

    def __len__(self) -> int:
        return len(self._states)


def from_settings(value: Any, disconnect_after: Any) -> RateLimiter | None:
    """The limiter for the settings' values (None when no limit is set)."""
    rules = parse_setting(value)
    if not rules:
        return None
    return RateLimiter(rules, disconnect_after)
