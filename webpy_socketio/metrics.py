"""Prometheus metrics (``SOCKETIO_METRICS``), in the text format of the
``prometheus_client`` library.

``SOCKETIO_METRICS = "/metrics"`` serves them on the app's own port (at that
path, before web.py sees the request); ``"127.0.0.1:9300"`` on a port of
their own. Under ``wsio serve --workers N`` every worker writes a snapshot of
its figures to a folder the supervisor gives it (``WSIO_METRICS_DIR``) once
a second, and whichever worker is scraped answers with the sum of all of
them: counters and histograms of workers that have stopped stay in the sums
(so they never go backwards), their gauges leave them.

The counting is plain integer arithmetic in the places that see the
traffic, read when a scrape comes (every ``prometheus_client`` object
update takes a lock; at a hundred thousand packets a second that would
cost more than the goal of 5 %).

Other parts of the package (the channel history, presence) count through
:func:`count` and :func:`declare`: a counter is a name, a help text and its
label names, declared once::

    metrics.declare("wsio_history_recoveries_total", "Recoveries by result.", ("result",))
    metrics.count("wsio_history_recoveries_total", "recovered")
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

logger = logging.getLogger("webpy_socketio")

#: Handler duration buckets, in seconds.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Seconds between two snapshots of a worker under ``wsio serve``.
SNAPSHOT_SECONDS = 1.0
#: Environment variable naming the snapshot folder (set by ``wsio serve``).
DIR_ENV = "WSIO_METRICS_DIR"

#: whether the per-event figures (handler durations) are kept
enabled = False

#: counter name -> (help, label names)
_declared: dict[str, tuple[str, tuple[str, ...]]] = {}
#: counter name -> label values -> count
_counts: dict[str, dict[tuple[str, ...], float]] = {}
#: event name -> [bucket counts..., count, sum]
_handler_seconds: dict[str, list[float]] = {}


def declare(name: str, help_text: str, labels: tuple[str, ...] = ()) -> None:
    """Declare a counter (idempotent)."""
    _declared.setdefault(name, (help_text, labels))
    _counts.setdefault(name, {})


def count(name: str, *labels: str, n: float = 1) -> None:
    """Add ``n`` to a declared counter, for these label values."""
    values = _counts[name]
    values[labels] = values.get(labels, 0) + n


declare("wsio_connects_total", "Sockets accepted, by namespace.", ("namespace",))
declare(
    "wsio_disconnects_total",
    "Sockets that ended, by namespace and reason.",
    ("namespace", "reason"),
)
declare("wsio_handler_errors_total", "Handlers that raised, by event.", ("event",))
declare("wsio_rate_limited_total", "Events refused by SOCKETIO_RATE_LIMIT, by event.", ("event",))
declare("wsio_loop_blocked_total", "Stretches in which code held the event loop.")
declare("wsio_loop_blocked_seconds_total", "Seconds the event loop was held, in those stretches.")
declare("wsio_queue_published_total", "Messages published to the message queue.")
declare("wsio_queue_received_total", "Messages received from the message queue.")
declare(
    "wsio_queue_heartbeats_total", "Heartbeats through the message queue, by outcome.", ("outcome",)
)
declare("wsio_queue_deaf_total", "Times the message queue subscription was found deaf or lost.")
declare("wsio_queue_resubscribes_total", "Times the message queue subscription was re-established.")
declare("wsio_history_appends_total", "Messages appended to a channel history.")
declare(
    "wsio_history_recoveries_total",
    "Subscribes with since, by result (recovered or the reason it could not).",
    ("result",),
)


def handler_ran(event: str, seconds: float) -> None:
    """The handlers of one event ran (dispatch.fire)."""
    row = _handler_seconds.get(event)
    if row is None:
        row = _handler_seconds[event] = [0.0] * (len(BUCKETS) + 3)
    row[bisect.bisect_left(BUCKETS, seconds)] += 1
    row[-2] += 1
    row[-1] += seconds


def loop_blocked(seconds: float) -> None:
    count("wsio_loop_blocked_total")
    count("wsio_loop_blocked_seconds_total", n=seconds)


# -- reading the figures ---------------------------------------------------------


def _gauges() -> dict[str, dict[tuple[str, ...], float]]:
    """The figures read from the process's state when asked."""
    from . import _engine as boundary
    from ._websocket.connection import BACKLOG
    from .engine import current_engine

    connections: dict[tuple[str, ...], float] = {}
    queue: dict[tuple[str, ...], float] = {}
    engine = current_engine()
    if engine is not None:
        for namespace, transport, n in boundary.connection_counts(engine):
            connections[(namespace, transport)] = n
        health = boundary.queue_health(engine)
        if health is not None:
            queue[()] = 1.0 if health["healthy"] else 0.0
    gauges: dict[str, dict[tuple[str, ...], float]] = {
        "wsio_connections": connections,
        "wsio_queued_bytes": {(): float(BACKLOG.total)},
        "wsio_queued_clients": {(): float(len(BACKLOG.holders))},
    }
    if queue:
        gauges["wsio_queue_healthy"] = queue
    return gauges


