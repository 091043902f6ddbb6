"""Rate limits (SOCKETIO_RATE_LIMIT): the rules, the buckets, the refused
events' answers, on_rate_limited and the disconnect, in process and with the
official client on both engine paths."""

from __future__ import annotations

import time

import pytest
from support import AppServer, wait_until

import webpy_socketio
from webpy_socketio import engine, events, settings
from webpy_socketio.exceptions import ImproperlyConfigured
from webpy_socketio.ratelimit import (
    ALLOWED,
    DISCONNECT,
    LIMITED,
    RateLimiter,
    parse_rule,
    parse_setting,
)
from webpy_socketio.testing import SocketIOTestClient

LIMITED_REPLY = {"ok": False, "error": "rate limited"}


# -- the rules -------------------------------------------------------------------


def test_rules_read_events_and_bytes_per_period_with_a_burst():
    rule = parse_rule("50/s burst 100")
    assert (rule.rate, rule.burst, rule.in_bytes) == (50, 100, False)
    assert parse_rule("10/s").burst == 10  # one period's worth by default
    rule = parse_rule("64KB/s burst 256KB")
    assert (rule.rate, rule.burst, rule.in_bytes) == (65536, 262144, True)
    assert parse_rule("120/m").rate == 2


@pytest.mark.parametrize(
    "value, message",
    [
        ("lots", "is not a rate; write it as '50/s burst 100'"),
        ("10/fortnight", "unknown period 'fortnight'"),
        ("10GB/s", "unknown unit 'GB'"),
        ("10/s burst 5KB", "must be counted like its rate"),
        ("0/s", "allows nothing"),
        (10, "a rule is a string"),
    ],
)
def test_a_bad_rule_says_what_is_wrong(value, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        parse_rule(value)


def test_the_setting_is_checked_when_configured():
    try:
        with pytest.raises(ImproperlyConfigured, match="dict from event names"):
            webpy_socketio.configure(SOCKETIO_RATE_LIMIT="10/s")
        with pytest.raises(ImproperlyConfigured, match=r"SOCKETIO_RATE_LIMIT\['message'\]"):
            webpy_socketio.configure(SOCKETIO_RATE_LIMIT={"message": "ten a second"})
        with pytest.raises(ImproperlyConfigured, match="or None to never disconnect"):
            webpy_socketio.configure(SOCKETIO_RATE_LIMIT_DISCONNECT_SECONDS=0)
        assert settings.get("SOCKETIO_RATE_LIMIT") is None  # off by default
    finally:
        settings.reset()


def test_buckets_refill_at_their_rate_and_every_rule_must_pass():
    limiter = RateLimiter(parse_setting({"*": "10/s burst 3", "message": "1/s"}), None)
    now = 1000.0
    assert limiter.check("a", "message", 10, now) == ALLOWED
    assert limiter.check("a", "message", 10, now) == LIMITED  # its own bucket is empty
    assert [limiter.check("a", "other", 10, now) for _ in range(3)] == [ALLOWED, ALLOWED, LIMITED]
    assert limiter.check("b", "other", 10, now) == ALLOWED  # per socket
    assert limiter.check("a", "other", 10, now + 0.1) == ALLOWED  # one token back
    assert limiter.check("a", "message", 10, now + 1.0) == ALLOWED
    limiter.forget("a")
    assert len(limiter) == 1


def test_byte_rules_count_the_packet_size():
    limiter = RateLimiter(parse_setting({"*": "1KB/s burst 2KB"}), None)
    assert limiter.check("a", "x", 1500, 0.0) == ALLOWED
    assert limiter.check("a", "x", 1000, 0.0) == LIMITED
    assert limiter.check("a", "x", 400, 0.0) == ALLOWED
    assert limiter.check("a", "x", 1000, 1.0) == ALLOWED  # refilled 1 KB


def test_staying_over_the_limit_ends_in_a_disconnect():
    limiter = RateLimiter(parse_setting({"*": "2/s burst 2"}), 3.0)
    t = 0.0
    verdicts = []
    while t < 5:
        verdicts.append(limiter.check("a", "x", 1, t))
        t += 0.05
    assert DISCONNECT in verdicts
    # the stretch began at the first refusal, after the burst
    assert verdicts.index(DISCONNECT) * 0.05 == pytest.approx(3.0 + 2 * 0.05, abs=0.06)
    # a pause of more than a second starts a new stretch
    limiter = RateLimiter(parse_setting({"*": "2/s burst 2"}), 3.0)
    for t in (0, 0.01, 0.02, 2.5, 2.51, 2.52, 4.0, 4.01, 4.02):
        assert limiter.check("b", "x", 1, t) != DISCONNECT


# -- in process --------------------------------------------------------------------


@pytest.fixture
def limited_engine():
    engine.reset()
    settings.reset()
    webpy_socketio.configure(
        SOCKETIO_RATE_LIMIT={"*": "100/s burst 100", "count": "3/s burst 3"},
        SOCKETIO_RATE_LIMIT_DISCONNECT_SECONDS=None,
    )
    seen = []

    def count(request, socket, context, n):
        return n

    def limited(request, socket, context, event_name):
        seen.append((socket.session_id, event_name))

    events.on("count")(count)
    events.on_rate_limited(limited)
    yield seen
    events.named["count"].disconnect(count)
    events.on_rate_limited.disconnect(limited)
    settings.reset()
    engine.reset()


def test_a_refused_event_is_answered_or_dropped_and_reported(limited_engine):
    client = SocketIOTestClient()
    assert [client.emit("count", n) for n in range(5)] == [0, 1, 2, LIMITED_REPLY, LIMITED_REPLY]
    client.emit("count", 99, ack=False)  # no ack: dropped, still reported
    assert limited_engine == [(client.sid, "count")] * 3
    assert client.send("other events have their own budget") is None
    client.disconnect()


def test_limits_apply_live_and_can_be_removed(limited_engine):
    client = SocketIOTestClient()
    assert [client.emit("count", n) for n in range(4)][-1] == LIMITED_REPLY
    webpy_socketio.configure(SOCKETIO_RATE_LIMIT=None)
    assert [client.emit("count", n) for n in range(10)] == list(range(10))
    client.disconnect()


# -- a real server and the official client ---------------------------------------


@pytest.fixture(scope="module")
def server(engine_path):
    app = AppServer(
        "basic_app.py",
        f"ratelimit-{engine_path}",
        {"WSIO_SETTINGS_MODULE": "limits_settings", "WSIO_TEST_PATH": engine_path},
    )
    yield app
    app.stop()


@pytest.mark.server
@pytest.mark.node
@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_the_official_client_gets_rate_limited_acks(server, agent, transport):
    agent.connect("a", server.url + "/?name=flooder", transport)
    replies = [agent.call("emit", "a", event="shout", args=["hi"]) for _ in range(8)]
    assert replies[:5] == ["HI"] * 5  # the burst
    assert LIMITED_REPLY in replies[5:]
    # other events keep their own budget
    assert agent.call("emit", "a", event="shout", args=["x"]) in ("X", LIMITED_REPLY)
    assert agent.call("send", "a", data="still here") == {"echo": "still here"}
    log = wait_until(lambda: [e for e in server.stats()["log"] if e[0] == "rate_limited"])
    assert ["rate_limited", "flooder", "shout"] in log
    agent.call("disconnect", "a")


@pytest.mark.server
@pytest.mark.node
def test_a_client_that_stays_over_its_limit_is_disconnected(server, agent):
    agent.connect("f", server.url + "/?name=persistent", "websocket")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not any(
        e["event"] == "disconnect" for e in agent.events if e["client"] == "f"
    ):
        agent.try_call("emit", "f", event="shout", args=["again"], timeout=1)
    reasons = [e["args"] for e in agent.events if e["client"] == "f" and e["event"] == "disconnect"]
    assert [r[0] for r in reasons] == ["io server disconnect"]
    log = wait_until(
        lambda: [e for e in server.stats()["log"] if e[:2] == ["disconnect", "persistent"]]
    )
    assert log == [["disconnect", "persistent", "rate limited"]]
    assert "over its rate limit (SOCKETIO_RATE_LIMIT) for 2 s" in server.output()


def test_a_message_that_is_only_digits_is_a_bad_packet_not_a_crash(limited_engine, caplog):
    # engine.io decodes the Engine.IO message "4123" into the int 123; the
    # rate limits' size count took len() of it (found by the fuzzer)
    from webpy_socketio import _engine as boundary

    client = SocketIOTestClient()
    with caplog.at_level("WARNING", logger="webpy_socketio"):
        boundary.feed_test_session(engine.get_engine(), client.eio_sid, 123)
    assert "invalid packet" in caplog.text
    assert "Traceback" not in caplog.text
