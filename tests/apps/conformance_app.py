"""The conformance tests' server: the reference server of the Socket.IO
protocol's test suite, written with webpy_socketio's public API only.

* on connect, to the main namespace or to ``/custom``: the event ``auth``
  with the client's CONNECT payload (``{}`` when there was none);
* ``message``: echoed back as the event ``message-back`` with all its
  arguments (``on_message`` receives one value; several arguments arrive
  as one list);
* ``message-with-ack``: acknowledged with all its arguments.

``/custom`` echoes too, so that the tests can tell the namespaces apart on
one Engine.IO session. Every other namespace has no handler and is unknown.

Run as ``python conformance_app.py PORT`` with
``WSIO_SETTINGS_MODULE=conformance_settings``.
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

import web  # noqa: E402

from webpy_socketio import SocketIOServer, on, socketio_urls  # noqa: E402
from webpy_socketio.events import on_connect, on_message  # noqa: E402

urls = ("/", "Index") + socketio_urls


def _auth(request):
    return {} if request.auth is None else request.auth


def _arguments(message):
    # several arguments reach on_message as one list
    return message if isinstance(message, list) else [message]


@on_connect
def main_connected(request, socket, context):
    socket.emit("auth", _auth(request))


@on_connect(namespace="/custom")
def custom_connected(request, socket, context):
    socket.emit("auth", _auth(request))


@on_message
def main_message(request, socket, context, message):
    socket.emit("message-back", *_arguments(message))


@on_message(namespace="/custom")
def custom_message(request, socket, context, message):
    socket.emit("message-back", *_arguments(message))


@on("message-with-ack")
def main_message_with_ack(request, socket, context, *args):
    return args


@on("message-with-ack", namespace="/custom")
def custom_message_with_ack(request, socket, context, *args):
    return args


class Index:
    def GET(self):
        return "webpy-socketio conformance server"


app = web.application(urls, globals(), autoreload=False)

if __name__ == "__main__":
    port = int(sys.argv[1])
    print(f"listening on 127.0.0.1:{port}", flush=True)
    SocketIOServer(("127.0.0.1", port), app.wsgifunc()).serve_forever()
