"""Socket.IO handlers of the runserver test project."""

from webpy_socketio.events import on, on_message

VALUE = "v1"


@on("value")
def value(request, socket, context):
    return VALUE


@on_message
def echo(request, socket, context, message):
    return {"echo": message, "value": VALUE}


@on_message(channel="^room-")
def relay(request, socket, context, message):
    # a channel with history when the tests turn SOCKETIO_HISTORY on
    socket.broadcast_channel(message)
