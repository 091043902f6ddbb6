"""Presence across processes, for real: the Redis store's scripts against a
real redis-server; two server processes sharing it, driven by the official
socket.io-client in Node (joins and leaves everywhere, one key in two tabs,
a refused subscription, bad input, a process killed with SIGKILL); and
``wsio serve --workers 2`` behind the nginx config ``wsio nginx-config``
writes, with Node and Chromium clients on both workers, every list checked
against the truth after each join and leave (the measured delays are
printed and written to test-output/presence/)."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import serve_support
from nginx_support import Nginx, generate, listen_port
from redis_support import RedisServer
from support import AppServer, NodeAgent, output_dir, python_env, wait_until

from webpy_socketio import _presence, settings
from webpy_socketio.wire import PRESENCE_REF

pytestmark = [pytest.mark.redis, pytest.mark.server]

#: generous: a loaded 2-core machine runs Redis, nginx, two servers, Node
#: and Chromium at once (the delays actually measured are printed)
DEADLINE = 15.0
#: the presence timeout of the servers that get killed: members of a dead
#: process leave within it and a third
SHORT_TIMEOUT = 2.0

_names = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}{next(_names)}-{time.monotonic_ns() % 10**8}"


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    server = RedisServer("presence")
    yield server
    server.stop()


def presence_env(url: str, timeout: float | None = None, **extra: str) -> dict[str, str]:
    env = {"WSIO_SETTINGS_MODULE": "presence_settings", "WSIO_TEST_QUEUE": url, **extra}
    if timeout is not None:
        env["WSIO_TEST_PRESENCE_TIMEOUT"] = str(timeout)
    return env


def counts(state: dict[str, list[Any]]) -> dict[str, int]:
    return {key: len(metas) for key, metas in state.items()}


# -- the Redis store's scripts --------------------------------------------------------


class FakeQueue:
    """What RedisStore needs of the message queue: a client and a channel."""

    def __init__(self, url: str) -> None:
        import redis as redis_py

        self.redis = redis_py.Redis.from_url(url)
        self.channel = unique("presence-test-")

    def client(self) -> Any:
        return self.redis


@pytest.fixture
def store(redis) -> Iterator[tuple[_presence.RedisStore, Any]]:
    """A RedisStore and a pub/sub subscription to its channel."""
    queue = FakeQueue(redis.url)
    pubsub = queue.redis.pubsub()
    pubsub.subscribe(queue.channel)
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    yield _presence.RedisStore(queue), pubsub
    pubsub.close()
    queue.redis.close()
    settings.reset()


def published(pubsub: Any, count: int) -> list[dict[str, Any]]:
    out = []
    deadline = time.monotonic() + 5
    while len(out) < count and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)
        if message and message["type"] == "message":
            out.append(json.loads(message["data"]))
    return out


def value(key: str, **meta: Any) -> str:
    return _presence.make_tracking(key, meta).value


def test_scripts_change_count_and_publish_in_order(store):
    redis_store, pubsub = store
    channel = unique("room-")
    bob1, bob2 = value("bob", tab=1), value("bob", tab=2)
    redis_store.join("/", channel, "sid1", bob1)
    redis_store.join("/", channel, "sid2", bob2)
    redis_store.join("/", channel, "sid2", bob2)  # the same again: no change
    epoch, n, values = redis_store.state("/", channel)
    assert n == 2 and sorted(values) == sorted([bob1, bob2])
    assert redis_store.leave("/", channel, "sid1", count=True) == 1  # bob has a tab left
    assert redis_store.leave("/", channel, "sid1", count=True) == -1  # not tracked any more
    assert redis_store.leave("/", channel, "sid2", count=True) == 0  # bob left
    messages = published(pubsub, 4)
    assert [m["wsio_presence"] for m in messages] == [
        {"epoch": epoch, "n": n} for n in (1, 2, 3, 4)
    ]
    first = messages[0]
    # a python-socketio emit message to the channel's presence room, of nobody's host
    assert (first["method"], first["event"], first["room"], first["host_id"]) == (
        "emit",
        "wsio:presence",
        "%" + channel,
        "",
    )
    assert first["data"] == [
        {"channel": channel, "joins": {"bob": [json.loads(bob1.split("\t")[1])]}, "leaves": {}}
    ]
    assert [list(m["data"][0]["leaves"]) for m in messages[2:]] == [["bob"], ["bob"]]


def test_an_update_is_one_change(store):
    redis_store, pubsub = store
    channel = unique("room-")
    old, new = value("ann", typing=False), value("ann", typing=True)
    redis_store.join("/", channel, "sid1", old)
    redis_store.join("/", channel, "sid1", new)
    _, update = published(pubsub, 2)
    change = update["data"][0]
    assert [m["typing"] for m in change["joins"]["ann"]] == [True]
    assert [m["typing"] for m in change["leaves"]["ann"]] == [False]


def test_members_not_refreshed_expire_and_leave_in_one_change(store):
    redis_store, pubsub = store
    channel = unique("room-")
    for i in range(1200):  # more than one sweep's batch
        redis_store.join("/", channel, f"dead{i}", value(f"user{i}"))
    alive = value("alive")
    redis_store.join("/", channel, "alive", alive)
    published(pubsub, 1201)
    # their process stopped refreshing them long ago
    expiries, _, _ = _presence._keys("/", channel)
    redis_store.redis.zadd(expiries, {f"dead{i}": 1 for i in range(1200)}, xx=True)
    [(_, _, missing)] = redis_store.beat([(("/", channel), ["alive", "gone"])])
    assert missing == ["gone"]  # "alive" was pushed back; "gone" was never there
    [sweep] = published(pubsub, 1)
    assert len(sweep["data"][0]["leaves"]) == 1200 and sweep["data"][0]["joins"] == {}
    _, _, values = redis_store.state("/", channel)
    assert values == [alive]
    assert published(pubsub, 1) == []  # nothing more to sweep, nothing published


def test_the_keys_expire_with_the_timeout(store):
    redis_store, _ = store
    settings.configure(SOCKETIO_PRESENCE_TIMEOUT=15)
    channel = unique("room-")
    redis_store.join("/", channel, "sid", value("ann"))
    for key in _presence._keys("/", channel):
        assert 14_000 < redis_store.redis.pttl(key) <= 15_000


def test_a_channels_keys_share_one_cluster_slot():
    from redis.crc import key_slot

    for channel in ("room-1", "a{b}c", "}x{", "ünï"):
        keys = _presence._keys("/admin", channel)
        assert len({key_slot(k.encode()) for k in keys}) == 1, keys


# -- two processes sharing Redis --------------------------------------------------------


@pytest.fixture(scope="module")
def pair(redis, engine_path) -> Iterator[list[AppServer]]:
    """Two server processes of presence_app sharing the queue."""
    with contextlib.ExitStack() as cleanup:
        servers = []
        for tag in ("A", "B"):
            env = presence_env(redis.url, WSIO_TEST_PATH=engine_path)
            servers.append(AppServer("presence_app.py", f"presence-{engine_path}-{tag}", env))
            cleanup.callback(servers[-1].stop)
        yield servers


def join(agent: NodeAgent, client: str, server: AppServer, channel: str, **auth: Any) -> dict:
    agent.connect(client, server.url, "websocket", auth=auth)
    agent.call("watch_presence", client, channel=channel)
    return agent.call("subscribe", client, channel=channel)


def listed(agent: NodeAgent, client: str, channel: str) -> dict[str, int]:
    found = agent.call("presence", client, channel=channel)
    return {item["key"]: len(item["metas"]) for item in found["list"]}


def all_see(agent: NodeAgent, clients: list[str], channel: str, truth: dict[str, int]) -> bool:
    return bool(
        wait_until(
            lambda: all(listed(agent, c, channel) == truth for c in clients), timeout=DEADLINE
        )
    )


def from_web(server: AppServer, channel: str) -> dict[str, int]:
    status, body = server.get(f"/presence/{channel}")
    assert status == 200, body
    return counts(body["presence"])


@pytest.mark.node
def test_joins_and_leaves_reach_every_process(pair, agent):
    a, b = pair
    channel = unique("room-")
    ack = join(agent, "ann", a, channel, user="ann", meta={"tab": 1})
    assert counts(ack["presence"]) == {"ann": 1}
    join(agent, "bob1", b, channel, user="bob", meta={"tab": 1})
    truth = {"ann": 1, "bob": 1}
    assert all_see(agent, ["ann", "bob1"], channel, truth)
    # the same key in a second tab, on the other process: one key, two metas
    reply = join(agent, "bob2", a, channel, user="bob", meta={"tab": 2})
    assert sorted(m["tab"] for m in reply["presence"]["bob"]) == [1, 2]
    truth = {"ann": 1, "bob": 2}
    assert all_see(agent, ["ann", "bob1", "bob2"], channel, truth)
    assert from_web(a, channel) == from_web(b, channel) == truth
    # closing one tab is an update: bob stays, with one meta
    agent.call("disconnect", "bob1")
    truth = {"ann": 1, "bob": 1}
    assert all_see(agent, ["ann", "bob2"], channel, truth)
    leaves = [
        e["args"][0]["leaves"]
        for e in agent.events
        if e["client"] == "ann" and e["event"] == "wsio:presence" and e["args"][0]["leaves"]
    ]
    assert [[m["tab"] for m in change["bob"]] for change in leaves] == [[1]]
    # an update of a meta (track again) is one change
    assert agent.call("emit", "bob2", event="retrack", args=[channel, {"tab": 2, "away": True}])
    assert wait_until(
        lambda: agent.call("presence", "ann", channel=channel)["list"][1]["metas"][0].get("away"),
        timeout=DEADLINE,
    )
    # the last tab closes: bob leaves everywhere
    agent.call("drop", "bob2")  # a lost connection, no Socket.IO disconnect
    assert all_see(agent, ["ann"], channel, {"ann": 1})
    assert from_web(b, channel) == {"ann": 1}


@pytest.mark.node
def test_untrack_counts_across_processes(pair, agent):
    a, b = pair
    channel = unique("room-")
    join(agent, "t1", a, channel, user="tom")
    join(agent, "t2", b, channel, user="tom")
    join(agent, "watcher", b, channel, watch=True)
    assert all_see(agent, ["t1", "t2", "watcher"], channel, {"tom": 2})
    assert agent.call("emit", "t1", event="untrack", args=[channel]) == {"remaining": 1}
    assert agent.call("emit", "t2", event="untrack", args=[channel]) == {"remaining": 0}
    assert agent.call("emit", "t2", event="untrack", args=[channel]) == {"remaining": None}
    assert all_see(agent, ["t1", "t2", "watcher"], channel, {})


@pytest.mark.node
def test_a_refused_subscription_sees_none_and_is_in_none(pair, agent):
    a, b = pair
    channel = unique("room-")
    join(agent, "ann", a, channel, user="ann")
    reply = join(agent, "mallory", b, channel, user="mallory")
    assert reply == {"ok": False, "error": "no presence for you"}
    join(agent, "bob", b, channel, user="bob")
    assert all_see(agent, ["ann", "bob"], channel, {"ann": 1, "bob": 1})
    assert from_web(a, channel) == {"ann": 1, "bob": 1}
    time.sleep(0.3)  # anything misrouted to mallory would have arrived by now
    assert [e for e in agent.events if e["client"] == "mallory" and "presence" in e["event"]] == []
    assert agent.call("presence", "mallory", channel=channel) == {"synced": False, "list": []}


@pytest.mark.node
def test_opt_in_channel_across_processes(pair, agent):
    a, b = pair
    channel = unique("opt-")
    status, body = a.get(f"/presence/{channel}")
    assert status == 400 and "has no presence" in body["error"]
    agent.connect("plain", b.url, "websocket")
    assert agent.call("subscribe", "plain", channel=channel) == {"ok": True}
    join(agent, "ann", a, channel, user="ann")
    join(agent, "bob", b, channel, user="bob")
    assert all_see(agent, ["ann", "bob"], channel, {"ann": 1, "bob": 1})
    assert from_web(b, channel) == {"ann": 1, "bob": 1}
    assert not [e for e in agent.events if e["client"] == "plain" and "presence" in e["event"]]


@pytest.mark.node
@pytest.mark.parametrize(
    ("key", "meta", "error"),
    [
        (None, "unserialisable", "must be JSON-serialisable"),
        (None, "huge", "SOCKETIO_PRESENCE_MAX_META_BYTES allows 2048"),
        ("k" * 201, {}, "at most 200 characters, not 201"),
        (7, {}, "key must be a string, not int"),
        (None, [1, 2], "meta must be a dict"),
        (None, {PRESENCE_REF: "x"}, "must not have the key 'wsio:ref'"),
    ],
)
def test_bad_input_over_the_wire_changes_nothing(pair, agent, key, meta, error):
    a, b = pair
    channel = unique("room-")
    join(agent, "ann", a, channel, user="ann", meta={"ok": True})
    join(agent, "bob", b, channel, user="bob")
    assert all_see(agent, ["ann", "bob"], channel, {"ann": 1, "bob": 1})
    before = len(agent.events)
    reply = agent.call("emit", "ann", event="bad_track", args=[channel, key or "ann", meta])
    assert error in reply["error"]
    status, body = b.get(f"/presence/{channel}")
    assert body["presence"]["ann"] == [{"ok": True}]
    time.sleep(0.3)
    assert not [e for e in agent.events[before:] if e["event"] == "wsio:presence"]
    assert listed(agent, "bob", channel) == {"ann": 1, "bob": 1}


@pytest.mark.node
def test_a_reconnected_client_gets_the_state_again(pair, agent):
    a, b = pair
    channel = unique("room-")
    agent.connect("ann", a.url, "websocket", auth={"user": "ann"}, reconnection=True)
    agent.call("watch_presence", "ann", channel=channel)
    assert agent.call("subscribe", "ann", channel=channel)["ok"]
    join(agent, "bob", b, channel, user="bob")
    assert all_see(agent, ["ann", "bob"], channel, {"ann": 1, "bob": 1})
    old_refs = {
        m[PRESENCE_REF] for m in agent.call("presence", "bob", channel=channel)["list"][0]["metas"]
    }
    agent.call("drop", "ann")  # the network goes: ann's socket leaves, then comes back
    assert wait_until(
        lambda: [e for e in agent.events if e["client"] == "ann" and e["event"] == "reconnect"],
        timeout=DEADLINE,
    )
    join(agent, "cy", b, channel, user="cy")  # a change while ann resubscribes
    truth = {"ann": 1, "bob": 1, "cy": 1}
    assert all_see(agent, ["ann", "bob", "cy"], channel, truth)
    found = agent.call("presence", "bob", channel=channel)["list"]
    ann_refs = {m[PRESENCE_REF] for item in found if item["key"] == "ann" for m in item["metas"]}
    assert ann_refs and not ann_refs & old_refs  # the new socket's meta, the old one gone


@pytest.mark.node
def test_presence_from_a_process_that_runs_no_server(redis, pair, agent):
    a, _ = pair
    channel = unique("room-")
    join(agent, "ann", a, channel, user="ann", meta={"n": 1})
    code = (
        "import sys, json; from webpy_socketio import configure, presence\n"
        "configure(SOCKETIO_MESSAGE_QUEUE=sys.argv[1], SOCKETIO_PRESENCE=['^room-'])\n"
        "print(json.dumps(presence(sys.argv[2])))\n"
        "assert 'gevent' not in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, redis.url, channel],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        env=python_env(),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"ann": [{"n": 1}]}


@pytest.mark.node
@pytest.mark.reliability
def test_redis_restarted_without_its_data_gets_every_member_back(agent):
    """Redis killed and started again empty: each process tracks its members
    again at its next refresh, and every list is right again."""
    with contextlib.ExitStack() as cleanup:
        redis = RedisServer("presence-restart")
        cleanup.callback(redis.stop)
        env = presence_env(redis.url, timeout=SHORT_TIMEOUT)
        servers = []
        for tag in ("A", "B"):
            servers.append(AppServer("presence_app.py", f"presence-restart-{tag}", env))
            cleanup.callback(servers[-1].stop)
        channel = unique("room-")
        for name, server in (("ann", servers[0]), ("bob", servers[1]), ("cy", servers[1])):
            join(agent, name, server, channel, user=name)
        truth = {"ann": 1, "bob": 1, "cy": 1}
        assert all_see(agent, ["ann", "bob", "cy"], channel, truth)
        redis.kill()
        redis.start()
        assert wait_until(lambda: from_web(servers[0], channel) == truth, timeout=DEADLINE)
        join(agent, "dee", servers[0], channel, user="dee")
        truth["dee"] = 1
        assert all_see(agent, ["ann", "bob", "cy", "dee"], channel, truth)
        agent.call("disconnect", "bob")
        del truth["bob"]
        assert all_see(agent, ["ann", "cy", "dee"], channel, truth)


@pytest.mark.node
@pytest.mark.reliability
def test_members_of_a_killed_process_leave_everywhere_in_the_bound(redis, agent):
    """SIGKILL: no handler runs and nothing is sent; the members of the dead
    process expire SOCKETIO_PRESENCE_TIMEOUT after its last refresh, and the
    refresh of the surviving process removes them and pushes the leaves
    (within the timeout and a third); the survivors' members stay."""
    bound = SHORT_TIMEOUT * 4 / 3
    channel = unique("room-")
    with contextlib.ExitStack() as cleanup:
        env = presence_env(redis.url, timeout=SHORT_TIMEOUT)
        doomed = AppServer("presence_app.py", "presence-doomed", env)
        cleanup.callback(doomed.stop)
        survivor = AppServer("presence_app.py", "presence-survivor", env)
        cleanup.callback(survivor.stop)
        for name in ("d1", "d2"):
            join(agent, name, doomed, channel, user=name)
        join(agent, "both-d", doomed, channel, user="both")
        for name in ("s1", "s2"):
            join(agent, name, survivor, channel, user=name)
        join(agent, "both-s", survivor, channel, user="both")
        observers = ["s1", "s2", "both-s"]
        assert all_see(agent, observers, channel, {"d1": 1, "d2": 1, "both": 2, "s1": 1, "s2": 1})
        # some refreshes go by: nobody leaves while both processes live
        time.sleep(SHORT_TIMEOUT * 1.5)
        assert all(
            listed(agent, c, channel) == {"d1": 1, "d2": 1, "both": 2, "s1": 1, "s2": 1}
            for c in observers
        )
        killed = time.time()
        doomed.send_signal(signal.SIGKILL)
        doomed.proc.wait(10)
        truth = {"both": 1, "s1": 1, "s2": 1}
        assert all_see(agent, observers, channel, truth)
        took = max(last_change(agent, c) for c in observers) - killed
        report("sigkill", {"timeout_s": SHORT_TIMEOUT, "bound_s": bound, "leave_after_s": took})
        # the bound plus what a loaded machine may add to the observers' clocks
        assert took < bound + 5, took
        # the survivors stay, refreshed, long after
        time.sleep(SHORT_TIMEOUT * 2)
        assert all(listed(agent, c, channel) == truth for c in observers)
        assert from_web(survivor, channel) == truth


