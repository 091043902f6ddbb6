"""The chat's Socket.IO handlers, driven by in-process test clients that
speak the real protocol (no server, no browser)."""

import pytest
from webpy_socketio import presence
from webpy_socketio.testing import SocketIOTestClient

import events  # noqa: F401  (registers the handlers)


@pytest.fixture
def join():
    """join(name, room, visitor) -> a test client that joined ``room`` as
    ``name``, from the browser whose visitor cookie is ``visitor``."""
    opened = []

    def join(name, room="lobby", visitor=None):
        headers = {"Cookie": f"visitor={visitor}"} if visitor else {}
        client = SocketIOTestClient(auth={"name": name}, headers=headers)
        opened.append(client)
        assert client.connected, client.connect_error
        reply = client.subscribe("room-" + room)
        assert reply["ok"] is True, reply
        return client

    yield join
    for client in opened:
        client.disconnect()


def names(room="lobby"):
    """Who is in the room (its presence), by name."""
    return sorted(tabs[0]["name"] for tabs in presence("room-" + room).values())


def of_type(messages, kind):
    return [m for m in messages if m["type"] == kind]


def test_a_message_reaches_everyone_in_the_room_and_nobody_else(join):
    ada, bob = join("ada"), join("bob")
    eve = join("eve", room="elsewhere")
    for client in (ada, bob, eve):
        client.get_messages()
    assert ada.send({"room": "lobby", "text": "hello"}) == {"ok": True}
    expected = [{"type": "chat", "name": "ada", "text": "hello"}]
    assert ada.get_messages() == expected
    assert bob.get_messages() == expected
    assert eve.get_messages() == []


def test_members_and_system_messages_follow_joins_and_leaves(join):
    ada = join("ada")
    assert names() == ["ada"]
    bob = join("bob")
    assert {"type": "system", "text": "bob joined"} in ada.get_messages()
    assert names() == ["ada", "bob"]
    bob.disconnect()  # a closed tab
    assert {"type": "system", "text": "bob left"} in ada.get_messages()
    assert names() == ["ada"]


def test_two_tabs_of_one_browser_are_one_member(join):
    ada = join("ada")
    ada.get_messages()
    first = join("Bob", visitor="bobs-browser")
    second = join("Bob", visitor="bobs-browser")  # the same name, the same browser
    assert names() == ["Bob", "ada"]
    assert len(presence("room-lobby")["bob"]) == 2  # one key, two tabs
    assert of_type(ada.get_messages(), "system") == [{"type": "system", "text": "Bob joined"}]
    first.disconnect()
    assert ada.get_messages() == []  # Bob is still here
    second.disconnect()
    assert ada.get_messages() == [{"type": "system", "text": "Bob left"}]


def test_a_name_is_unique_per_room(join):
    join("ada", visitor="adas-browser")
    twin = SocketIOTestClient(auth={"name": "ADA"}, headers={"Cookie": "visitor=someone-else"})
    reply = twin.subscribe("room-lobby")
    assert reply["ok"] is False and "taken" in reply["error"]
    assert twin.subscribe("room-other")["ok"] is True
    assert names() == ["ada"]
    twin.disconnect()


@pytest.mark.parametrize("auth", [None, {}, {"name": ""}, {"name": "x" * 25}, {"name": 42}])
def test_a_connection_without_a_usable_name_is_refused(auth):
    client = SocketIOTestClient(auth=auth)
    assert not client.connected
    assert "Choose a name" in client.connect_error["message"]


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("just text", "Send {room, text}."),
        ({"room": "other", "text": "hi"}, "Join the room first."),
        ({"room": "lobby", "text": "   "}, "A message has 1 to 1000 characters."),
        ({"room": "lobby", "text": "x" * 1001}, "A message has 1 to 1000 characters."),
    ],
)
def test_bad_messages_are_refused_and_not_relayed(join, message, error):
    ada, bob = join("ada"), join("bob")
    bob.get_messages()
    assert ada.send(message) == {"ok": False, "error": error}
    assert bob.get_messages() == []


def test_a_newcomer_gets_the_last_messages_and_a_returning_page_what_it_missed(join):
    ada = join("ada", room="history")
    ada.send({"room": "history", "text": "before bob"})
    bob = join("bob", room="history")
    (snapshot,) = of_type(bob.get_messages(), "history")
    assert {"type": "chat", "name": "ada", "text": "before bob"} in snapshot["messages"]
    # bob's page loses its connection; ada talks meanwhile
    position = bob.subscribe("room-history")  # where bob's page is
    bob.disconnect()
    ada.send({"room": "history", "text": "while bob was away"})
    back = SocketIOTestClient(auth={"name": "bob"})
    reply = back.subscribe("room-history", since=position)
    assert reply["recovered"] is True
    texts = [m.get("text") for m in back.get_messages()]
    assert "while bob was away" in texts
    assert not of_type([m for m in back.get_messages()], "history")  # no snapshot: a replay
    back.disconnect()
