"""Channel history with real servers and the official client: nothing lost
across a cut network, a killed worker, a reload, a Redis restart or a lost
publish. tests/test_history.py covers the rules in process."""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import Iterator

import pytest
from support import AppServer, wait_until
from tcpproxy import Proxy

pytestmark = [pytest.mark.server, pytest.mark.node]

HISTORY_ENV = {"WSIO_SETTINGS_MODULE": "history_settings"}


def get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def numbers(agent, client: str) -> list[int]:
    return [m["n"] for m in agent.received(client) if isinstance(m, dict) and "n" in m]


def assert_all_once_in_order(agent, client: str, count: int, timeout: float = 20.0) -> None:
    def complete() -> bool:
        return len(numbers(agent, client)) >= count

    assert wait_until(complete, timeout=timeout, interval=0.1), numbers(agent, client)[-20:]
    assert numbers(agent, client) == list(range(count))


def cut_until_disconnected(proxy: Proxy, agent, client: str, outage: float) -> None:
    """Cut the client's network until it notices (a long-polling client has
    moments with no request open, where a cut hits nothing)."""
    for _ in range(5):
        proxy.cut(outage=outage)
        try:
            agent.wait_for(client, lambda v: True, event="disconnect", timeout=max(1.5, outage + 1))
            return
        except AssertionError:
            continue
    raise AssertionError(f"{client} never noticed five cuts of its network")


@pytest.fixture(scope="module")
def server(engine_path) -> Iterator[AppServer]:
    app = AppServer(
        "history_app.py", f"history-{engine_path}", {**HISTORY_ENV, "WSIO_TEST_PATH": engine_path}
    )
    yield app
    app.stop()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_a_cut_network_loses_nothing(server, agent, transport):
    # the receiver's connection is reset (no close frame) while 200
    # messages go to its channel, and stays down for a moment; it comes back
    # with every message, once, in order
    with contextlib.closing(Proxy(server.port)) as proxy:
        agent.connect(
            "rx",
            proxy.url,
            transport,
            reconnection=True,
            reconnectionDelay=100,
            reconnectionDelayMax=200,
            randomizationFactor=0,
        )
        ack = agent.call("subscribe", "rx", channel="room-cut")
        assert ack["ok"] and "epoch" in ack
        for n in range(200):
            if n == 60:
                # down for a moment: messages 60 to 199 go out while it is away
                proxy.cut(outage=0.5)
            if n == 61:
                cut_until_disconnected(proxy, agent, "rx", outage=0.5)
            get(f"{server.url}/oob/room-cut?n={n}")
        assert_all_once_in_order(agent, "rx", 200)
        agent.wait_for("rx", lambda v: True, event="reconnect", timeout=10)
        assert [e for e in agent.events if e["event"] == "wsio:recovery-failed"] == []


def test_the_page_renders_the_history_then_subscribes_since_it(server, agent):
    for n in range(5):
        get(f"{server.url}/oob/room-page?n={n}")
    page = json.loads(get(f"{server.url}/history/room-page?limit=3"))
    assert [m["data"]["n"] for m in page["messages"]] == [2, 3, 4]
    get(f"{server.url}/oob/room-page?n=5")  # between the render and the subscribe
    agent.connect("late", server.url, "websocket")
    since = {"epoch": page["epoch"], "offset": page["offset"]}
    reply = agent.call("subscribe", "late", channel="room-page", options={"since": since})
    assert reply["recovered"] is True and reply["offset"] == 6
    agent.wait_for("late", lambda m: m == {"n": 5})
    assert numbers(agent, "late") == [5]


def test_a_gap_larger_than_the_history_fires_recovery_failed(server, agent):
    with contextlib.closing(Proxy(server.port)) as proxy:
        agent.connect(
            "rx",
            proxy.url,
            "websocket",
            reconnection=True,
            reconnectionDelay=300,
            randomizationFactor=0,
        )
        assert agent.call("subscribe", "rx", channel="small-gap")["ok"]
        get(f"{server.url}/oob/small-gap?n=0")
        agent.wait_for("rx", lambda m: m == {"n": 0})
        cut_until_disconnected(proxy, agent, "rx", outage=1.0)
        for n in range(1, 31):  # the channel keeps 10
            get(f"{server.url}/oob/small-gap?n={n}")
        failed = agent.wait_for("rx", lambda v: True, event="wsio:recovery-failed", timeout=15)
        assert failed == ["small-gap", "gap larger than the history"]
        get(f"{server.url}/oob/small-gap?n=31")
        agent.wait_for("rx", lambda m: m == {"n": 31})
        assert numbers(agent, "rx") == [0, 31]  # nothing replayed, nothing twice
