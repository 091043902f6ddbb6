"""Bounded memory with slow readers: 200 clients, each reading what reached it
once a second, and a healthy subscriber, in a channel that gets 8 KB
messages as fast as the sender's acks return (12 MB per subscriber in all).
The process stays under 200 MB and the healthy subscriber gets every message,
in order. (The queues' accounting itself, shared frames and no private
copies, is tested over socket pairs in tests/test_websocket_connection.py;
the issue's own scenario, readers that read 50 ms every 6 s, is the
benchmarks' trickle run.)"""

from __future__ import annotations

import socket
import threading
import time
import urllib.request

import pytest
from rawsio import WsSession
from relsupport import RelServer, path_server, save
from support import wait_until

pytestmark = [pytest.mark.reliability, pytest.mark.server]

SLOW = 200
MESSAGES = 1500
SIZE = 8000  # bytes per message: 12 MB per subscriber in all


@pytest.fixture(scope="module")
def rel_server(engine_path):
    yield from path_server("memory", engine_path)


def trickle(sessions: list[WsSession], stop: threading.Event) -> None:
    """Each slow client, in turn, reads everything that has reached it, then
    nothing until its next turn, a second later: it keeps up on average, a
    second behind (the issue's readers read for 50 ms every 6 s)."""
    pause = 1.0 / len(sessions)
    while not stop.is_set():
        for session in sessions:
            sock = session.stream.sock
            for _ in range(256):  # at most 16 MB a turn
                try:
                    if not sock.recv(65536, socket.MSG_DONTWAIT):
                        break
                except OSError:
                    break
            if stop.wait(pause):
                return


def test_slow_readers_cannot_take_the_memory(rel_server):
    sender, healthy = (
        WsSession(rel_server.host, rel_server.port),
        WsSession(rel_server.host, rel_server.port),
    )
    for session in (sender, healthy):
        session.connect()
    assert healthy.call("wsio:subscribe", "flood") == [{"ok": True}]
    slow = []
    for _ in range(SLOW):
        session = WsSession(rel_server.host, rel_server.port)
        session.connect()
        assert session.call("wsio:subscribe", "flood") == [{"ok": True}]
        slow.append(session)
    base = rel_server.rss_kb()
    stop = threading.Event()
    reader = threading.Thread(target=trickle, args=(slow, stop), daemon=True)
    reader.start()
    peak = base
    received: list[int] = []
    payload = "m" * SIZE
    try:
        deadline = time.monotonic() + 120
        for n in range(MESSAGES):
            message = {"op": "broadcast", "channel": "flood", "data": [n, payload], "n": n}
            assert sender.call("message", message, timeout=30) == [{"broadcast": n}]
            # the healthy subscriber reads what arrived
            healthy.pump(lambda n=n: len(healthy.inbox.events) > n, timeout=30)
            if n % 50 == 0:
                peak = max(peak, rel_server.rss_kb())
            assert time.monotonic() < deadline
        peak = max(peak, rel_server.rss_kb())
        received = [e[1][0] for e in healthy.inbox.events if e[0] == "message"]
    finally:
        stop.set()
        reader.join(5)
    cut = 0
    for session in slow:
        try:
            session.stream.sock.setblocking(False)
            while session.stream.sock.recv(1 << 20):
                pass
        except BlockingIOError:
            pass  # still connected, data or not
        except OSError:
            cut += 1
        else:
            cut += 1  # the server closed it (recv returned b"")
        session.stream.close()
    save(
        "slow-readers-memory",
        {"rss_base_mb": base / 1024, "rss_peak_mb": peak / 1024, "slow_cut": cut},
    )
    assert received == list(range(MESSAGES))  # every message, in order
    assert peak < 200 * 1024, f"peak {peak / 1024:.0f} MB (base {base / 1024:.0f} MB)"
    sender.close()
    healthy.close()


@pytest.mark.parametrize("limit", ["client", "total"])
def test_the_queue_limits_cut_readers_that_stopped(limit):
    # SOCKETIO_MAX_QUEUED_BYTES (a client 1 MB behind) and
    # SOCKETIO_MAX_QUEUED_BYTES_TOTAL (1 MB for all): five clients that stopped
    # reading are cut, with a log line and a metric, while a reading one
    # gets every message
    server = RelServer(f"memory-{limit}", "rel_tight_settings", env={"WSIO_TEST_LIMIT": limit})
    try:
        sender = WsSession(server.host, server.port)
        healthy = WsSession(server.host, server.port)
        stopped = [WsSession(server.host, server.port) for _ in range(5)]
        for session in (sender, healthy, *stopped):
            session.connect()
        for session in (healthy, *stopped):
            assert session.call("wsio:subscribe", "flood") == [{"ok": True}]
        payload = "s" * 8000
        for n in range(400):  # 3.2 MB to each subscriber
            message = {"op": "broadcast", "channel": "flood", "data": [n, payload], "n": n}
            assert sender.call("message", message, timeout=30) == [{"broadcast": n}]
            healthy.pump(lambda n=n: len(healthy.inbox.events) > n, timeout=30)
        assert [e[1][0] for e in healthy.inbox.events] == list(range(400))
        assert wait_until(lambda: server.registry()["clients"] == 2, timeout=20), server.registry()
        text = server.output()
        if limit == "client":
            assert text.count("behind (SOCKETIO_MAX_QUEUED_BYTES)") == 5, text
        else:
            assert "reached SOCKETIO_MAX_QUEUED_BYTES_TOTAL (1 MB)" in text, text
        with urllib.request.urlopen(server.url + "/metrics", timeout=10) as response:
            metrics = response.read().decode()
        assert f'wsio_slow_client_disconnects_total{{limit="{limit}"}} 5.0' in metrics, metrics
        for session in (sender, healthy, *stopped):
            session.close("reset")
    finally:
        server.stop()
