"""webpy_socketio.events: registration, channel patterns, named events."""

from __future__ import annotations

import pytest

from webpy_socketio import events
from webpy_socketio.exceptions import EventError


@pytest.fixture
def event():
    return events.Event("on_test")


def handler(request, socket, context, *args):
    return ("unbound", args)


def test_decorator_returns_the_function_unchanged(event):
    assert event(handler) is handler
    assert event(channel="^room-")(handler) is handler
    assert len(event.handlers) == 2


def test_matching_unbound_fires_always_bound_only_where_it_matches(event):
    def room(*a):
        return "room"

    def lobby(*a):
        return "lobby"

    event(handler)
    event(room, channel="^room-")
    event(lobby, channel="lobby$")
    assert event.matching([]) == [handler]
    assert event.matching(["room-1"]) == [handler, room]
    assert event.matching(["x", "main-lobby"]) == [handler]  # re.match anchors at the start
    assert event.matching(["lobby", "room-2"]) == [handler, room, lobby]


def test_channels_are_only_computed_when_a_pattern_needs_them(event):
    event(handler)
    assert event.matching(lambda: pytest.fail("channels were computed")) == [handler]


def test_errors_at_registration(event):
    with pytest.raises(EventError, match="does not support channels"):
        events.on_connect(handler, channel="^room-")
    with pytest.raises(EventError, match="not a valid regular expression"):
        event(handler, channel="room-(")
    with pytest.raises(EventError, match="takes a function"):
        event("not callable")
    with pytest.raises(EventError, match="reserved"):
        events.on("connect")
    with pytest.raises(EventError, match="reserved"):
        events.on("wsio:subscribe")


def test_same_function_from_same_file_replaces_its_registration(event):
    def make():
        def chat(request, socket, context, message):
            return message

        return chat

    first, second = make(), make()
    event(first, channel="^room-")
    event(second, channel="^room-")
    assert event.handlers == [("/", event.handlers[0][1], second)]
    event(second, channel="^other-")  # another pattern is another registration
    assert len(event.handlers) == 2


def test_on_message_name_maps_to_the_builtin_event():
    def relay(*a):
        return None

    events.on("message")(relay)
    try:
        assert relay in [h for _, _, h in events.on_message.handlers]
    finally:
        events.on_message.disconnect(relay)


def test_send_calls_matching_handlers(event):
    class FakeSocket:
        channels = ["room-1"]

    event(handler, channel="^room-")
    assert event.send(None, FakeSocket(), {}, "hi") == [("unbound", ("hi",))]