_GAUGE_HELP = {
    "wsio_connections": (
        "Sockets connected, by namespace and transport.",
        ("namespace", "transport"),
    ),
    "wsio_queued_bytes": ("Bytes queued in the process for clients that read slowly.", ()),
    "wsio_queued_clients": ("Clients that have bytes queued.", ()),
    "wsio_queue_healthy": ("1 while the message queue subscription answers its heartbeat.", ()),
    "wsio_queue_lag_seconds": ("Round trip of the last heartbeat through the message queue.", ()),
}


def snapshot() -> dict[str, Any]:
    """This process's figures, as plain data (what a worker writes)."""
    from ._websocket.connection import BACKLOG, TRAFFIC

    traffic = {
        ("in", "websocket"): (TRAFFIC.packets_in, TRAFFIC.bytes_in),
        ("out", "websocket"): (TRAFFIC.packets_out, TRAFFIC.bytes_out),
        ("in", "polling"): (TRAFFIC.poll_packets_in, TRAFFIC.poll_bytes_in),
        ("out", "polling"): (TRAFFIC.poll_packets_out, TRAFFIC.poll_bytes_out),
    }
    counters = {
        name: {"|".join(k): v for k, v in values.items()} for name, values in _counts.items()
    }
    counters["wsio_packets_total"] = {f"{d}|{t}": p for (d, t), (p, _) in traffic.items()}
    counters["wsio_bytes_total"] = {f"{d}|{t}": b for (d, t), (_, b) in traffic.items()}
    counters["wsio_slow_client_disconnects_total"] = {
        "client": BACKLOG.dropped,
        "total": BACKLOG.shed,
    }
    gauges = {
        name: {"|".join(k): v for k, v in values.items()} for name, values in _gauges().items()
    }
    lag = _queue_lag()
    if lag is not None:
        gauges["wsio_queue_lag_seconds"] = {"": lag}
    return {
        "pid": os.getpid(),
        "time": time.time(),
        "counters": counters,
        "gauges": gauges,
        "handler_seconds": {k: list(v) for k, v in _handler_seconds.items()},
    }


def _queue_lag() -> float | None:
    from . import _engine as boundary
    from .engine import current_engine

    engine = current_engine()
    health = boundary.queue_health(engine) if engine is not None else None
    return None if health is None else health.get("lag")


_COUNTER_LABELS = {
    "wsio_packets_total": (
        "Engine.IO packets, by direction and transport.",
        ("direction", "transport"),
    ),
    "wsio_bytes_total": (
        "Bytes of Engine.IO packets, by direction and transport.",
        ("direction", "transport"),
    ),
    "wsio_slow_client_disconnects_total": (
        "Clients disconnected for their queue (SOCKETIO_MAX_QUEUED_BYTES) or the "
        "process's (SOCKETIO_MAX_QUEUED_BYTES_TOTAL).",
        ("limit",),
    ),
}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_snapshots(folder: str) -> list[dict[str, Any]]:
    found = []
    for name in os.listdir(folder):
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                found.append(json.load(f))
        except (OSError, ValueError):
            continue  # being replaced right now: the next scrape has it
    return found


def write_snapshot(folder: str) -> None:
    """Write this worker's figures to ``folder`` (atomically)."""
    path = os.path.join(folder, f"{os.getpid()}.json")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(snapshot(), f)
    os.replace(tmp, path)


