"""A warning when code blocks the event loop.

All connections of a server process share one gevent event loop. A handler
that makes a call gevent cannot switch away from (a C extension's network
call, a library's own socket code, ``time.sleep`` from before the monkey
patching, a long computation) stops every other connection until it
returns, and nothing says so. gevent's monitor thread notices when the loop
has not switched for ``SOCKETIO_BLOCKING_WARNING_SECONDS``; this module
turns what it finds into one warning per blocked stretch, in the
``webpy_socketio`` log, with the stack of the code that blocked::

    The event loop was blocked for at least 1.0 s (every other connection
    waited): a handler made a call that does not yield to gevent. ...
      File "events.py", line 12, in on_message
        requests_without_gevent.get(url)

The monitor thread only reads the loop's state. The warning is written by
the loop itself once it runs again, so logging needs no lock shared with a
foreign thread.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

logger = logging.getLogger("webpy_socketio")

_subscribed = False
#: the stretch being reported, touched by the monitor thread only
_current: dict[str, Any] | None = None


def watch(seconds: float | None) -> bool:
    """Warn whenever the event loop is blocked for more than ``seconds``
    (None turns the watch off). Called by
    :class:`~webpy_socketio.server.SocketIOServer`; the threshold can be
    changed again later, the watch cannot be stopped. Returns whether the
    watch runs."""
    global _subscribed
    if not seconds:
        return False
    import gevent
    from gevent import config, events

    config.max_blocking_time = seconds
    # gevent's own report is a page of thread and greenlet dumps
    config.print_blocking_reports = False
    config.monitor_thread = True
    if not _subscribed:
        events.subscribers.append(_on_event)
        _subscribed = True
    with warnings.catch_warnings():
        # "install psutil" to also watch memory: not what this is for
        warnings.filterwarnings("ignore", message="Unable to monitor memory usage")
        gevent.get_hub().start_periodic_monitoring_thread()
    return True


def _on_event(event: Any) -> None:
    """In the monitor thread: note the stretch; the first time, ask the
    loop to report it once it runs again."""
    global _current
    from gevent.events import EventLoopBlocked

    if not isinstance(event, EventLoopBlocked):
        return
    current = _current
    # an id, not the greenlet: a reference here would keep it (and its
    # frames) alive after it finished
    if current is not None and not current["over"] and current["greenlet"] == id(event.greenlet):
        current["periods"] += 1  # the same stretch, still going on
        return
    report = {
        "greenlet": id(event.greenlet),
        "threshold": event.blocking_time,
        "periods": 1,
        "stack": _blocked_stack(event.info),
        "over": False,
    }
    _current = report
    event.hub.loop.run_callback_threadsafe(_report, report)


def _blocked_stack(info: list[str]) -> str:
    """The stack of the blocked code, from gevent's report."""
    lines: list[str] = []
    taking = False
    for item in info:
        if item.startswith("Blocked Stack"):
            taking = True
        elif taking:
            if item.startswith("Info:"):
                break
            lines.append(item.rstrip("\n"))
    return "\n".join(lines) or "  (no stack)"


def _report(report: dict[str, Any]) -> None:
    """In the event loop, once it runs again."""
    report["over"] = True
    seconds = report["periods"] * report["threshold"]
    logger.warning(
        "The event loop was blocked for at least %.1f s (every other connection waited): "
        "a handler made a call that does not yield to gevent. Make it cooperative, or run "
        "it in gevent's thread pool (gevent.get_hub().threadpool.apply(...)). It was "
        "blocked in:\n%s",
        seconds,
        report["stack"],
    )
