"""Presence in one process (the in-memory store), through the real engine
and dispatcher with the in-process test client: the state in the subscribe
ack, the changes, keys with several metas, updates, untrack, refused
subscriptions, channels without a pattern, server-side subscribes, bad
input. Across processes, with Redis, nginx and browsers:
tests/test_presence_servers.py."""

from __future__ import annotations

from typing import Any

import pytest

import webpy_socketio
from webpy_socketio import (
    Denied,
    PresenceError,
    _presence,
    clients,
    engine,
    events,
    presence,
    settings,
)
from webpy_socketio.exceptions import ImproperlyConfigured
from webpy_socketio.testing import SocketIOTestClient
from webpy_socketio.wire import PRESENCE, PRESENCE_REF


@pytest.fixture(autouse=True)
def configured():
    engine.reset()
    _presence.reset()
    webpy_socketio.configure(SOCKETIO_PRESENCE=["^room-"])
    yield
    settings.reset()
    engine.reset()
    _presence.reset()


@pytest.fixture
def handler():
    """handler(event, function, **options): register a handler for this test."""
    registered = []

    def register(event, function, **options):
        event(function, **options)
        registered.append((event, function))
        return function

    yield register
    for event, function in registered:
        event.disconnect(function)


@pytest.fixture
def as_user(handler):
    """Clients connect with auth {"user": key, "meta": {...}}; on room- and
    opt- channels they are tracked under that key."""

    def track(request, socket, context, channel):
        auth = request.auth or {}
        if "user" in auth:
            socket.track(channel, auth["user"], auth.get("meta"))

    handler(events.on_subscribe, track, channel="^(room|opt)-")

    def connect(user, **meta):
        return SocketIOTestClient(auth={"user": user, "meta": meta})

    return connect


