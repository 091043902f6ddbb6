"""Long-polling sessions that end badly: the server must answer and forget
them even when the client never polls again."""

from __future__ import annotations

import time

import pytest
from rawsio import Closed, PollSession
from relsupport import leftovers, path_server

pytestmark = [pytest.mark.reliability, pytest.mark.server]


@pytest.fixture(scope="module")
def rel_server(engine_path):
    """The fixture server on each engine path (raw clients run on both)."""
    yield from path_server("polling", engine_path)


@pytest.mark.parametrize(
    "body",
    [b"6", b"9junk", b'42["message","' + b"x" * 25_000 + b'"]'],
    ids=["noop-from-client", "unknown-packet", "oversized"],
)
def test_bad_post_without_a_pending_poll_is_answered_and_forgotten(rel_server, body):
    # A POST that ends the session (unknown packet type, a body over the size
    # limit) makes engine.io close the session and wait until a poll takes
    # the CLOSE packet. A client with no GET pending (not the official one,
    # which always has one) used to get no answer at all, and its session
    # and request greenlet stayed in the server for good. No later GET could
    # have helped: a closed session refuses them.
    session = PollSession(rel_server.host, rel_server.port, timeout=10)
    session.connect()
    start = time.monotonic()
    response = session.post(body)
    elapsed = time.monotonic() - start
    assert response.status == 400
    assert elapsed < 1.5, f"the POST was answered after {elapsed:.1f} s"
    session.close("fin")
    reading = rel_server.wait_idle(timeout=10)
    assert not leftovers(reading), leftovers(reading)


def test_pending_poll_gets_the_close_packet(rel_server):
    # with a GET waiting, as the official client always has one, the session
    # ends properly: the GET returns the CLOSE packet
    session = PollSession(rel_server.host, rel_server.port, timeout=10)
    session.connect()
    session.start_poll()
    time.sleep(0.2)  # the GET is waiting in the server
    assert session.post(b"6").status == 400
    with pytest.raises(Closed, match="CLOSE packet"):
        session.pump(lambda: False, 5)
    session.close("fin")
    reading = rel_server.wait_idle(timeout=10)
    assert not leftovers(reading), leftovers(reading)
