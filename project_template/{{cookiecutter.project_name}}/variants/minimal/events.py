"""Socket.IO handlers; app.py imports this module.

Every handler receives ``(request, socket, context, *args)``: the request
that opened the connection, the server-side socket, and a dict that lives
as long as the connection. See the webpy-socketio README for the other
events (on_connect, on_subscribe, on_unsubscribe, on_disconnect, ...).
"""

from __future__ import annotations

from webpy_socketio.events import on_message


@on_message
def echo(request, socket, context, message):
    """Acknowledge every message with the message itself and how many this
    connection has sent (the browser's ``socket.send(data, callback)``)."""
    context["count"] = context.get("count", 0) + 1
    return {"echo": message, "count": context["count"]}
