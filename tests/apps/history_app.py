"""A web.py app whose ``room-*`` and ``small-*`` channels keep history, for
tests/test_history_servers.py. Run as ``python history_app.py PORT`` with
WSIO_SETTINGS_MODULE=history_settings.

- a client's message to its channels is relayed to the others
  (``broadcast_channel``), acked with ``{"relayed": true}``;
- ``GET /oob/<channel>?n=N`` sends ``{"n": N}`` to the channel out of band;
- ``GET /history/<channel>?limit=L`` is the server API's page, as JSON;
- ``GET /pid`` says which process answered (several run behind nginx).
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import web  # noqa: E402

from webpy_socketio import SocketIOServer, broadcast_channel, history, socketio_urls  # noqa: E402
from webpy_socketio.events import on_message  # noqa: E402

urls = ("/oob/(.+)", "Oob", "/history/(.+)", "History", "/pid", "Pid") + socketio_urls


@on_message
def relay(request, socket, context, message):
    socket.broadcast_channel(message)
    return {"relayed": True}


class Oob:
    def GET(self, channel):
        broadcast_channel({"n": int(web.input(n="0").n)}, channel)
        return "sent"


class History:
    def GET(self, channel):
        web.header("Content-Type", "application/json")
        return json.dumps(history(channel, limit=int(web.input(limit="50").limit)).as_dict())


class Pid:
    def GET(self):
        return str(os.getpid())


app = web.application(urls, globals())
application = app.wsgifunc()

if __name__ == "__main__":
    SocketIOServer(("127.0.0.1", int(sys.argv[1])), application, log=None).serve_forever()
