"""A web.py app that exercises every part of the API, for the server tests.

Run as ``python basic_app.py PORT``; settings come from the environment
(WSIO_SETTINGS_MODULE) like a real project's.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import web  # noqa: E402

from webpy_socketio import (  # noqa: E402
    Denied,
    NoSocket,
    SocketIOServer,
    broadcast,
    broadcast_channel,
    on,
    send,
    socketio_urls,
)
from webpy_socketio import clients as registry  # noqa: E402
from webpy_socketio.engine import get_engine  # noqa: E402
from webpy_socketio.events import (  # noqa: E402
    on_connect,
    on_disconnect,
    on_error,
    on_finish,
    on_message,
    on_rate_limited,
    on_subscribe,
    on_unsubscribe,
)

urls = (
    "/",
    "Index",
    "/oob/broadcast",
    "OobBroadcast",
    "/oob/channel/(.+)",
    "OobChannel",
    "/oob/send/(.+)",
    "OobSend",
    "/stats",
    "Stats",
) + socketio_urls

# what the handlers saw, for /stats
LOG: list = []


def record(*item):
    LOG.append(list(item))


@on_connect
def connected(request, socket, context):
    if request.query.get("refuse"):
        raise Denied("go away")
    context["name"] = request.query.get("name", "anon")
    record("connect", context["name"], request.remote_addr)


@on_message
def message(request, socket, context, message):
    if not isinstance(message, dict):
        return {"echo": message}
    op = message.get("op")
    if op == "broadcast_channel":
        socket.broadcast_channel(message["data"], message.get("channel"))
    elif op == "send_and_broadcast_channel":
        socket.send_and_broadcast_channel(message["data"], message.get("channel"))
    elif op == "broadcast":
        socket.broadcast(message["data"])
    elif op == "send_and_broadcast":
        socket.send_and_broadcast(message["data"])
    elif op == "raise":
        raise RuntimeError("handler failed on purpose")
    elif op == "server_subscribe":
        socket.subscribe(message["channel"])
    elif op == "channels":
        return {"channels": sorted(socket.channels)}
    elif op == "whoami":
        return {"session_id": socket.session_id, "same": socket.session.session_id}
    return {"echo": message}


@on_message(channel="^room-")
def room_message(request, socket, context, message):
    if isinstance(message, dict) and message.get("op") == "bound":
        socket.send({"bound": "room", "channels": sorted(socket.channels)})


@on_message(channel="^lobby$")
def lobby_message(request, socket, context, message):
    if isinstance(message, dict) and message.get("op") == "bound":
        socket.send({"bound": "lobby"})


@on_subscribe
def subscribing(request, socket, context, channel):
    if channel == "forbidden":
        return False
    record("subscribe", context["name"], channel)


@on_subscribe(channel="^private-")
def private(request, socket, context, channel):
    raise Denied("private channel")


@on_subscribe(channel="^broken-")
def broken(request, socket, context, channel):
    raise ValueError("subscribe handler failed on purpose")


@on_unsubscribe
def unsubscribing(request, socket, context, channel):
    record("unsubscribe", context["name"], channel)


@on_error
def error(request, socket, context, exception):
    record("error", context.get("name"), repr(exception))
    socket.send({"error": repr(exception)})


@on_disconnect
def disconnected(request, socket, context):
    record("disconnect", context["name"], socket.disconnect_reason)


@on_finish
def finished(request, socket, context):
    record("finish", context["name"])


@on_rate_limited
def limited(request, socket, context, event_name):
    # a flood calls this once per refused event: record the first few only
    if sum(1 for item in LOG if item[0] == "rate_limited") < 20:
        record("rate_limited", context.get("name"), event_name)


# a CPU-bound handler in gevent's thread pool: it computes until another
# connection's event stops it, which only works if the loop is free meanwhile
STOP_CRUNCH = threading.Event()


@on("crunch", threaded=True)
def crunch(request, socket, context, limit):
    socket.send({"crunching": True})  # through the loop, before the ack
    stopped = False
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        sum(range(2000))
        if STOP_CRUNCH.is_set():
            stopped = True
            break
    STOP_CRUNCH.clear()
    record("crunched", context["name"], stopped)
    return {"stopped_by_another_connection": stopped, "channels": socket.channels}


@on("stop_crunch")
def stop_crunch(request, socket, context):
    STOP_CRUNCH.set()
    return True


@on("after")
def after(request, socket, context, text):
    record("after", context["name"], text)
    return text


@on("shout")
def shout(request, socket, context, text):
    return text.upper()


@on("encode")
def encode(request, socket, context, text):
    # bytes in the acknowledgement of a text event: a binary ack
    return {"encoded": text.encode()}, len(text)


class Index:
    def GET(self):
        return "webpy-socketio test app"


def _oob(function, *args):
    try:
        function(*args)
    except NoSocket as exc:
        web.ctx.status = "404 Not Found"
        return json.dumps({"nosocket": str(exc)})
    return json.dumps({"sent": True})


class OobBroadcast:
    def GET(self):
        return _oob(broadcast, {"oob": "broadcast"})


class OobChannel:
    def GET(self, channel):
        return _oob(broadcast_channel, {"oob": "channel", "channel": channel}, channel)


class OobSend:
    def GET(self, session_id):
        return _oob(send, session_id, {"oob": "send"})


class Stats:
    def GET(self):
        web.header("Content-Type", "application/json")
        rooms = get_engine().manager.rooms.get("/", {})
        return json.dumps(
            {
                "clients": sorted(registry.CLIENTS),
                "channel_rooms": {
                    r: sorted(m) for r, m in rooms.items() if r and r.startswith("#")
                },
                "log": LOG,
            }
        )


app = web.application(urls, globals())

if __name__ == "__main__":
    port = int(sys.argv[1])
    print(f"listening on 127.0.0.1:{port}", flush=True)
    SocketIOServer(("127.0.0.1", port), app.wsgifunc(), log=None).serve_forever()
