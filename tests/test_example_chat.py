"""example_chat served for real (``python app.py PORT`` in a copy of the
folder), driven over HTTP and by the official socket.io-client in Node."""

from __future__ import annotations

import base64
import itertools
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import ProjectServer, copy_project
from support import ROOT, NodeAgent, node_agent

pytestmark = [pytest.mark.server, pytest.mark.node]

_names = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}{next(_names)}"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return copy_project(ROOT / "example_chat", tmp_path_factory.mktemp("chat") / "example_chat")


@pytest.fixture(scope="module")
def chat(folder) -> Iterator[ProjectServer]:
    assert not (folder / "chat.db").exists()
    server = ProjectServer(folder, "example-chat")
    yield server
    server.stop()


@pytest.fixture
def agent() -> Iterator[NodeAgent]:
    with node_agent("example-chat") as node:
        yield node


def join(agent: NodeAgent, chat: ProjectServer, who: str, room: int, transport="websocket"):
    agent.connect(who, chat.url, transport, auth={"name": who})
    return agent.call("subscribe", who, channel=f"room-{room}")


def of_type(agent: NodeAgent, who: str, kind: str) -> list[dict]:
    return [m for m in agent.received(who) if isinstance(m, dict) and m.get("type") == kind]


def create_room(chat: ProjectServer, name: str) -> int:
    status, headers, _ = chat.request("/", data={"name": name})
    assert status == 303, (status, headers)
    return int(headers["Location"].rsplit("/", 1)[1])


# -- first run -----------------------------------------------------------------------


def test_the_database_is_created_on_first_run(chat, folder):
    assert (folder / "chat.db").is_file()
    with sqlite3.connect(folder / "chat.db") as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        rooms = [r[0] for r in db.execute("SELECT name FROM rooms ORDER BY id")]
    db.close()
    assert {"rooms", "messages", "members"} <= tables
    assert rooms[:2] == ["General", "Random"]
    status, headers, page = chat.request("/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert "General" in page and "Random" in page
    assert '<script src="/static/socket.io.min.js"></script>' in page
    assert (
        '<script src="/socket.io/wsio.js" data-client="/static/socket.io.min.js"></script>' in page
    )


# -- a room --------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_chat_in_a_room_with_history_members_and_leave(chat, agent, transport):
    room = create_room(chat, unique("Room "))
    ada, bob, cy = unique("ada"), unique("bob"), unique("cy")
    assert join(agent, chat, ada, room, transport) == {"ok": True}
    history = agent.wait_for(ada, lambda m: m.get("type") == "history")
    assert history == {"type": "history", "messages": []}
    agent.wait_for(ada, lambda m: m.get("members") == [ada])

    assert join(agent, chat, bob, room, transport) == {"ok": True}
    agent.wait_for(ada, lambda m: m.get("type") == "system" and m["text"] == f"{bob} joined")
    agent.wait_for(ada, lambda m: m.get("members") == [ada, bob])
    agent.wait_for(bob, lambda m: m.get("members") == [ada, bob])

    assert agent.call("send", ada, data={"room": room, "text": "hello <b>all</b>"}) == {"ok": True}
    said = agent.wait_for(bob, lambda m: m.get("type") == "chat")
    assert said["name"] == ada and said["text"] == "hello <b>all</b>" and said["time"]
    assert of_type(agent, ada, "chat") == [said]  # the sender gets it too, once

    # a newcomer gets the stored history, oldest first
    assert join(agent, chat, cy, room, transport) == {"ok": True}
    history = agent.wait_for(cy, lambda m: m.get("type") == "history")["messages"]
    assert [(m["type"], m["text"]) for m in history] == [
        ("system", f"{ada} joined"),
        ("system", f"{bob} joined"),
        ("chat", "hello <b>all</b>"),
    ]

    # a closed tab: the connection drops, with no unsubscribe and no
    # Socket.IO disconnect
    agent.call("drop", bob)
    agent.wait_for(ada, lambda m: m.get("type") == "system" and m["text"] == f"{bob} left")
    agent.wait_for(ada, lambda m: m.get("members") == [ada, cy])
    agent.wait_for(cy, lambda m: m.get("members") == [ada, cy])


def test_a_name_is_unique_per_room_whatever_its_case(chat, agent):
    room, other = create_room(chat, unique("Unique ")), create_room(chat, unique("Other "))
    name = unique("Zoe")
    assert join(agent, chat, "first", room) == {"ok": True}
    agent.connect("zoe", chat.url, "websocket", auth={"name": name})
    assert agent.call("subscribe", "zoe", channel=f"room-{room}") == {"ok": True}
    agent.connect("twin", chat.url, "websocket", auth={"name": name.upper()})
    reply = agent.call("subscribe", "twin", channel=f"room-{room}")
    assert reply == {
        "ok": False,
        "error": f"Someone called {name.upper()} is already here; choose another name.",
    }
    assert agent.call("subscribe", "twin", channel=f"room-{other}") == {"ok": True}
    # the refused socket is in no room: it gets nothing from the first one
    agent.call("send", "zoe", data={"room": room, "text": "only for this room"})
    agent.wait_for("first", lambda m: m.get("text") == "only for this room")
    assert not [m for m in agent.received("twin") if m.get("text") == "only for this room"]


@pytest.mark.parametrize("name", ["", "   ", "x" * 25, 42, "tab\there"])
def test_a_bad_name_is_refused_at_connect(chat, agent, name):
    with pytest.raises(AssertionError, match="Choose a name of 1 to 24 characters"):
        agent.connect("bad", chat.url, "websocket", auth={"name": name})


@pytest.mark.parametrize(
    ("channel", "error"),
    [
        ("room-999999", "There is no such room."),
        ("room-abc", "There is no such channel."),
        ("secret", "There is no such channel."),
    ],
)
def test_unknown_channels_are_refused(chat, agent, channel, error):
    agent.connect("a", chat.url, "websocket", auth={"name": "someone"})
    assert agent.call("subscribe", "a", channel=channel) == {"ok": False, "error": error}


def test_a_room_needs_a_name(chat, agent):
    agent.connect("anon", chat.url, "websocket")
    reply = agent.call("subscribe", "anon", channel="room-1")
    assert reply == {"ok": False, "error": "Choose a name before you join."}


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ("plain text", "Send {room, text}."),
        ({"room": 2, "text": "hi"}, "Join the room first."),
        ({"room": "1", "text": "hi"}, "Join the room first."),
        ({"text": "hi"}, "Join the room first."),
        ({"room": 1, "text": ""}, "A message has 1 to 1000 characters."),
        ({"room": 1, "text": "x" * 1001}, "A message has 1 to 1000 characters."),
        ({"room": 1, "text": ["a list"]}, "A message has 1 to 1000 characters."),
    ],
)
def test_bad_messages_are_refused_and_not_stored(chat, agent, folder, data, error):
    who = unique("val")
    assert join(agent, chat, who, 1) == {"ok": True}
    assert agent.call("send", who, data=data) == {"ok": False, "error": error}
    with sqlite3.connect(folder / "chat.db") as db:
        stored = db.execute("SELECT COUNT(*) FROM messages WHERE name = ?", (who,)).fetchone()
    db.close()
    assert stored == (0,)