def last_change(agent: NodeAgent, client: str) -> float:
    """When a Node client's list last changed (seconds, wall clock)."""
    stamps = [
        e["args"][1] for e in agent.events if e["client"] == client and e["event"].endswith("sync")
    ]
    return max(stamps) / 1000


def report(name: str, data: dict[str, Any]) -> None:
    folder = output_dir("presence")
    (folder / f"{name}.json").write_text(json.dumps(data, indent=2))
    print(f"presence {name}: {json.dumps(data)}")


# -- wsio serve --workers 2 behind nginx, Node and Chromium ------------------------------


class Serve(serve_support.Serve):
    """``wsio serve PORT --workers 2 --app presence_app:app``."""

    def __init__(self, url: str) -> None:
        super().__init__(2, url, "presence", app="presence_app:app", env=presence_env(url))

    def worker_of(self, sid: str) -> int | None:
        for index in range(len(self.ports)):
            if sid in self.stats(index)["clients"]:
                return index
        return None


@pytest.fixture(scope="module")
def deployment(redis) -> Iterator[dict[str, Any]]:
    """Two workers of presence_app under wsio serve, behind nginx with the
    cookie sticky policy (browsers from one address still spread), and a
    headless Chromium."""
    from browser import chromium

    pytest.importorskip("playwright")
    with contextlib.ExitStack() as cleanup:
        serve = Serve(redis.url)
        cleanup.callback(serve.stop)
        port, listen = listen_port()
        text = generate(
            "--listen", listen, "--workers", "2", "--upstream", f"127.0.0.1:{serve.port}",
            "--sticky", "cookie",
        )  # fmt: skip
        cleanup.callback(Nginx(text, "http", "presence", [port]).stop)
        browser = cleanup.enter_context(chromium())
        yield {"serve": serve, "url": f"http://127.0.0.1:{port}", "browser": browser}


