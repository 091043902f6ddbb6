"""A small project for the wsio runserver tests (copied to a temporary
folder and edited there while the server runs)."""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402

import events  # noqa: E402
import web  # noqa: E402

from webpy_socketio import NoSocket, broadcast_channel, socketio_urls  # noqa: E402
from webpy_socketio.engine import get_engine  # noqa: E402
from webpy_socketio.templating import template_lookup  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

urls = (
    "/",
    "Index",
    "/value",
    "Value",
    "/say/(.+)",
    "Say",
    "/rooms",
    "Rooms",
    "/crash",
    "Crash",
)
urls += socketio_urls

app = web.application(urls, globals(), autoreload=False)
lookup = template_lookup([os.path.join(HERE, "templates")], default_filters=["h"])


def as_json(value):
    web.header("Content-Type", "application/json")
    return json.dumps(value)


class Index:
    def GET(self):
        web.header("Content-Type", "text/html; charset=utf-8")
        return lookup.get_template("index.html").render()


class Value:
    def GET(self):
        return as_json({"value": events.VALUE, "pid": os.getpid()})


class Say:
    def GET(self, channel):
        message = {"said": events.VALUE}
        if "n" in web.input():
            message["n"] = int(web.input().n)
        try:
            broadcast_channel(message, channel)
        except NoSocket:
            return as_json({"sent": False})
        return as_json({"sent": True})


class Rooms:
    def GET(self):
        rooms = get_engine().manager.rooms.get("/", {})
        return as_json({r: sorted(m) for r, m in rooms.items() if r and r.startswith("#")})


class Crash:
    def GET(self):
        # a worker that dies at run time (as a segfaulting extension would)
        os._exit(3)
