"""Several server processes joined by a real redis-server
(SOCKETIO_MESSAGE_QUEUE): channel broadcasts, sends to a session id and
out-of-band sends cross processes; a process that runs no server publishes
through a write-only emitter; Redis down at start, lost and back while a
broadcast loop runs; nginx spreading clients over two processes."""

from __future__ import annotations

import contextlib
import itertools
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest
from redis_support import RedisServer
from support import AppServer, NodeAgent, free_port, python_env, wait_until

from webpy_socketio import Emitter, MessageQueueError

pytestmark = [pytest.mark.redis, pytest.mark.server, pytest.mark.node]

_names = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}{next(_names)}-{time.monotonic_ns()}"


def queue_server(name: str, url: str) -> AppServer:
    """tests/apps/basic_app.py with SOCKETIO_MESSAGE_QUEUE = url."""
    return AppServer(
        "basic_app.py", name, env={"WSIO_SETTINGS_MODULE": "queue_settings", "WSIO_TEST_QUEUE": url}
    )


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    server = RedisServer("scaleout")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pair(redis) -> Iterator[list[AppServer]]:
    """Two processes sharing the queue."""
    with contextlib.ExitStack() as cleanup:
        servers = []
        for tag in ("A", "B"):
            servers.append(queue_server(f"queue-{tag}", redis.url))
            cleanup.callback(servers[-1].stop)
        yield servers


def connect_pair(agent: NodeAgent, pair: list[AppServer], transport: str) -> dict[str, str]:
    """Client a on process A and client b on process B, both in one channel."""
    room = unique("room-")
    ids = {}
    for client, server in zip(("a", "b"), pair, strict=True):
        ids[client] = agent.connect(client, server.url, transport, query={"name": client})["id"]
        assert agent.call("subscribe", client, channel=room) == {"ok": True}
    ids["room"] = room
    return ids


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_channel_broadcast_crosses_processes(pair, agent, transport):
    ids = connect_pair(agent, pair, transport)
    agent.call("send", "a", data={"op": "broadcast_channel", "data": {"from": "a"}})
    agent.wait_for("b", lambda m: m == {"from": "a"})
    agent.call("send", "b", data={"op": "send_and_broadcast_channel", "data": {"from": "b"}})
    agent.wait_for("a", lambda m: m == {"from": "b"})
    agent.wait_for("b", lambda m: m == {"from": "b"})  # the sender's copy, once
    # the sender never gets its own broadcast_channel, from any process
    assert wait_until(lambda: agent.received("a").count({"from": "b"}) == 1)
    assert {"from": "a"} not in agent.received("a")
    # each process knows only its own sockets
    assert pair[0].stats()["channel_rooms"]["#" + ids["room"]] == [ids["a"]]
    assert pair[1].stats()["channel_rooms"]["#" + ids["room"]] == [ids["b"]]


def test_out_of_band_sends_from_a_server_process_reach_the_other(pair, agent):
    ids = connect_pair(agent, pair, "websocket")
    # A has no socket in that channel and no socket with b's id: with a queue
    # it cannot know, so it publishes instead of raising NoSocket
    status, body = pair[0].get(f"/oob/send/{ids['b']}")
    assert (status, body) == (200, {"sent": True})
    agent.wait_for("b", lambda m: m == {"oob": "send"})
    status, _ = pair[0].get(f"/oob/channel/{ids['room']}")
    assert status == 200
    agent.wait_for("b", lambda m: m == {"oob": "channel", "channel": ids["room"]})
    agent.wait_for("a", lambda m: m == {"oob": "channel", "channel": ids["room"]})
    assert pair[1].get("/oob/broadcast")[0] == 200
    for client in ("a", "b"):
        agent.wait_for(client, lambda m: m == {"oob": "broadcast"})


def test_sends_to_a_local_socket_skip_redis(redis, pair, agent):
    """A send to a socket of the sending process is delivered locally only;
    a channel broadcast is published once."""
    ids = connect_pair(agent, pair, "websocket")
    before = redis.publish_count()
    for i in range(20):
        # the room handler replies with socket.send() to the sender itself
        agent.call("send", "a", data={"op": "bound", "i": i})
    assert wait_until(
        lambda: agent.received("a").count({"bound": "room", "channels": [ids["room"]]}) == 20
    )
    assert redis.publish_count() == before
    agent.call("send", "a", data={"op": "broadcast_channel", "data": "counted"})
    agent.wait_for("b", lambda m: m == "counted")
    assert redis.publish_count() == before + 1


PLAIN_SENDER = textwrap.dedent(
    """
    import sys
    import webpy_socketio
    from webpy_socketio import emitter, broadcast_channel, send, configure

    url, room, sid = sys.argv[1:4]
    # a write-only emitter, as a cron job or a worker would use
    emitter(url).broadcast_channel({"plain": "emitter"}, room)
    # the module-level functions, with only the queue configured
    configure(SOCKETIO_MESSAGE_QUEUE=url)
    broadcast_channel({"plain": "function"}, room)
    send(sid, {"plain": "direct"})
    assert "gevent" not in sys.modules and "web" not in sys.modules, "not a plain process"
    print("sent")
    """
)


