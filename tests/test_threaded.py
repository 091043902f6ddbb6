"""Handlers in gevent's thread pool (threaded=True): a CPU-bound one holds
only its own connection, its sends go out before its ack, its connection's
events stay in order; with the official client on both engine paths."""

from __future__ import annotations

import threading

import pytest
from support import AppServer, wait_until

from webpy_socketio import events
from webpy_socketio.threaded import ThreadSocket

pytestmark = [pytest.mark.server, pytest.mark.node]


@pytest.fixture(scope="module")
def server(engine_path):
    app = AppServer("basic_app.py", f"threaded-{engine_path}", {"WSIO_TEST_PATH": engine_path})
    yield app
    app.stop()


def test_a_threaded_handler_leaves_the_other_connections_free(server, agent):
    agent.connect("worker", server.url + "/?name=worker")
    agent.connect("other", server.url + "/?name=other")
    assert agent.call("subscribe", "worker", channel="room-7")["ok"]
    result = {}

    def crunch():
        # computes until the other connection stops it (at most 20 s): run
        # in the event loop, it would hold it, and the stop could not arrive
        result["ack"] = agent.call("emit", "worker", event="crunch", args=[20], timeout=30)

    thread = threading.Thread(target=crunch)
    thread.start()
    agent.wait_for("worker", lambda m: m == {"crunching": True}, timeout=10)
    # the same connection's next event waits its turn
    after = threading.Thread(
        target=lambda: result.setdefault(
            "after", agent.call("emit", "worker", event="after", args=["next"], timeout=30)
        )
    )
    after.start()
    assert agent.call("emit", "other", event="stop_crunch", args=[], timeout=10) is True
    thread.join(35)
    after.join(35)
    assert result["ack"] == {"stopped_by_another_connection": True, "channels": ["room-7"]}
    assert result["after"] == "next"
    log = wait_until(lambda: [e for e in server.stats()["log"] if e[0] in ("crunched", "after")])
    assert log == [["crunched", "worker", True], ["after", "worker", "next"]]


def test_threaded_registration_keeps_the_function_and_replaces_itself():
    def report(request, socket, context):
        return 1

    assert events.on("wsio-test-report", threaded=True)(report) is report
    events.on("wsio-test-report", threaded=True)(report)  # again: replaced, not added
    event = events.named["wsio-test-report"]
    assert len(event.handlers) == 1 and event.handlers[0][2].__wrapped__ is report
    assert event.disconnect(report) and not event.handlers


def test_the_thread_socket_offers_the_sends_only():
    class Fake:
        session_id, namespace, session, disconnect_reason = "s", "/", None, None
        channels, transport, connected = ["a"], "websocket", True

        def send(self, message):
            pass

    proxy = ThreadSocket(Fake())
    assert proxy.channels == ["a"] and callable(proxy.send)
    with pytest.raises(AttributeError, match="a threaded handler's socket offers send"):
        proxy._engine  # noqa: B018