class Tab:
    """A Chromium page of presence_app joined to a channel."""

    def __init__(self, context: Any, url: str, channel: str, user: str, **meta: Any) -> None:
        from urllib.parse import urlencode

        self.page = context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        query = urlencode({"channel": channel, "user": user, "meta": json.dumps(meta)})
        self.page.goto(f"{url}/?{query}")
        self.page.wait_for_function("window.joined !== null", timeout=DEADLINE * 1000)
        _, reply = self.page.evaluate("window.joined")
        assert reply["ok"], reply
        # when its subscribe went out: the others' lists are timed from there
        self.joined_at = self.page.evaluate("window.subscribing") / 1000
        self.sid = self.page.evaluate("socket.id")

    def listed(self) -> dict[str, int]:
        return dict(self.page.evaluate("presenceList()"))

    def changed_at(self) -> float:
        return float(self.page.evaluate("presenceLog[presenceLog.length - 1][0]")) / 1000


class Member:
    """One client of the six, Node or Chromium, behind one interface."""

    def __init__(self, name: str, agent: NodeAgent | None = None, tab: Tab | None = None):
        self.name, self.agent, self.tab = name, agent, tab

    def listed(self, channel: str) -> dict[str, int]:
        if self.tab is not None:
            return self.tab.listed()
        assert self.agent is not None
        return listed(self.agent, self.name, channel)

    def changed_at(self) -> float:
        if self.tab is not None:
            return self.tab.changed_at()
        assert self.agent is not None
        return last_change(self.agent, self.name)