def listing(state: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """A state without the refs, for comparisons."""
    return {
        key: [{k: v for k, v in meta.items() if k != PRESENCE_REF} for meta in metas]
        for key, metas in state.items()
    }


def changes(client: SocketIOTestClient) -> list[dict[str, Any]]:
    """The presence events received since the last call (refs removed)."""
    out = []
    for event in client.get_received():
        if event["name"] == PRESENCE:
            change = dict(event["args"][0])
            for part in ("joins", "leaves", "state"):
                if part in change:
                    change[part] = listing(change[part])
            out.append(change)
    return out


def test_settings_are_checked():
    for bad in ("^room-", ["("], [""], [5], {"^room-": 1}):
        with pytest.raises(ImproperlyConfigured, match="SOCKETIO_PRESENCE"):
            webpy_socketio.configure(SOCKETIO_PRESENCE=bad)
    for bad in (0, 0.5, -1, True, "10", None):
        with pytest.raises(ImproperlyConfigured, match="SOCKETIO_PRESENCE_TIMEOUT.*at least 1"):
            webpy_socketio.configure(SOCKETIO_PRESENCE_TIMEOUT=bad)
    for bad in (0, 1.5, None):
        with pytest.raises(ImproperlyConfigured, match="SOCKETIO_PRESENCE_MAX_META_BYTES"):
            webpy_socketio.configure(SOCKETIO_PRESENCE_MAX_META_BYTES=bad)
    webpy_socketio.configure(SOCKETIO_PRESENCE=("^a", "b$"), SOCKETIO_PRESENCE_TIMEOUT=1.5)


def test_pattern_channel_tracks_every_subscriber_under_its_id():
    alice, bob = SocketIOTestClient(), SocketIOTestClient()
    first = alice.subscribe("room-1")
    assert first["ok"] is True and listing(first["presence"]) == {alice.sid: [{}]}
    ref = first["presence"][alice.sid][0][PRESENCE_REF]
    assert isinstance(ref, str) and ref
    second = bob.subscribe("room-1")
    assert listing(second["presence"]) == {alice.sid: [{}], bob.sid: [{}]}
    assert second["presence"][alice.sid][0][PRESENCE_REF] == ref  # the same meta
    assert changes(alice) == [{"channel": "room-1", "joins": {bob.sid: [{}]}, "leaves": {}}]
    assert changes(bob) == []  # its own join is in its state
    assert presence("room-1") == {alice.sid: [{}], bob.sid: [{}]}
    # a channel without presence is as before
    assert alice.subscribe("other") == {"ok": True}


def test_a_key_with_two_metas_leaves_when_its_last_meta_does(as_user):
    ann = as_user("ann", tab=1)
    ann.subscribe("room-1")
    bob1 = as_user("bob", tab=1)
    bob1.subscribe("room-1")
    bob2 = as_user("bob", tab=2)
    reply = bob2.subscribe("room-1")
    assert listing(reply["presence"]) == {"ann": [{"tab": 1}], "bob": [{"tab": 1}, {"tab": 2}]}
    assert presence("room-1") == {"ann": [{"tab": 1}], "bob": [{"tab": 1}, {"tab": 2}]}
    changes(ann)
    bob1.disconnect()  # one tab closed: an update of bob, not a leave
    assert changes(ann) == [{"channel": "room-1", "joins": {}, "leaves": {"bob": [{"tab": 1}]}}]
    assert presence("room-1") == {"ann": [{"tab": 1}], "bob": [{"tab": 2}]}
    assert changes(bob2) == [{"channel": "room-1", "joins": {}, "leaves": {"bob": [{"tab": 1}]}}]
    bob2.unsubscribe("room-1")  # the last one
    assert changes(ann) == [{"channel": "room-1", "joins": {}, "leaves": {"bob": [{"tab": 2}]}}]
    assert presence("room-1") == {"ann": [{"tab": 1}]}
    assert changes(bob2) == []  # gone from the channel: it sees nothing more
    as_user("cy").subscribe("room-1")
    assert changes(bob2) == []


def test_track_again_is_one_update(as_user, handler):
    def typing(request, socket, context, channel, meta):
        socket.track(channel, request.auth["user"], meta)

    events.on("typing")(typing)
    try:
        ann, bob = as_user("ann"), as_user("bob", typing=False)
        ann.subscribe("room-1")
        bob.subscribe("room-1")
        changes(ann)
        bob.emit("typing", "room-1", {"typing": True})
        [change] = changes(ann)
        assert change == {
            "channel": "room-1",
            "joins": {"bob": [{"typing": True}]},
            "leaves": {"bob": [{"typing": False}]},
        }
        assert changes(bob) == [change]  # the socket sees its own update
        assert presence("room-1") == {"ann": [{}], "bob": [{"typing": True}]}
    finally:
        events.named["typing"].disconnect(typing)


def test_untrack_keeps_the_subscription_and_counts_what_is_left(as_user, handler):
    seen: list[Any] = []

    def leave(request, socket, context, channel):
        seen.append(socket.untrack(channel))  # before the automatic one: it counts

    handler(events.on_unsubscribe, leave, channel="^room-")
    ann, bob1, bob2 = as_user("ann"), as_user("bob"), as_user("bob")
    for client in (ann, bob1, bob2):
        client.subscribe("room-1")
    bob1.disconnect()
    bob2.disconnect()
    assert seen == [1, 0]  # bob still had a tab, then none: bob left
    socket = clients.get(ann.sid).socket
    changes(ann)
    assert socket.untrack("room-1") == 0
    assert socket.untrack("room-1") is None  # not tracked any more
    assert presence("room-1") == {}
    assert changes(ann) == [{"channel": "room-1", "joins": {}, "leaves": {"ann": [{}]}}]
    as_user("cy").subscribe("room-1")  # still subscribed: it still sees the others
    assert changes(ann) == [{"channel": "room-1", "joins": {"cy": [{}]}, "leaves": {}}]


def test_a_refused_subscription_appears_in_none_and_sees_none(as_user, handler):
    def gate(request, socket, context, channel):
        if request.auth.get("user") == "mallory":
            raise Denied("not you")

    # registered after the tracking handler: track() has run when it refuses
    handler(events.on_subscribe, gate, channel="^room-")
    ann = as_user("ann")
    ann.subscribe("room-1")
    changes(ann)
    mallory = as_user("mallory")
    assert mallory.subscribe("room-1") == {"ok": False, "error": "not you"}
    assert presence("room-1") == {"ann": [{}]}
    assert changes(ann) == []
    as_user("bob").subscribe("room-1")
    assert mallory.get_received() == []
    assert clients.get(mallory.sid).socket._presence == {}


def test_a_track_that_raises_refuses_and_tracks_nothing(handler):
    def broken(request, socket, context, channel):
        socket.track(channel, "ann", {"when": object()})

    handler(events.on_subscribe, broken, channel="^room-")
    client = SocketIOTestClient()
    assert client.subscribe("room-1") == {"ok": False, "error": "server error"}
    assert presence("room-1") == {}


def test_untrack_in_on_subscribe_watches_without_being_tracked(as_user, handler):
    def watcher(request, socket, context, channel):
        if (request.auth or {}).get("watch"):
            socket.untrack(channel)

    handler(events.on_subscribe, watcher, channel="^room-")
    ann = as_user("ann")
    ann.subscribe("room-1")
    watch = SocketIOTestClient(auth={"watch": True})
    reply = watch.subscribe("room-1")
    assert listing(reply["presence"]) == {"ann": [{}]}
    assert presence("room-1") == {"ann": [{}]}
    as_user("bob").subscribe("room-1")
    assert changes(watch) == [{"channel": "room-1", "joins": {"bob": [{}]}, "leaves": {}}]


def test_a_channel_without_a_pattern_has_presence_for_tracked_subscriptions(as_user):
    plain = SocketIOTestClient()
    assert plain.subscribe("opt-1") == {"ok": True}
    with pytest.raises(PresenceError, match="'opt-1' has no presence"):
        presence("opt-1")
    ann = as_user("ann")
    assert listing(ann.subscribe("opt-1")["presence"]) == {"ann": [{}]}
    bob = as_user("bob")
    assert listing(bob.subscribe("opt-1")["presence"]) == {"ann": [{}], "bob": [{}]}
    assert presence("opt-1") == {"ann": [{}], "bob": [{}]}
    assert changes(ann) == [{"channel": "opt-1", "joins": {"bob": [{}]}, "leaves": {}}]
    assert changes(plain) == []  # a subscription that is not tracked sees nothing
    ann.disconnect()
    bob.disconnect()
    with pytest.raises(PresenceError, match="no pattern of SOCKETIO_PRESENCE"):
        presence("opt-1")


def test_track_after_subscribing_starts_presence_with_the_state_as_an_event():
    ann, bob = SocketIOTestClient(), SocketIOTestClient()
    ann.subscribe("plain-1")
    bob.subscribe("plain-1")
    clients.get(ann.sid).socket.track("plain-1", "ann", {"n": 1})
    assert changes(ann) == [{"channel": "plain-1", "state": {"ann": [{"n": 1}]}}]
    clients.get(bob.sid).socket.track("plain-1", "bob")
    assert changes(bob) == [{"channel": "plain-1", "state": {"ann": [{"n": 1}], "bob": [{}]}}]
    assert changes(ann) == [{"channel": "plain-1", "joins": {"bob": [{}]}, "leaves": {}}]


def test_a_server_side_subscribe_gets_the_state_as_an_event():
    ann = SocketIOTestClient()
    ann.subscribe("room-1")
    bob = SocketIOTestClient()
    socket = clients.get(bob.sid).socket
    socket.track("room-1", "bob", {"via": "server"})
    assert socket.subscribe("room-1") is None
    assert changes(bob) == [
        {"channel": "room-1", "state": {ann.sid: [{}], "bob": [{"via": "server"}]}}
    ]
    assert changes(ann) == [
        {"channel": "room-1", "joins": {"bob": [{"via": "server"}]}, "leaves": {}}
    ]
    socket.unsubscribe("room-1")
    assert changes(ann) == [
        {"channel": "room-1", "joins": {}, "leaves": {"bob": [{"via": "server"}]}}
    ]


def test_subscribing_twice_answers_the_state_again():
    ann = SocketIOTestClient()
    first = ann.subscribe("room-1")
    assert ann.subscribe("room-1") == first
    assert presence("room-1") == {ann.sid: [{}]}


def test_namespaces_have_their_own_presence(handler):
    handler(events.on_connect, lambda request, socket, context: None, namespace="/admin")
    main, admin = SocketIOTestClient(), SocketIOTestClient(namespace="/admin")
    main.subscribe("room-1")
    reply = admin.subscribe("room-1")
    assert listing(reply["presence"]) == {admin.sid: [{}]}
    assert presence("room-1") == {main.sid: [{}]}
    assert presence("room-1", namespace="/admin") == {admin.sid: [{}]}
    assert changes(main) == []


@pytest.mark.parametrize(
    ("key", "meta", "error"),
    [
        (42, {}, "key must be a string, not int"),
        ("", {}, "key must not be empty"),
        ("k" * 201, {}, "at most 200 characters, not 201"),
        ("ann", ["a", "list"], "meta must be a dict"),
        ("ann", {"when": object()}, "must be JSON-serialisable"),
        ("ann", {"x": float("nan")}, "must be JSON-serialisable"),
        (
            "ann",
            {"blob": "x" * 2100},
            "2111 bytes as JSON; SOCKETIO_PRESENCE_MAX_META_BYTES allows 2048",
        ),
        ("ann", {PRESENCE_REF: "mine"}, "must not have the key 'wsio:ref'"),
    ],
)
def test_bad_input_is_a_clear_error_and_changes_nothing(key, meta, error):
    ann = SocketIOTestClient()
    ann.subscribe("room-1")
    socket = clients.get(ann.sid).socket
    socket.track("room-1", "ann", {"ok": 1})
    before = presence("room-1")
    changes(ann)
    with pytest.raises(PresenceError, match=error.replace("(", r"\(")):
        socket.track("room-1", key, meta)
    assert presence("room-1") == before == {"ann": [{"ok": 1}]}
    assert changes(ann) == []
    with pytest.raises(webpy_socketio.InvalidChannel):
        socket.track("", "ann", {})


def test_the_meta_limit_is_a_setting():
    webpy_socketio.configure(SOCKETIO_PRESENCE_MAX_META_BYTES=20)
    ann = SocketIOTestClient()
    ann.subscribe("room-1")
    socket = clients.get(ann.sid).socket
    socket.track("room-1", "ann", {"n": "x" * 12})  # {"n":"xxxxxxxxxxxx"}: 20 bytes
    with pytest.raises(PresenceError, match="21 bytes"):
        socket.track("room-1", "ann", {"n": "x" * 13})
    assert presence("room-1") == {"ann": [{"n": "x" * 12}]}


def test_presence_returns_copies():
    ann = SocketIOTestClient()
    ann.subscribe("room-1")
    clients.get(ann.sid).socket.track("room-1", "ann", {"tags": ["a"]})
    presence("room-1")["ann"][0]["tags"].append("changed")
    assert presence("room-1") == {"ann": [{"tags": ["a"]}]}


def test_a_key_and_meta_survive_json_exactly():
    ann = SocketIOTestClient()
    meta = {"name": "Ünïcode \u2028 ☃", "big": 2**60, "tab": "\t", "nested": {"empty": []}}
    ann.subscribe("room-1")
    clients.get(ann.sid).socket.track("room-1", 'key "quoted"\t\u00e9', meta)
    assert presence("room-1") == {'key "quoted"\t\u00e9': [meta]}