def test_the_rooms_page_watchers_get_live_counts(chat, agent):
    room = create_room(chat, unique("Counted "))
    agent.connect("watcher", chat.url, "websocket")
    assert agent.call("subscribe", "watcher", channel="lobby") == {"ok": True}

    def count_is(n):
        def check(m):
            rooms = {r["id"]: r for r in m.get("rooms", [])}
            return room in rooms and rooms[room]["members"] == n

        return check

    agent.wait_for("watcher", count_is(0))
    join(agent, chat, "visitor", room)
    agent.wait_for("watcher", count_is(1))
    agent.call("disconnect", "visitor")
    agent.wait_for("watcher", count_is(0))
    # a new room appears for watchers the moment it is created
    created = create_room(chat, unique("Fresh "))
    agent.wait_for("watcher", lambda m: created in [r["id"] for r in m.get("rooms", [])])


def test_history_survives_a_restart_and_members_do_not(tmp_path, agent):
    # a copy of its own: a starting server empties the members table
    folder = copy_project(ROOT / "example_chat", tmp_path / "example_chat")
    server = ProjectServer(folder, "example-chat-restart")
    try:
        room = create_room(server, unique("Durable "))
        who = unique("keeper")
        join(agent, server, who, room)
        agent.call("send", who, data={"room": room, "text": "still here after a restart"})
    finally:
        server.stop()  # the socket was still connected: its membership is stale now
    server = ProjectServer(folder, "example-chat-restart")
    try:
        # the same name is free again, and the history was kept
        assert join(agent, server, "again", room) == {"ok": True}
        assert agent.call("send", "again", data={"room": room, "text": "x"}) == {"ok": True}
        history = agent.wait_for("again", lambda m: m.get("type") == "history")["messages"]
        assert "still here after a restart" in [m["text"] for m in history]
        agent.connect("same", server.url, "websocket", auth={"name": who})
        assert agent.call("subscribe", "same", channel=f"room-{room}") == {"ok": True}
    finally:
        server.stop()


# -- pages ---------------------------------------------------------------------------


def test_creating_rooms_validates_and_escapes(chat):
    name = unique("<script>alert(1)</script> ")
    room = create_room(chat, name)
    escaped = name.replace("<", "&lt;").replace(">", "&gt;")
    for path in ("/", f"/rooms/{room}", "/admin"):
        status, _, page = chat.request(path)
        assert status == 200
        assert escaped in page and "<script>alert(1)</script>" not in page

    status, _, page = chat.request("/", data={"name": name.upper()})
    assert status == 409 and "There is already a room called" in page
    for bad in ("", "   ", "x" * 41):
        status, _, page = chat.request("/", data={"name": bad})
        assert status == 400 and "A room name has 1 to 40 characters." in page
    status, _, _ = chat.request("/rooms/999999")
    assert status == 404


