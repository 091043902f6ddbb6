"""Socket.IO handlers of the chat; app.py imports this module.

The page connects with ``io({auth: {name}})``, subscribes to the channel
``room-<room>`` and sends ``{"room": ..., "text": ...}`` messages. Every
message the server sends has a ``type``: ``chat``, ``system``,
``members`` or ``history``. Room channels keep their last messages
(``SOCKETIO_HISTORY`` in settings.py): a newcomer gets them, and a page that
reconnects gets what it missed, in order.
"""

from __future__ import annotations

from webpy_socketio import Denied, history
from webpy_socketio.events import on_connect, on_message, on_subscribe, on_unsubscribe

MAX_NAME = 24
MAX_TEXT = 1000
ROOM_PREFIX = "room-"

#: channel -> {session id: name}. One server process holds every socket; with
#: several processes (SOCKETIO_MESSAGE_QUEUE), keep this in a shared store.
members: dict[str, dict[str, str]] = {}


def clean_text(value: object, limit: int) -> str | None:
    """``value`` stripped, or None when it is not a string of 1 to ``limit``
    printable characters."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > limit or not value.isprintable():
        return None
    return value


def member_names(channel: str) -> list[str]:
    return sorted(members.get(channel, {}).values(), key=str.lower)


@on_connect
def check_name(request, socket, context):
    auth = request.auth if isinstance(request.auth, dict) else {}
    name = clean_text(auth.get("name"), MAX_NAME)
    if name is None:
        raise Denied(f"Choose a name of 1 to {MAX_NAME} characters.")
    context["name"] = name


@on_subscribe(channel=f"^{ROOM_PREFIX}")
def join(request, socket, context, channel):
    room = members.setdefault(channel, {})
    name = context["name"]
    if name.lower() in (taken.lower() for taken in room.values()):
        raise Denied(f"The name {name} is taken in this room; choose another one.")
    room[socket.session_id] = name
    if socket.since(channel) is None:
        # a newcomer: the room's last messages (a page coming back from a
        # lost connection gets what it missed from the history instead)
        recent = [m["data"] for m in history(channel, limit=50).messages]
        socket.send(
            {"type": "history", "messages": [m for m in recent if m.get("type") != "members"]}
        )
    # the socket enters the channel once every handler agreed, so the
    # newcomer gets these through send_and_broadcast_channel's own send
    socket.send_and_broadcast_channel({"type": "system", "text": f"{name} joined"}, channel)
    socket.send_and_broadcast_channel(
        {"type": "members", "members": member_names(channel)}, channel
    )


@on_unsubscribe(channel=f"^{ROOM_PREFIX}")
def leave(request, socket, context, channel):
    # also runs for every channel of a socket that disconnects (a closed tab)
    name = members.get(channel, {}).pop(socket.session_id, None)
    if name is None:
        return
    if not members[channel]:
        del members[channel]
    socket.broadcast_channel({"type": "system", "text": f"{name} left"}, channel)
    socket.broadcast_channel({"type": "members", "members": member_names(channel)}, channel)


@on_message(channel=f"^{ROOM_PREFIX}")
def chat(request, socket, context, message):
    if not isinstance(message, dict):
        return {"ok": False, "error": "Send {room, text}."}
    channel = ROOM_PREFIX + str(message.get("room"))
    if channel not in socket.channels:
        return {"ok": False, "error": "Join the room first."}
    text = clean_text(message.get("text"), MAX_TEXT)
    if text is None:
        return {"ok": False, "error": f"A message has 1 to {MAX_TEXT} characters."}
    socket.send_and_broadcast_channel(
        {"type": "chat", "name": context["name"], "text": text}, channel
    )
    return {"ok": True}
