"""Round-trip latency of each transport on a kept-alive connection: a
message and its acknowledgement must not wait for TCP timers."""

from __future__ import annotations

import statistics
import time

import pytest
from rawsio import PollSession, WsSession
from relsupport import path_server, save

pytestmark = [pytest.mark.reliability, pytest.mark.server]


@pytest.fixture(scope="module")
def rel_server(engine_path):
    """The fixture server on each engine path (raw clients run on both)."""
    yield from path_server("transport", engine_path)


ROUNDS = 200


def _round_trips(session, rounds: int) -> list[float]:
    session.connect()
    times = []
    for n in range(rounds):
        start = time.perf_counter()
        assert session.call("message", {"op": "probe", "n": n}) == [{"probe": n}]
        times.append(time.perf_counter() - start)
    session.close()
    return times


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_round_trip_is_not_held_by_delayed_acks(rel_server, transport):
    # Over long-polling every acknowledged message is a POST and a GET on
    # one kept-alive connection. pywsgi writes headers and body separately;
    # before the server set TCP_NODELAY, Nagle's algorithm held each body
    # until the client's delayed ACK (40 ms), so the median was about 90 ms.
    session_class = WsSession if transport == "websocket" else PollSession
    times = _round_trips(session_class(rel_server.host, rel_server.port), ROUNDS)
    median_ms = statistics.median(times) * 1000
    save(f"latency-{transport}", {"rounds": ROUNDS, "median_ms": median_ms})
    assert median_ms < 20, f"median round trip {median_ms:.1f} ms over {transport}"
