"""A warning for every stretch in which code held the event loop.

All connections of a server process share one gevent event loop. Code that
keeps running without giving the loop a turn (a long computation, a C
extension's network call, ``time.sleep`` from before the monkey patching)
stops every other connection until it returns, and nothing says so.

Two parts watch for it:

- in the loop, a timer ticks every :data:`TICK_SECONDS`; a tick that comes
  later than the threshold after the previous one measured a stretch in
  which the loop was held, and logs it, with its length (to within one
  tick), in the ``webpy_socketio`` log;
- a thread reads the loop's iteration counter as often; once it has not
  moved for the threshold, the thread takes the stack of the code that
  runs, and samples whether the loop's thread is running or asleep in the
  kernel until the loop moves again. The tick's warning shows that stack and
  says what the code was doing::

    The event loop was blocked for 1.52 s (every other connection waited):
    the code below was waiting in one call that does not yield to gevent ...
      File "events.py", line 12, in on_message
        requests_without_gevent.get(url)

"computing" when the thread was running (or waiting for a core) in most
samples, "waiting in one call" when it slept in the kernel (a blocking call).
Every stretch over the threshold gets its own warning. (gevent's own monitor,
used before, compared the loop's state once per threshold period: it missed
most stretches shorter than two periods and reported the others in whole
periods, and it could not tell computing from waiting.)
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from typing import Any

logger = logging.getLogger("webpy_socketio")

#: The loop's tick and the thread's sampling period, in seconds: a
#: stretch's length is known to within this.
TICK_SECONDS = 0.02

_threshold: float | None = None
_started = False
_last_tick = 0.0
#: what the thread saw of the stretch going on (None: nothing yet)
_capture: dict[str, Any] | None = None
#: stretches reported, for the metrics and the tests
reported = 0


def watch(seconds: float | None) -> bool:
    """Warn whenever the event loop is held for more than ``seconds`` (None
    turns the watch off). Called by
    :class:`~webpy_socketio.server.SocketIOServer`, in the loop's thread;
    calling it again changes the threshold. Returns whether the watch runs."""
    global _threshold, _started, _last_tick
    _threshold = seconds or None
    if _threshold is None:
        return False
    if not _started:
        import gevent
        from gevent import monkey

        hub = gevent.get_hub()
        _last_tick = time.monotonic()
        ticker = hub.loop.timer(TICK_SECONDS, TICK_SECONDS, ref=False)
        ticker.start(_tick)
        native = monkey.get_original("_thread", "get_native_id")()
        ident = hub.thread_ident or monkey.get_original("_thread", "get_ident")()
        start_thread = monkey.get_original("_thread", "start_new_thread")
        start_thread(_watch, (hub.loop, ident, native))
        _started = True
    return True


def _tick() -> None:
    """In the loop, every tick: a late one ends a stretch to report."""
    global _last_tick, _capture
    now = time.monotonic()
    gap = now - _last_tick
    _last_tick = now
    threshold = _threshold
    if threshold is None or gap < threshold + TICK_SECONDS:
        return
    capture, _capture = _capture, None
    if capture is not None and capture.get("cpu") is not None:
        # CPU the loop's thread (this one) got while the thread watched
        wall = now - capture["since"]
        if wall > 0:
            capture["cpu_share"] = (time.thread_time() - capture["cpu"]) / wall
    _report(gap - TICK_SECONDS / 2, capture)


def _thread_state(native: int) -> str:
    """The kernel's state letter of a thread of this process ("R" running or
    waiting for a core, "S" asleep in a call, ...; "?" when unknown)."""
    try:
        with open(f"/proc/self/task/{native}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3].decode()
    except (OSError, ValueError):
        return "?"


def _watch(loop: Any, ident: int, native: int) -> None:
    """The watch thread: it never touches the loop's state, it only reads
    the iteration counter and the stack and state of the loop's thread."""
    global _capture
    from gevent import monkey

    sleep = monkey.get_original("time", "sleep")
    try:
        clock: int | None = time.pthread_getcpuclockid(ident)
    except (AttributeError, OSError):
        clock = None
    last_iteration = loop.iteration
    moved_at = time.monotonic()
    capture: dict[str, Any] | None = None
    while True:
        sleep(TICK_SECONDS)
        try:
            iteration = loop.iteration
        except Exception:  # the loop was destroyed: nothing left to watch
            return
        now = time.monotonic()
        if iteration != last_iteration:
            last_iteration, moved_at, capture = iteration, now, None
            continue
        threshold = _threshold
        if threshold is None or now - moved_at < threshold * 0.8:
            continue
        if capture is None:
            frame = sys._current_frames().get(ident)
            if frame is None:
                continue
            stack = "".join(traceback.format_stack(frame, limit=15)).rstrip("\n")
            del frame
            capture = {
                "stack": stack,
                "running": 0,
                "asleep": 0,
                "since": now,
                "cpu": time.clock_gettime(clock) if clock is not None else None,
            }
            _capture = capture
        state = _thread_state(native)
        if state == "R":
            capture["running"] += 1
        elif state in ("S", "D"):
            capture["asleep"] += 1


def _doing(capture: dict[str, Any] | None) -> str:
    if capture is None:
        return "the code that held it was not sampled in time"
    if capture["running"] > capture["asleep"]:
        share = capture.get("cpu_share")
        if share is not None and share < 0.5:
            # runnable, but the kernel mostly ran other processes: the code
            # computed, and the machine made it take longer
            return (
                "the code below was computing, and the process got only "
                f"{share:.0%} of a CPU meanwhile (other processes are using the machine)"
            )
        return "the code below was computing all that time (a long loop or a CPU-bound calculation)"
    if capture["asleep"]:
        return (
            "the code below was waiting in one call that does not yield to gevent (a "
            "blocking library call, a C extension's network call, time.sleep from before "
            "the monkey patching)"
        )
    return "the code below held it"


def _report(seconds: float, capture: dict[str, Any] | None) -> None:
    global reported
    reported += 1
    logger.warning(
        "The event loop was blocked for %.2f s (every other connection waited): %s. "
        "Make it cooperative, or run the handler in a thread with "
        "@on(..., threaded=True). It was blocked in:\n%s",
        seconds,
        _doing(capture),
        capture["stack"] if capture else "  (no stack)",
    )
    try:
        from . import metrics

        metrics.loop_blocked(seconds)
    except Exception:  # the metrics never stop a warning
        pass
