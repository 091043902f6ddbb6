"""The route fallback: a web.py app served by a plain gevent WSGIServer, so
Socket.IO traffic goes through ``urls += socketio_urls`` and through web.py's
processors, one of which reads every POST body (as CSRF or logging hooks
do). Run as ``python route_app.py PORT``."""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

import web  # noqa: E402
from gevent import pywsgi  # noqa: E402

from webpy_socketio import socketio_urls  # noqa: E402
from webpy_socketio.events import on_message  # noqa: E402

urls = ("/", "Index")
urls += socketio_urls


class Index:
    def GET(self):
        return "route app"


@on_message
def echo(request, socket, context, message):
    socket.send_and_broadcast_channel({"relay": message})
    return {"echo": message}


def greedy(handler):
    # consumes wsgi.input, as body-reading hooks do; a request with
    # greedy=no in its query is left to the route (which checks the length)
    if web.ctx.method == "POST" and "greedy=no" not in web.ctx.query:
        web.data()
    return handler()


app = web.application(urls, globals(), autoreload=False)
app.add_processor(greedy)

if __name__ == "__main__":
    port = int(sys.argv[1])
    pywsgi.WSGIServer(("127.0.0.1", port), app.wsgifunc(), log=None).serve_forever()