def test_pages_carry_a_strict_content_security_policy(chat):
    _, headers, _ = chat.request("/rooms/1")
    policy = headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy  # the local client copy: no CDN needed
    assert "'unsafe-inline'" not in policy
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_forms_posted_from_another_site_are_refused(chat):
    name = unique("Forged ")
    status, _, _ = chat.request("/", data={"name": name}, headers={"Origin": "https://evil.test"})
    assert status == 403
    assert name not in chat.request("/")[2]
    status, _, _ = chat.request("/", data={"name": name}, headers={"Origin": "null"})
    assert status == 403
    status, _, _ = chat.request("/", data={"name": name}, headers={"Origin": chat.url})
    assert status == 303
    # behind a proxy that ends TLS: the browser's origin is the public one
    proxied = {"Origin": "https://chat.example", "X-Forwarded-Host": "chat.example"}
    status, _, _ = chat.request("/", data={"name": unique("Proxied ")}, headers=proxied)
    assert status == 303


# -- admin ---------------------------------------------------------------------------


def test_admin_notice_to_all_rooms_and_to_one(chat, agent):
    room_a, room_b = create_room(chat, unique("Notice A ")), create_room(chat, unique("Notice B "))
    join(agent, chat, "in_a", room_a)
    join(agent, chat, "in_b", room_b)
    agent.connect("watcher", chat.url, "websocket")
    agent.call("subscribe", "watcher", channel="lobby")

    status, _, page = chat.request("/admin", data={"text": "Closing at 6", "target": "all"})
    assert status == 200 and "Notice sent to everyone online." in page
    for who in ("in_a", "in_b", "watcher"):
        notice = agent.wait_for(who, lambda m: m.get("type") == "notice")
        assert notice["text"] == "Closing at 6"

    status, _, page = chat.request("/admin", data={"text": "Only B", "target": str(room_b)})
    assert status == 200 and "Notice sent to Notice B" in page
    agent.wait_for("in_b", lambda m: m.get("text") == "Only B")
    # in_a's own message comes back after the notice would have: a barrier
    agent.call("send", "in_a", data={"room": room_a, "text": "barrier"})
    agent.wait_for("in_a", lambda m: m.get("text") == "barrier")
    assert [m["text"] for m in of_type(agent, "in_a", "notice")] == ["Closing at 6"]

    # notices are stored in the rooms' history
    agent.connect("late", chat.url, "websocket", auth={"name": "late"})
    agent.call("subscribe", "late", channel=f"room-{room_b}")
    history = agent.wait_for("late", lambda m: m.get("type") == "history")["messages"]
    assert [m["text"] for m in history if m["type"] == "notice"] == ["Closing at 6", "Only B"]


def test_admin_notice_with_nobody_online_is_saved(chat):
    room = create_room(chat, unique("Empty "))
    status, _, page = chat.request("/admin", data={"text": "hello?", "target": str(room)})
    assert status == 200 and "Notice saved; nobody is online to see it now." in page


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"text": "", "target": "all"}, "A notice has 1 to 500 characters."),
        ({"text": "x" * 501, "target": "all"}, "A notice has 1 to 500 characters."),
        ({"text": "hi", "target": "999999"}, "There is no such room."),
    ],
)
def test_bad_admin_notices_are_refused(chat, data, error):
    status, _, page = chat.request("/admin", data=data)
    assert status == 400 and error in page


def test_admin_answers_only_this_machine_without_a_password(chat):
    assert chat.request("/admin")[0] == 200
    for header in ("X-Forwarded-For", "X-Real-IP", "Forwarded"):
        status, _, body = chat.request("/admin", headers={header: "203.0.113.9"})
        assert status == 403 and "CHAT_ADMIN_PASSWORD" in body
        status, _, _ = chat.request("/admin", data={"text": "x"}, headers={header: "203.0.113.9"})
        assert status == 403


def test_admin_with_a_password_asks_for_it(tmp_path):
    folder = copy_project(ROOT / "example_chat", tmp_path / "example_chat")
    server = ProjectServer(folder, "example-chat-admin", env={"CHAT_ADMIN_PASSWORD": "s3cret"})
    try:
        status, headers, _ = server.request("/admin")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
        for credentials, expected in [
            ("admin:wrong", 401),
            ("root:s3cret", 401),
            ("admin:s3cret", 200),
        ]:
            token = base64.b64encode(credentials.encode()).decode()
            status, _, _ = server.request("/admin", headers={"Authorization": f"Basic {token}"})
            assert status == expected, credentials
        assert server.request("/admin", headers={"Authorization": "Basic !!!"})[0] == 401
    finally:
        server.stop()


def test_python_app_py_on_a_port_in_use_is_one_line(folder):
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "app.py", str(port)],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: Port {port} on 127.0.0.1 is already in use; stop the other server or choose "
        "another port."
    )
    assert "Traceback" not in result.stderr