def converge(members: list[Member], channel: str, truth: dict[str, int], since: float) -> float:
    """Wait until every member's list is the truth; return how long after
    ``since`` the last of them got there."""
    ok = wait_until(lambda: all(m.listed(channel) == truth for m in members), timeout=DEADLINE)
    assert ok, {m.name: m.listed(channel) for m in members}
    return max(m.changed_at() for m in members) - since


@pytest.mark.node
@pytest.mark.nginx
@pytest.mark.browser
def test_six_clients_on_two_workers_behind_nginx_see_the_truth(deployment, agent):
    serve, url, browser = deployment["serve"], deployment["url"], deployment["browser"]
    channel = unique("room-")
    members: list[Member] = []
    truth: dict[str, int] = {}
    delays: list[dict[str, Any]] = []
    contexts = []
    workers: dict[str, int | None] = {}
    try:
        for i in range(3):
            # a Chromium context (its own cookie: nginx places it), then a Node client
            context = browser.new_context()
            contexts.append(context)
            name = f"web{i}"
            tab = Tab(context, url, channel, name, kind="chromium")
            members.append(Member(name, tab=tab))
            workers[name] = serve.worker_of(tab.sid)
            truth[name] = 1
            delays.append({"join": name, "s": converge(members, channel, truth, tab.joined_at)})

            name = f"node{i}"
            for _attempt in range(20):
                # websocket through nginx: without the cookie, each connection is
                # placed at random; keep both workers in use
                sid = agent.connect(name, url, "websocket", auth={"user": name})["id"]
                workers[name] = serve.worker_of(sid)
                if i < 2 or len(set(workers.values())) == 2:
                    break
                agent.call("disconnect", name)
            agent.call("watch_presence", name, channel=channel)
            sent = time.time()
            assert agent.call("subscribe", name, channel=channel)["ok"]
            members.append(Member(name, agent=agent))
            truth[name] = 1
            delays.append({"join": name, "s": converge(members, channel, truth, sent)})
        assert sorted(set(workers.values())) == [0, 1], workers
        for member in list(reversed(members))[:-1]:
            members.remove(member)
            del truth[member.name]
            left = time.time()
            if member.tab is not None:
                member.tab.page.close()
            else:
                agent.call("disconnect", member.name)
            delays.append({"leave": member.name, "s": converge(members, channel, truth, left)})
        assert all(not m.tab.errors for m in members if m.tab is not None)
    finally:
        for context in contexts:
            context.close()
    report(
        "six-clients",
        {"workers": workers, "max_s": max(d["s"] for d in delays), "steps": delays},
    )


