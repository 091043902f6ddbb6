"""Channel history across processes on a real redis-server: one numbering
for every process, a lost publish filled from the stream, Redis restarted
without its data, a worker killed behind nginx while messages flow."""

from __future__ import annotations

import contextlib
import json
import subprocess
import urllib.request
from collections.abc import Iterator

import pytest
from redis_support import RedisServer
from support import AppServer, wait_until
from tcpproxy import Proxy
from test_history_servers import assert_all_once_in_order, cut_until_disconnected, numbers

pytestmark = [pytest.mark.redis, pytest.mark.server, pytest.mark.node]


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def redis_cli(redis: RedisServer, *args: str) -> str:
    result = subprocess.run(
        ["redis-cli", "-p", str(redis.port), *args], capture_output=True, text=True, timeout=10
    )
    return result.stdout


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    server = RedisServer("history")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pair(redis) -> Iterator[list[AppServer]]:
    env = {"WSIO_SETTINGS_MODULE": "history_settings", "WSIO_TEST_QUEUE": redis.url}
    with contextlib.ExitStack() as cleanup:
        servers = []
        for tag in ("A", "B"):
            servers.append(AppServer("history_app.py", f"history-redis-{tag}", env))
            cleanup.callback(servers[-1].stop)
        yield servers


def test_one_numbering_for_every_process(pair, agent):
    a, b = pair
    agent.connect("on-a", a.url, "websocket")
    agent.connect("on-b", b.url, "polling")
    first = agent.call("subscribe", "on-a", channel="room-one")
    assert agent.call("subscribe", "on-b", channel="room-one")["epoch"] == first["epoch"]
    for n in range(60):  # out of band, from both processes in turn
        get(f"{(a if n % 2 else b).url}/oob/room-one?n={n}")
    assert_all_once_in_order(agent, "on-a", 60)
    assert_all_once_in_order(agent, "on-b", 60)
    page = json.loads(get(f"{a.url}/history/room-one?limit=60"))
    assert page["epoch"] == first["epoch"]
    assert [m["offset"] for m in page["messages"]] == list(
        range(first["offset"] + 1, first["offset"] + 61)
    )
    assert [m["data"]["n"] for m in page["messages"]] == list(range(60))


def test_a_lost_publish_is_filled_from_the_stream(redis, pair, agent):
    a, b = pair
    agent.connect("rx", b.url, "websocket")
    assert agent.call("subscribe", "rx", channel="room-lost")["ok"]
    get(f"{a.url}/oob/room-lost?n=0")
    agent.wait_for("rx", lambda m: m == {"n": 0})
    # the subscriber connections of both processes are killed: what A
    # publishes meanwhile never reaches B by pub/sub
    killed = redis_cli(redis, "CLIENT", "KILL", "TYPE", "pubsub")
    assert int(killed.strip() or 0) >= 2, killed
    for n in range(1, 40):
        get(f"{a.url}/oob/room-lost?n={n}")
    assert_all_once_in_order(agent, "rx", 40)


def test_redis_restarted_without_its_data(redis, pair, agent):
    a, b = pair
    with contextlib.closing(Proxy(b.port)) as proxy:
        agent.connect(
            "rx",
            proxy.url,
            "websocket",
            reconnection=True,
            reconnectionDelay=200,
            randomizationFactor=0,
        )
        old = agent.call("subscribe", "rx", channel="room-restart")
        for n in range(5):
            get(f"{a.url}/oob/room-restart?n={n}")
        assert_all_once_in_order(agent, "rx", 5)
        redis.kill()
        redis.start()  # empty: no persistence

        tries = iter(range(100, 200))

        def back() -> bool:
            # the listeners are back once a message crosses from A to B
            with contextlib.suppress(Exception):
                get(f"{a.url}/oob/room-restart?n={next(tries)}")
            return any(m.get("n", 0) >= 100 for m in agent.received("rx"))

        assert wait_until(back, timeout=20, interval=0.5)
        # the first message of the new epoch tells the page at once
        failed = agent.wait_for("rx", lambda v: True, event="wsio:recovery-failed", timeout=15)
        assert failed == ["room-restart", "epoch changed"]
        # and a reconnect from there on recovers in the new epoch
        cut_until_disconnected(proxy, agent, "rx", outage=0.3)
        agent.wait_for("rx", lambda v: True, event="reconnect", timeout=10)
        get(f"{a.url}/oob/room-restart?n=200")
        agent.wait_for("rx", lambda m: m == {"n": 200})
        got = numbers(agent, "rx")
        assert got[:5] == [0, 1, 2, 3, 4] and got[-1] == 200
        assert len(got) == len(set(got)), got  # nothing twice
        new = json.loads(get(f"{a.url}/history/room-restart?limit=1"))
        assert new["epoch"] != old["epoch"]
        failures = [e for e in agent.events if e["event"] == "wsio:recovery-failed"]
        assert len(failures) == 1, failures