def test_plain_python_process_reaches_both_processes(redis, pair, agent):
    ids = connect_pair(agent, pair, "websocket")
    result = subprocess.run(
        [sys.executable, "-c", PLAIN_SENDER, redis.url, ids["room"], ids["b"]],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        env=python_env(),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "sent"
    for client in ("a", "b"):
        agent.wait_for(client, lambda m: m == {"plain": "emitter"})
        agent.wait_for(client, lambda m: m == {"plain": "function"})
    agent.wait_for("b", lambda m: m == {"plain": "direct"})


def test_emitter_to_an_unreachable_queue_raises_and_says_where():
    port = free_port()
    emitter = Emitter(f"redis://user:secret@127.0.0.1:{port}/0")
    with pytest.raises(MessageQueueError) as info:
        emitter.broadcast_channel({"x": 1}, "room-1")
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "not sent" in message
    assert "secret" not in message  # the password is never shown


def test_server_with_queue_down_at_start_is_a_clear_error():
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(RuntimeError) as info:
        queue_server("queue-down", url)
    assert f"Cannot reach the message queue {url}" in str(info.value)
    assert "Start it, or fix SOCKETIO_MESSAGE_QUEUE" in str(info.value)


@pytest.mark.reliability
def test_redis_lost_and_back_during_a_broadcast_loop(agent):
    """A broadcast loop on process A while Redis is killed and restarted:
    A's other socket gets every message; B's socket gets those sent before
    the outage and again those sent after Redis is back; each process logs
    the loss once and the return once."""
    with contextlib.ExitStack() as cleanup:
        redis = RedisServer("outage")
        cleanup.callback(redis.stop)
        servers = []
        for tag in ("A", "B"):
            servers.append(queue_server(f"outage-{tag}", redis.url))
            cleanup.callback(servers[-1].stop)
        room = unique("room-")
        for client, server in (
            ("sender", servers[0]),
            ("local", servers[0]),
            ("remote", servers[1]),
        ):
            agent.connect(client, server.url, "websocket")
            assert agent.call("subscribe", client, channel=room) == {"ok": True}
        sent: list[int] = []

        def broadcast(n: int) -> None:
            agent.call("send", "sender", data={"op": "broadcast_channel", "data": {"n": n}})
            sent.append(n)

        counter = itertools.count()
        for _ in range(20):
            broadcast(next(counter))
        agent.wait_for("remote", lambda m: m == {"n": sent[-1]})
        before = sent[-1]

        redis.kill()
        for _ in range(40):  # the outage: local delivery goes on
            broadcast(next(counter))
            time.sleep(0.01)
        agent.wait_for("local", lambda m: m == {"n": sent[-1]})

        redis.start()
        # keep broadcasting until one reaches B again (bounded)
        deadline = time.monotonic() + 15
        resumed = None
        while time.monotonic() < deadline and resumed is None:
            broadcast(next(counter))
            time.sleep(0.05)
            got = [m["n"] for m in agent.received("remote") if isinstance(m, dict) and "n" in m]
            resumed = next((n for n in got if n > before + 40), None)
        assert resumed is not None, "cross-process delivery did not resume"
        for _ in range(10):
            broadcast(next(counter))
        agent.wait_for("remote", lambda m: m == {"n": sent[-1]})
        agent.wait_for("local", lambda m: m == {"n": sent[-1]})

        local = [m["n"] for m in agent.received("local") if isinstance(m, dict) and "n" in m]
        assert local == sent  # no local message lost, none duplicated, in order
        remote = [m["n"] for m in agent.received("remote") if isinstance(m, dict) and "n" in m]
        assert remote[: before + 1] == sent[: before + 1]
        assert remote == sorted(set(remote))  # nothing twice, in order
        assert set(sent[sent.index(resumed) :]) <= set(remote)  # everything after resuming
        for server in servers:
            log = server.output()
            assert log.count("Lost the message queue") == 1, log[-3000:]
            assert log.count(f"The message queue {redis.url} is back after") == 1, log[-3000:]


def test_write_only_emitter_does_not_subscribe(redis):
    """An Emitter publishes only: no listener thread, no subscription."""
    import redis as redis_py

    client = redis_py.Redis.from_url(redis.url)
    before = dict(client.pubsub_numsub("socketio"))[b"socketio"]
    code = textwrap.dedent(
        f"""
        import threading
        from webpy_socketio import emitter
        e = emitter({redis.url!r})
        e.broadcast({{"x": 1}})
        assert threading.active_count() == 1, threading.enumerate()
        print(dict(e.manager.redis.pubsub_numsub("socketio"))[b"socketio"])
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=python_env(),
        cwd="/",
    )
    client.close()
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == before


def test_namespaces_cross_processes_and_stay_apart(redis, agent):
    # a channel of /admin spans both processes; the same channel name in "/"
    # is another channel; the emitter reaches one namespace only
    env = {"WSIO_SETTINGS_MODULE": "queue_settings", "WSIO_TEST_QUEUE": redis.url}
    with contextlib.ExitStack() as cleanup:
        servers = []
        for tag in ("A", "B"):
            servers.append(AppServer("namespace_app.py", f"queue-ns-{tag}", env))
            cleanup.callback(servers[-1].stop)
        room = unique("room-")
        admin = {"auth": {"token": "let-me-in"}}
        agent.connect("admin-a", servers[0].url + "/admin", "websocket", **admin)
        agent.connect("admin-b", servers[1].url + "/admin", "websocket", **admin)
        agent.connect("main-b", servers[1].url, "websocket")
        for client in ("admin-a", "admin-b", "main-b"):
            assert agent.call("subscribe", client, channel=room) == {"ok": True}
        assert agent.call("send", "admin-a", data="across") == {"ns": "/admin"}
        agent.wait_for("admin-b", lambda m: m == {"ns": "/admin", "text": "across"})
        Emitter(redis.url).broadcast_channel({"ns": "emitter"}, room, namespace="/admin")
        agent.wait_for("admin-a", lambda m: m == {"ns": "emitter"})
        agent.wait_for("admin-b", lambda m: m == {"ns": "emitter"})
        time.sleep(0.3)  # anything misrouted to "/" would have arrived by now
        assert agent.received("main-b") == []
