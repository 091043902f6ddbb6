"""The Socket.IO handlers, driven by an in-process test client that speaks
the real protocol (no server, no browser)."""

from webpy_socketio.testing import SocketIOTestClient

import events  # noqa: F401  (registers the handlers)


def test_every_message_is_echoed_and_counted():
    with SocketIOTestClient() as client:
        assert client.send("hello") == {"echo": "hello", "count": 1}
        assert client.send({"any": ["json"]}) == {"echo": {"any": ["json"]}, "count": 2}


def test_the_count_belongs_to_one_connection():
    with SocketIOTestClient() as first, SocketIOTestClient() as second:
        first.send("a")
        assert second.send("b")["count"] == 1
