"""Socket.IO handlers of the chat; app.py imports this module.

The page connects with ``io({auth: {name}})``, subscribes to the channel
``room-<room>`` and sends ``{"room": ..., "text": ...}`` messages. Every
message the server sends has a ``type``: ``chat``, ``system`` or
``history``. Room channels keep their last messages (``SOCKETIO_HISTORY``
in settings.py): a newcomer gets them, and a page that reconnects gets what
it missed, in order.

Who is in a room is the channel's presence (``SOCKETIO_PRESENCE`` in
settings.py): one key per name, one meta per tab, shared by every server
process when there are several. The page shows it with
``socket.presence(channel)``.
"""

from __future__ import annotations

import hashlib

from webpy_socketio import Denied, history, presence
from webpy_socketio.events import on_connect, on_message, on_subscribe, on_unsubscribe

MAX_NAME = 24
MAX_TEXT = 1000
ROOM_PREFIX = "room-"
#: set by the page: one id per browser, so its tabs are one person
VISITOR_COOKIE = "visitor"


def clean_text(value: object, limit: int) -> str | None:
    """``value`` stripped, or None when it is not a string of 1 to ``limit``
    printable characters."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > limit or not value.isprintable():
        return None
    return value


@on_connect
def check_name(request, socket, context):
    auth = request.auth if isinstance(request.auth, dict) else {}
    name = clean_text(auth.get("name"), MAX_NAME)
    if name is None:
        raise Denied(f"Choose a name of 1 to {MAX_NAME} characters.")
    context["name"] = name
    # who holds the name: this browser, else this connection (only a digest
    # of it is shown to the others)
    visitor = request.cookies.get(VISITOR_COOKIE) or socket.session_id
    context["owner"] = hashlib.sha256(visitor.encode()).hexdigest()[:16]


@on_subscribe(channel=f"^{ROOM_PREFIX}")
def join(request, socket, context, channel):
    name = context["name"]
    key = name.casefold()
    tabs = presence(channel).get(key, [])
    if any(tab["owner"] != context["owner"] for tab in tabs):
        raise Denied(f"The name {name} is taken in this room; choose another one.")
    # tracked once every handler agreed: the room's pages see the join
    socket.track(channel, key, {"name": name, "owner": context["owner"]})
    if socket.since(channel) is None:
        # a newcomer: the room's last messages (a page coming back from a
        # lost connection gets what it missed from the history instead)
        recent = [m["data"] for m in history(channel, limit=50).messages]
        socket.send({"type": "history", "messages": recent})
    if not tabs:  # another tab of the same person is no news
        # the socket enters the channel once every handler agreed, so the
        # newcomer gets this through send_and_broadcast_channel's own send
        socket.send_and_broadcast_channel({"type": "system", "text": f"{name} joined"}, channel)


@on_unsubscribe(channel=f"^{ROOM_PREFIX}")
def leave(request, socket, context, channel):
    # also runs for every channel of a socket that disconnects (a closed
    # tab); untrack() says how many tabs the name still has: 0 when this was
    # the last one, in every process
    if socket.untrack(channel) == 0:
        socket.broadcast_channel({"type": "system", "text": f"{context['name']} left"}, channel)


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
