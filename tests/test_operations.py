"""Operations: the Prometheus metrics scraped from real servers (one process,
and wsio serve with two workers summed), and the message queue's health
(a heartbeat through Redis, /socket.io/health) through a killed and a
frozen subscription."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis_support import RedisServer
from support import (
    TESTS,
    AppServer,
    Process,
    free_port,
    output_dir,
    python_env,
    wait_port,
    wait_until,
)

pytestmark = [pytest.mark.server]

WSIO = str(Path(sys.executable).parent / "wsio")


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def scrape(url: str) -> dict[str, dict[tuple, float]]:
    """name -> {sorted label pairs: value}, parsed from the text format."""
    status, body = fetch(url)
    assert status == 200, body
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def total(samples, name: str) -> float:
    return sum(samples.get(name, {}).values())


@pytest.fixture(scope="module")
def server():
    app = AppServer("basic_app.py", "metrics", {"WSIO_SETTINGS_MODULE": "ops_settings"})
    yield app
    app.stop()


@pytest.mark.node
def test_metrics_count_what_clients_do(server, agent):
    before = scrape(server.url + "/metrics")
    agent.connect("ws", server.url + "/?name=ws", "websocket")
    agent.connect("poll", server.url + "/?name=poll", "polling")
    assert agent.call("subscribe", "ws", channel="room-1")["ok"]
    for _ in range(7):
        agent.call("emit", "ws", event="shout", args=["x"])  # 5 pass, 2 rate limited
    agent.call("send", "ws", data={"op": "raise"})
    agent.call("send", "poll", data="hello")
    after = scrape(server.url + "/metrics")

    assert value(after, "wsio_connections", namespace="/", transport="websocket") == 1
    assert value(after, "wsio_connections", namespace="/", transport="polling") == 1
    assert (
        value(after, "wsio_connects_total", namespace="/")
        - value(before, "wsio_connects_total", namespace="/")
        == 2
    )
    for direction in ("in", "out"):
        for transport in ("websocket", "polling"):
            labels = {"direction": direction, "transport": transport}
            assert value(after, "wsio_packets_total", **labels) > value(
                before, "wsio_packets_total", **labels
            ), labels
            assert value(after, "wsio_bytes_total", **labels) > 0
    assert value(after, "wsio_handler_seconds_count", event="shout") == 5
    assert value(after, "wsio_handler_seconds_bucket", event="shout", le="+Inf") == 5
    assert value(after, "wsio_handler_seconds_count", event="on_message") >= 2
    assert value(after, "wsio_handler_errors_total", event="on_message") >= 1
    assert value(after, "wsio_rate_limited_total", event="shout") == 2
    assert value(after, "wsio_queued_bytes") == 0
    assert "wsio_queue_healthy" not in after  # no queue configured

    agent.call("disconnect", "poll")
    done = wait_until(
        lambda: (
            value(
                scrape(server.url + "/metrics"),
                "wsio_disconnects_total",
                namespace="/",
                reason="client disconnect",
            )
            >= 1
        ),
        timeout=10,
    )
    assert done
    status, health = fetch(server.url + "/socket.io/health")
    assert status == 200 and json.loads(health) == {"status": "ok", "queue": None}


def test_the_metrics_setting_is_checked():
    from webpy_socketio import configure, settings
    from webpy_socketio.exceptions import ImproperlyConfigured

    try:
        for bad in ("metrics", 9300, "host:port", "/"):
            with pytest.raises(ImproperlyConfigured, match="'127.0.0.1:9300'"):
                configure(SOCKETIO_METRICS=bad)
        configure(SOCKETIO_METRICS="127.0.0.1:9300")
        configure(SOCKETIO_METRICS="/ops/metrics")
    finally:
        settings.reset()


@pytest.mark.node
def test_metrics_on_a_port_of_their_own(agent):
    port = free_port()
    app = AppServer(
        "basic_app.py",
        "metrics-port",
        {"WSIO_SETTINGS_MODULE": "ops_settings", "WSIO_TEST_METRICS": f"127.0.0.1:{port}"},
    )
    try:
        wait_port(port)
        agent.connect("a", app.url, "websocket")
        samples = scrape(f"http://127.0.0.1:{port}/")
        assert value(samples, "wsio_connections", namespace="/", transport="websocket") == 1
        assert fetch(app.url + "/metrics")[0] == 404  # not on the app's port
    finally:
        app.stop()


# -- several workers, one Redis --------------------------------------------------


@pytest.fixture(scope="module")
def redis():
    server = RedisServer("operations", debug=True)
    yield server
    server.stop()


@pytest.mark.redis
@pytest.mark.node
def test_two_workers_are_summed_by_either(redis, agent):
    from serve_support import consecutive_free_ports

    port = consecutive_free_ports(2)
    log = output_dir("serve") / f"metrics-workers-{port}.log"
    serve = Process(
        [WSIO, "serve", f"127.0.0.1:{port}", "--workers", "2", "--app", "serve_app:app"],
        log,
        cwd=TESTS / "apps",
        env=python_env(WSIO_SETTINGS_MODULE="ops_settings", WSIO_TEST_QUEUE=redis.url),
    )
    try:
        for p in (port, port + 1):
            wait_port(p, proc=serve.proc, timeout=60)
        agent.connect("a", f"http://127.0.0.1:{port}/?name=a", "websocket")
        agent.connect("b", f"http://127.0.0.1:{port + 1}/?name=b", "websocket")
        agent.connect("c", f"http://127.0.0.1:{port + 1}/?name=c", "polling")
        for p in (port, port + 1):
            # a worker's snapshot is at most a second old
            assert wait_until(
                lambda p=p: total(scrape(f"http://127.0.0.1:{p}/metrics"), "wsio_connections") == 3,
                timeout=10,
            ), serve.output()
        samples = scrape(f"http://127.0.0.1:{port}/metrics")
        assert value(samples, "wsio_connections", namespace="/", transport="polling") == 1
        assert value(samples, "wsio_connects_total", namespace="/") == 3
        assert value(samples, "wsio_queue_healthy") == 1
        assert wait_until(
            lambda: (
                value(
                    scrape(f"http://127.0.0.1:{port}/metrics"),
                    "wsio_queue_heartbeats_total",
                    outcome="received",
                )
                >= 4
            ),
            timeout=10,
        )
    finally:
        serve.stop(timeout=20)


# -- the message queue's health ----------------------------------------------------


@pytest.fixture(scope="module")
def queue_server(redis):
    app = AppServer(
        "basic_app.py",
        "queue-health",
        {"WSIO_SETTINGS_MODULE": "ops_settings", "WSIO_TEST_QUEUE": redis.url},
    )
    yield app
    app.stop()


def health(server) -> tuple[int, dict]:
    status, body = fetch(server.url + "/socket.io/health")
    return status, json.loads(body)


@pytest.mark.redis
def test_health_is_ok_with_a_listening_queue(queue_server):
    assert wait_until(lambda: health(queue_server)[1]["queue"]["lag"] is not None, timeout=10)
    status, body = health(queue_server)
    assert status == 200
    assert body["status"] == "ok" and body["queue"]["healthy"] is True
    assert body["queue"]["lag"] is not None and body["queue"]["heartbeat_age"] < 5


@pytest.mark.redis
def test_a_killed_subscription_is_seen_and_repaired(redis, queue_server):
    assert wait_until(lambda: health(queue_server)[0] == 200, timeout=10)
    assert redis.command("CLIENT", "KILL", "TYPE", "pubsub") >= 1
    # the listener's read fails at once and it subscribes again (redis-py's
    # own retry does it): heartbeats come back through the new subscription
    before = scrape(queue_server.url + "/metrics")
    received = value(before, "wsio_queue_heartbeats_total", outcome="received")
    assert wait_until(
        lambda: (
            value(
                scrape(queue_server.url + "/metrics"),
                "wsio_queue_heartbeats_total",
                outcome="received",
            )
            > received
        ),
        timeout=10,
    )


@pytest.mark.redis
def test_a_frozen_redis_makes_the_subscription_deaf_then_it_recovers(redis, queue_server):
    # DEBUG SLEEP: Redis answers nothing for 4 s, but no connection drops, so
    # only the heartbeat can tell; found within 3 beats (0.9 s), reported by
    # the health endpoint, subscribed again once Redis answers
    assert wait_until(lambda: health(queue_server)[0] == 200, timeout=10)
    seen = len(queue_server.output())
    deaf = scrape(queue_server.url + "/metrics")
    import threading

    sleeper = threading.Thread(target=redis.command, args=("DEBUG", "SLEEP", "4"))
    sleeper.start()
    try:
        found = wait_until(lambda: health(queue_server)[0] == 503, timeout=3.5, interval=0.1)
        status, body = health(queue_server)
    finally:
        sleeper.join(30)
    assert found, queue_server.output()[seen:]
    assert "deaf" in body["reason"] or "unreachable" in body["reason"], body
    assert wait_until(lambda: health(queue_server)[0] == 200, timeout=20), queue_server.output()[
        seen:
    ]
    text = queue_server.output()[seen:]
    assert "is deaf: no heartbeat came back" in text, text
    assert "hears again after" in text, text
    after = scrape(queue_server.url + "/metrics")
    assert value(after, "wsio_queue_deaf_total") > value(deaf, "wsio_queue_deaf_total")
    assert value(after, "wsio_queue_resubscribes_total") >= 1
    assert value(after, "wsio_queue_healthy") == 1


@pytest.mark.node
def test_accepted_connections_get_the_send_buffer_setting(server, agent):
    # SOCKETIO_SEND_BUFFER_BYTES (256 KB by default): the kernel reports
    # twice the asked size (its bookkeeping) as the socket's send buffer,
    # "tb" in ss's memory line; the kernel's own default grows to megabytes
    import shutil
    import subprocess

    ss = shutil.which("ss")
    if ss is None:
        pytest.skip("ss (iproute2) is not installed")
    agent.connect("buffered", server.url, "websocket")
    port = server.port
    out = subprocess.run(
        [ss, "-tmnH", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout
    sizes = [
        int(part[2:])
        for part in out.replace(",", " ").replace("(", " ").split()
        if part.startswith("tb")
    ]
    assert sizes and all(size == 2 * 256 * 1024 for size in sizes), out
    agent.call("disconnect", "buffered")