@pytest.mark.nginx
@pytest.mark.browser
def test_one_key_in_two_tabs_is_one_key_with_two_metas(deployment):
    url, browser = deployment["url"], deployment["browser"]
    channel = unique("room-")
    watcher_context, bob_context = browser.new_context(), browser.new_context()
    try:
        watcher = Member("watcher", tab=Tab(watcher_context, url, channel, "watcher"))
        first = Tab(bob_context, url, channel, "bob", tab=1)
        second = Tab(bob_context, url, channel, "bob", tab=2)  # same browser, same worker
        everyone = [watcher, Member("bob-1", tab=first), Member("bob-2", tab=second)]
        converge(everyone, channel, {"watcher": 1, "bob": 2}, second.joined_at)
        metas = watcher.tab.page.evaluate("socket.presence(new URLSearchParams(location.search)"
                                          ".get('channel')).get('bob')")  # fmt: skip
        assert sorted(m["tab"] for m in metas) == [1, 2]
        assert len({m[PRESENCE_REF] for m in metas}) == 2
        # closing one tab is an update: onLeave with the other meta remaining
        watcher.tab.page.evaluate(
            "window.leaves = []; socket.presence(new URLSearchParams(location.search)"
            ".get('channel')).onLeave((k, rest, gone) => leaves.push([k, rest.length]))"
        )
        first.page.close()
        converge([watcher, everyone[2]], channel, {"watcher": 1, "bob": 1}, time.time())
        second.page.close()
        converge([watcher], channel, {"watcher": 1}, time.time())
        assert watcher.tab.page.evaluate("window.leaves") == [["bob", 1], ["bob", 0]]
    finally:
        watcher_context.close()
        bob_context.close()