def _merged() -> dict[str, Any]:
    """This process's snapshot, or the sum of every worker's."""
    folder = os.environ.get(DIR_ENV)
    if not folder or not os.path.isdir(folder):
        return snapshot()
    write_snapshot(folder)
    total: dict[str, Any] = {"counters": {}, "gauges": {}, "handler_seconds": {}}
    for snap in _read_snapshots(folder):
        for name, values in snap.get("counters", {}).items():
            into = total["counters"].setdefault(name, {})
            for key, value in values.items():
                into[key] = into.get(key, 0) + value
        if _alive(int(snap.get("pid", 0))):
            for name, values in snap.get("gauges", {}).items():
                into = total["gauges"].setdefault(name, {})
                for key, value in values.items():
                    if name == "wsio_queue_lag_seconds":
                        into[key] = max(into.get(key, 0), value)
                    elif name == "wsio_queue_healthy":
                        into[key] = min(into.get(key, 1), value)
                    else:
                        into[key] = into.get(key, 0) + value
        for event, row in snap.get("handler_seconds", {}).items():
            into_row = total["handler_seconds"].setdefault(event, [0.0] * len(row))
            for i, value in enumerate(row):
                into_row[i] += value
    return total


class Collector:
    """A ``prometheus_client`` collector of this package's figures."""

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        data = _merged()
        for name, values in sorted(data["counters"].items()):
            help_text, labels = _declared.get(name) or _COUNTER_LABELS.get(name, ("", ()))
            counter = CounterMetricFamily(name.removesuffix("_total"), help_text, labels=labels)
            for key, value in sorted(values.items()):
                counter.add_metric(_split(key, labels), value)
            yield counter
        for name, values in sorted(data["gauges"].items()):
            help_text, labels = _GAUGE_HELP.get(name, ("", ()))
            gauge = GaugeMetricFamily(name, help_text, labels=labels)
            for key, value in sorted(values.items()):
                gauge.add_metric(_split(key, labels), value)
            yield gauge
        family = HistogramMetricFamily(
            "wsio_handler_seconds",
            "Time the handlers of one event took, by event.",
            labels=("event",),
        )
        for event, row in sorted(data["handler_seconds"].items()):
            cumulative, buckets = 0.0, []
            for bound, n in zip((*BUCKETS, float("inf")), row[: len(BUCKETS) + 1], strict=True):
                cumulative += n
                buckets.append((_bound(bound), cumulative))
            family.add_metric([event], buckets, row[-1])
        yield family


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(value)


def _split(key: str, labels: tuple[str, ...]) -> list[str]:
    if not labels:
        return []
    parts = key.split("|")
    return parts + [""] * (len(labels) - len(parts))


def exposition() -> tuple[bytes, str]:
    """The metrics text and its content type: this package's figures, plus
    whatever the application registered with ``prometheus_client``'s
    default registry (and its process figures)."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    return generate_latest(registry) + generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """The WSGI answer to a scrape."""
    try:
        body, content_type = exposition()
    except Exception:
        logger.exception("could not collect the metrics")
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        return [b"could not collect the metrics\n"]
    start_response(
        "200 OK",
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ],
    )
    return [body]


def check_setting(value: Any) -> None:
    """``SOCKETIO_METRICS``: None, a path such as "/metrics", or "host:port"."""
    from .exceptions import ImproperlyConfigured

    if value is None:
        return
    if isinstance(value, str) and value.startswith("/") and " " not in value and len(value) > 1:
        return
    if isinstance(value, str) and address(value) is not None:
        return
    raise ImproperlyConfigured(
        "SOCKETIO_METRICS must be None, a path on the app's port such as '/metrics', or an "
        f"address of its own such as '127.0.0.1:9300', not {value!r}."
    )


def address(value: str) -> tuple[str, int] | None:
    """``"host:port"`` as a pair (None when it is not one)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host.strip("[]"), int(port)


def start(setting: Any) -> Any:
    """Turn the metrics on for a starting server: per-event figures, the
    worker's snapshots, and a listener of their own for an address
    setting. Returns that listener (or None)."""
    global enabled
    if setting is None:
        return None
    import prometheus_client  # noqa: F401 - fail at start, not at the first scrape

    enabled = True
    folder = os.environ.get(DIR_ENV)
    if folder:
        import gevent

        def snapshots() -> None:
            while True:
                try:
                    write_snapshot(folder)
                except OSError as exc:
                    logger.warning("could not write the metrics snapshot to %s (%s)", folder, exc)
                gevent.sleep(SNAPSHOT_SECONDS)

        gevent.spawn(snapshots)
    if setting.startswith("/") or os.environ.get("WSIO_METRICS_LISTEN", "1") != "1":
        return None
    where = address(setting)
    assert where is not None
    from gevent import pywsgi

    listener = pywsgi.WSGIServer(where, serve, log=None)
    try:
        listener.start()
    except OSError as exc:
        # the app still serves; the metrics' port is another process's (the
        # worker being replaced by a reload, say)
        logger.warning("SOCKETIO_METRICS: cannot listen on %s (%s); no metrics here", setting, exc)
        return None
    return listener
