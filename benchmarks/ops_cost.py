"""The CPU cost of the operations features per event, in process.

::

    .venv/bin/python benchmarks/ops_cost.py [--events 20000] [--reps 7]

An in-process client (``webpy_socketio.testing``) emits acknowledged
events through the whole server stack but the network (the fast path's
parser, the dispatcher, the handler, the ack), with the metrics off and on,
and with a rate limit that never refuses, off and on. It measures the CPU
time of this process (``time.process_time``), not the wall clock, and
interleaves the variants' repetitions, so a machine that others share
disturbs the ratios less than it disturbs a load test. Printed: microseconds
of CPU per event for each variant (median, fastest and slowest repetition)
and the ratios to the plain one. The load tests of ``run.sh`` (``webpy-metrics`` and
``webpy-limits`` beside ``webpy``) measure the same thing end to end.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import webpy_socketio  # noqa: E402
from webpy_socketio import engine, events, metrics, settings  # noqa: E402
from webpy_socketio.testing import SocketIOTestClient  # noqa: E402

VARIANTS = {
    "plain": {},
    "metrics": {"metrics": True},
    "rate limit": {"SOCKETIO_RATE_LIMIT": {"*": ["1000000/s", "1000MB/s"], "echo": "1000000/s"}},
    "both": {
        "metrics": True,
        "SOCKETIO_RATE_LIMIT": {"*": ["1000000/s", "1000MB/s"], "echo": "1000000/s"},
    },
}


def run(variant: dict, n: int) -> float:
    """CPU seconds per event for ``n`` acknowledged events."""
    settings.reset()
    engine.reset()
    webpy_socketio.configure(
        SOCKETIO_MESSAGE_LOG_FORMAT=None,
        SOCKETIO_RATE_LIMIT=variant.get("SOCKETIO_RATE_LIMIT"),
    )
    metrics.enabled = bool(variant.get("metrics"))
    client = SocketIOTestClient()
    payload = {"s": 0, "p": "x" * 128}
    for _ in range(200):  # warm up
        client.emit("echo", payload)
    start = time.process_time()
    for i in range(n):
        payload["s"] = i
        assert client.emit("echo", payload) is not None
    spent = time.process_time() - start
    client.disconnect()
    return spent / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()

    @events.on("echo")
    def echo(request, socket, context, data):  # noqa: ANN001, ANN202
        return data

    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.reps):
        for name, variant in VARIANTS.items():
            times[name].append(run(variant, args.events))
    plain = statistics.median(times["plain"])
    print(f"{args.events} events x {args.reps} repetitions, CPU time of this process")
    for name, values in times.items():
        median = statistics.median(values)
        spread = f"{min(values) * 1e6:.1f}-{max(values) * 1e6:.1f}"
        print(
            f"{name:<11} {median * 1e6:6.2f} us/event (range {spread})  ratio {median / plain:.3f}"
        )


if __name__ == "__main__":
    main()