@pytest.mark.nginx
@pytest.mark.node
def test_a_worker_killed_behind_nginx_loses_its_members_only(deployment, agent):
    """The default timeout (15 s): the leaves come within 20 s."""
    serve, url = deployment["serve"], deployment["url"]
    channel = unique("room-")
    placed: dict[int, list[str]] = {0: [], 1: []}
    for i in range(40):
        name = f"k{i}"
        sid = agent.connect(name, url, "websocket", auth={"user": name}, reconnection=False)["id"]
        worker = serve.worker_of(sid)
        assert worker is not None
        if len(placed[worker]) >= 2:
            agent.call("disconnect", name)
            continue
        placed[worker].append(name)
        agent.call("watch_presence", name, channel=channel)
        assert agent.call("subscribe", name, channel=channel)["ok"]
        if all(len(v) == 2 for v in placed.values()):
            break
    assert all(len(v) == 2 for v in placed.values()), placed
    survivors = placed[0]
    assert all_see(agent, survivors, channel, {n: 1 for n in placed[0] + placed[1]})
    pids = serve.worker_pids()
    killed = time.time()
    os.kill(pids[1], signal.SIGKILL)
    timeout = 15.0  # presence_settings' default
    ok = wait_until(
        lambda: all(listed(agent, c, channel) == {n: 1 for n in survivors} for c in survivors),
        timeout=timeout * 4 / 3 + DEADLINE,
    )
    assert ok, {c: listed(agent, c, channel) for c in survivors}
    took = max(last_change(agent, c) for c in survivors) - killed
    report("sigkill-default", {"timeout_s": timeout, "bound_s": timeout * 4 / 3, "after_s": took})
    assert took < timeout * 4 / 3 + 5, took
