"""{{ cookiecutter.project_name }}: a web.py application with realtime websockets.

Serve it from this folder with ``wsio runserver`` (it reloads on every
change) or ``python app.py [PORT]``.
"""

from gevent import monkey

# Before anything imports web.py: web.py binds threading.local when it is
# imported, and unpatched it would share web.ctx between concurrent requests.
monkey.patch_all()

import os
import sys

import web
from webpy_socketio import SocketIOServer, WebpySocketIOError, socketio_urls
from webpy_socketio.templating import template_lookup

import events  # noqa: F401  (registers the Socket.IO handlers)
import settings

HERE = os.path.dirname(os.path.abspath(__file__))
TITLE = "{{ cookiecutter.project_name }}"

urls = ("/", "Index")
urls += socketio_urls

web.config.debug = settings.DEBUG
# autoreload off: web.py's own reloader re-imports modules inside a running
# server; `wsio runserver` restarts the whole process instead
app = web.application(urls, globals(), autoreload=False)

# "h" escapes every ${value} in the templates, so user text cannot inject HTML
lookup = template_lookup([os.path.join(HERE, "templates")], default_filters=["h"])


def render(name: str, **values: object) -> str:
    web.header("Content-Type", "text/html; charset=utf-8")
    return lookup.get_template(name).render(title=TITLE, **values)


class Index:
    def GET(self) -> str:
        return render("index.html")


if __name__ == "__main__":
    # static/ (and a local copy of the socket.io client in it) is looked up
    # from the working folder
    os.chdir(HERE)
    from webpy_socketio import settings as wsio_settings

    host = wsio_settings.SOCKETIO_HOST
    port = int(sys.argv[1]) if len(sys.argv) > 1 else wsio_settings.SOCKETIO_PORT
    server = SocketIOServer((host, port), app.wsgifunc())
    try:
        server.start()  # binds the port
    except WebpySocketIOError as exc:  # the port is taken, the message queue is down, ...
        sys.exit(f"Error: {exc}")
    print(f"Serving {TITLE} on http://{host}:{port}/", flush=True)
    server.serve_forever()
