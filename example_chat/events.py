"""Socket.IO handlers of the chat demo; app.py imports this module.

Channels:

- ``room-<id>``: a chat room. The page connects with
  ``io({auth: {name}})`` and subscribes; the name must be free in that room
  (or be this browser's: two tabs of one person are one member). It then
  sends ``{"room": id, "text": ...}`` messages. Who is in the room is the
  channel's presence (``SOCKETIO_PRESENCE`` in settings.py): one key per
  name, one meta per tab, kept across every server process.
- ``lobby``: the rooms list page, kept up to date with member counts.

Every message the server sends has a ``type``: ``history``, ``chat``,
``system``, ``notice`` or ``rooms``. Room channels keep a history
(``SOCKETIO_HISTORY`` in settings.py): a page that reconnects gets what it
missed, in order; the stored messages (SQLite) carry an ``id``.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from webpy_socketio import Denied, presence
from webpy_socketio.events import on, on_connect, on_message, on_subscribe, on_unsubscribe

import model

MAX_NAME = 24
MAX_TEXT = 1000
LOBBY = "lobby"
ROOM_CHANNEL = re.compile(r"^room-(\d{1,9})$")
#: the cookie that tells one browser from another (set by the room page)
VISITOR_COOKIE = "chat_visitor"


def clean_text(value: Any, limit: int) -> str | None:
    """``value`` stripped, or None unless it is a string of 1 to ``limit``
    printable characters."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > limit or not value.isprintable():
        return None
    return value


def room_channel(room_id: int) -> str:
    return f"room-{room_id}"


def member_key(name: str) -> str:
    """The presence key of a name: one per room, whatever its case."""
    return name.casefold()


def with_counts(rooms: list[Any], joining: int | None = None) -> list[Any]:
    """The rooms with ``members``: how many people are in each (``joining``:
    a room someone is entering, not in its presence yet)."""
    for room in rooms:
        room.members = len(presence(room_channel(room.id))) + (room.id == joining)
    return rooms


def rooms_message(joining: int | None = None) -> dict[str, Any]:
    return {
        "type": "rooms",
        "rooms": [
            {"id": r.id, "name": r.name, "members": r.members}
            for r in with_counts(model.rooms(), joining)
        ],
    }


def _room_id(channel: str) -> int | None:
    match = ROOM_CHANNEL.match(channel)
    return int(match.group(1)) if match else None


@on_connect
def remember_name(request, socket, context):
    # the rooms list page connects without a name; a room needs one
    auth = request.auth if isinstance(request.auth, dict) else {}
    if auth.get("name") is None:
        context["name"] = None
        return
    name = clean_text(auth["name"], MAX_NAME)
    if name is None:
        raise Denied(f"Choose a name of 1 to {MAX_NAME} characters.")
    context["name"] = name
    # who holds a name: this browser (its cookie), else this connection;
    # published with each member, so only a digest of it
    visitor = request.cookies.get(VISITOR_COOKIE) or socket.session_id
    context["owner"] = hashlib.sha256(visitor.encode()).hexdigest()[:16]


@on_subscribe
def known_channels_only(request, socket, context, channel):
    if channel != LOBBY and _room_id(channel) is None:
        raise Denied("There is no such channel.")


@on_subscribe(channel=f"^{LOBBY}$")
def watch_rooms(request, socket, context, channel):
    socket.send(rooms_message())


@on_subscribe(channel="^room-")
def join(request, socket, context, channel):
    room_id = _room_id(channel)
    if room_id is None or model.room(room_id) is None:
        raise Denied("There is no such room.")
    name = context.get("name")
    if name is None:
        raise Denied("Choose a name before you join.")
    key = member_key(name)
    tabs = presence(channel).get(key, [])
    if any(tab.get("owner") != context["owner"] for tab in tabs):
        raise Denied(f"Someone called {name} is already here; choose another name.")
    # tracked once every handler agreed; the room's pages see the join
    socket.track(channel, key, {"name": name, "owner": context["owner"]})
    # the socket enters the channel once every handler agreed, so the
    # newcomer gets its copies through send_and_broadcast_channel's own send.
    # A page coming back from a lost connection subscribes since the last
    # message it saw: the channel's history replays what it missed, so it
    # needs no snapshot (it asks for one, "recent", if the history cannot).
    if socket.since(channel) is None:
        socket.send({"type": "history", "messages": model.recent_messages(room_id)})
    if not tabs:  # a second tab of the same person is no news
        socket.send_and_broadcast_channel(
            model.add_message(room_id, "system", f"{name} joined"), channel
        )
        socket.broadcast_channel(rooms_message(joining=room_id), LOBBY)


@on_unsubscribe(channel="^room-")
def leave(request, socket, context, channel):
    # also runs for each channel of a socket that disconnects: a closed tab.
    # untrack() says how many tabs the name still has, in every process: 0
    # when this was the last one
    room_id = _room_id(channel)
    if room_id is None or socket.untrack(channel) != 0:
        return
    name = context["name"]
    socket.broadcast_channel(model.add_message(room_id, "system", f"{name} left"), channel)
    socket.broadcast_channel(rooms_message(), LOBBY)


@on("recent", channel="^room-")
def recent(request, socket, context, room):
    """The room's last messages, for a page whose gap the history could not
    fill (``wsio:recovery-failed``)."""
    channel = room_channel(room) if isinstance(room, int) else None
    if channel is None or channel not in socket.channels:
        return {"ok": False, "error": "Join the room first."}
    return {"ok": True, "messages": model.recent_messages(room)}


@on_message(channel="^room-")
def say(request, socket, context, message):
    if not isinstance(message, dict):
        return {"ok": False, "error": "Send {room, text}."}
    room = message.get("room")
    channel = room_channel(room) if isinstance(room, int) else None
    if channel is None or channel not in socket.channels:
        return {"ok": False, "error": "Join the room first."}
    text = clean_text(message.get("text"), MAX_TEXT)
    if text is None:
        return {"ok": False, "error": f"A message has 1 to {MAX_TEXT} characters."}
    socket.send_and_broadcast_channel(
        model.add_message(room, "chat", text, context["name"]), channel
    )
    return {"ok": True}
