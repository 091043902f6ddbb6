"""A web.py app with handlers in two namespaces, for tests/test_namespaces.py.

Run as ``python namespace_app.py PORT``. The default namespace and
``/admin`` (connect refused without the token) each echo messages to their
channel; ``/oob/<namespace>/<channel>`` broadcasts out of band (``root`` is "/").
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

import web  # noqa: E402

from webpy_socketio import (  # noqa: E402
    Denied,
    NoSocket,
    SocketIOServer,
    broadcast_channel,
    on,
    socketio_urls,
)
from webpy_socketio import clients as registry  # noqa: E402
from webpy_socketio.engine import get_engine  # noqa: E402
from webpy_socketio.events import on_connect, on_message, on_subscribe  # noqa: E402

urls = ("/oob/([a-z]+)/(.+)", "Oob", "/stats", "Stats") + socketio_urls


@on_connect(namespace="/admin")
def admin_connect(request, socket, context):
    if (request.auth or {}).get("token") != "let-me-in":
        raise Denied("admins only")
    # sent from the connect handler: must reach the client after CONNECT
    socket.emit("welcome", socket.namespace)


@on_message
def main_message(request, socket, context, message):
    socket.broadcast_channel({"ns": "/", "text": message})
    return {"ns": socket.namespace}


@on_message(namespace="/admin")
def admin_message(request, socket, context, message):
    socket.broadcast_channel({"ns": "/admin", "text": message})
    return {"ns": socket.namespace}


@on("whoami", namespace="/admin")
def whoami(request, socket, context):
    return {"namespace": socket.namespace, "channels": socket.channels}


@on_subscribe(channel="^staff-", namespace="/admin")
def staff_only(request, socket, context, channel):
    return (request.auth or {}).get("staff") is True


class Oob:
    def GET(self, namespace, channel):
        text = web.input(text="").text
        namespace = "/" if namespace == "root" else "/" + namespace
        try:
            broadcast_channel({"ns": "oob", "text": text}, channel, namespace=namespace)
        except NoSocket:
            return "nobody"
        return "sent"


class Stats:
    def GET(self):
        import json

        engine = get_engine()
        web.header("Content-Type", "application/json")
        return json.dumps(
            {
                "eio_sessions": len(engine.eio.sockets),
                "clients": {
                    sid: client.socket.namespace for sid, client in registry.CLIENTS.items()
                },
            }
        )


app = web.application(urls, globals())

if __name__ == "__main__":
    SocketIOServer(("127.0.0.1", int(sys.argv[1])), app.wsgifunc(), log=None).serve_forever()
