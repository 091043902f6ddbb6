"""The chat demo: rooms, live member lists and messages on SQLite, and an
admin page that sends notices out of band.

Serve it from this folder with ``wsio runserver``, or ``python app.py [PORT]``.
"""

from gevent import monkey

# Before anything imports web.py: web.py binds threading.local when it is
# imported, and unpatched it would share web.ctx between concurrent requests.
monkey.patch_all()

import base64
import hmac
import os
import sys
from urllib.parse import urlsplit

import web
from webpy_socketio import (
    NoSocket,
    SocketIOServer,
    WebpySocketIOError,
    broadcast,
    broadcast_channel,
    socketio_urls,
)
from webpy_socketio.templating import client_source, template_lookup

import events
import model
import settings

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_ROOM_NAME = 40
MAX_NOTICE = 500
LOOPBACK = ("127.0.0.1", "::1")
PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP", "HTTP_FORWARDED")

urls = (
    "/",
    "Rooms",
    r"/rooms/(\d{1,9})",
    "Room",
    "/admin",
    "Admin",
)
urls += socketio_urls

web.config.debug = settings.DEBUG
# autoreload off: web.py's reloader re-imports modules inside a running
# server; `wsio runserver` restarts the whole process instead
app = web.application(urls, globals(), autoreload=False)
# "h" HTML-escapes every ${value}: room names, member names and notices are
# user text
lookup = template_lookup([os.path.join(HERE, "templates")], default_filters=["h"])
model.setup()


def render(template: str, **values: object) -> str:
    web.header("Content-Type", "text/html; charset=utf-8")
    return lookup.get_template(template).render(**values)


# -- processors ----------------------------------------------------------------------


def security_headers(handler):
    # no inline script or style anywhere: a message that slipped past
    # escaping still could not run
    client_url = client_source()[0]
    scripts = "'self'"
    if client_url.startswith(("http://", "https://")):
        parts = urlsplit(client_url)
        scripts += f" {parts.scheme}://{parts.netloc}"
    web.header(
        "Content-Security-Policy",
        f"default-src 'self'; script-src {scripts}; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    )
    web.header("X-Content-Type-Options", "nosniff")
    web.header("Referrer-Policy", "same-origin")
    return handler()


def _hostname(host_header: str) -> str:
    return (urlsplit("//" + host_header).hostname or "") if host_header else ""


def same_origin_posts(handler):
    # a form posted from another site (cross-site request forgery) carries
    # that site's Origin; browsers always send Origin with a POST. Only host
    # names are compared: behind a proxy that ends TLS, the scheme and port
    # the browser used differ from the ones this server sees.
    if web.ctx.method == "POST":
        origin = web.ctx.env.get("HTTP_ORIGIN")
        if origin is not None:
            ours = {
                _hostname(web.ctx.env.get(name, ""))
                for name in ("HTTP_HOST", "HTTP_X_FORWARDED_HOST")
            }
            if (urlsplit(origin).hostname or "") not in ours - {""}:
                raise web.forbidden("Forms can only be posted from this site.")
    return handler()


app.add_processor(security_headers)
app.add_processor(same_origin_posts)


def lobby_update() -> None:
    """Send the room list with member counts to the rooms page watchers."""
    try:
        broadcast_channel(events.rooms_message(), events.LOBBY)
    except NoSocket:
        pass  # nobody is looking at the rooms list


# -- pages ---------------------------------------------------------------------------


class Rooms:
    def GET(self):
        return render("rooms.html", rooms=model.rooms(), error=None, name="")

    def POST(self):
        name = events.clean_text(web.input(name="").name, MAX_ROOM_NAME)
        if name is None:
            web.ctx.status = "400 Bad Request"
            error = f"A room name has 1 to {MAX_ROOM_NAME} characters."
            return render("rooms.html", rooms=model.rooms(), error=error, name="")
        try:
            room_id = model.create_room(name)
        except model.RoomExists:
            web.ctx.status = "409 Conflict"
            error = f"There is already a room called {name}."
            return render("rooms.html", rooms=model.rooms(), error=error, name=name)
        lobby_update()
        raise web.seeother(f"/rooms/{room_id}")


class Room:
    def GET(self, room_id):
        room = model.room(int(room_id))
        if room is None:
            raise web.notfound(render("missing.html"))
        return render("room.html", room=room, max_name=events.MAX_NAME)


def admin_allowed() -> bool:
    env = web.ctx.env
    password = settings.CHAT_ADMIN_PASSWORD
    if password:
        header = env.get("HTTP_AUTHORIZATION", "")
        if not header.startswith("Basic "):
            return False
        try:
            given = base64.b64decode(header[6:], validate=True)
        except ValueError:
            return False
        return hmac.compare_digest(given, b"admin:" + password.encode())
    # without a password: only a browser on this machine, talking to us
    # directly (behind a proxy every request comes from 127.0.0.1)
    return env.get("REMOTE_ADDR") in LOOPBACK and not any(env.get(h) for h in PROXY_HEADERS)


class Admin:
    def _check(self) -> None:
        if admin_allowed():
            return
        if settings.CHAT_ADMIN_PASSWORD:
            raise web.HTTPError(
                "401 Unauthorized",
                {"WWW-Authenticate": 'Basic realm="chat admin"', "Content-Type": "text/plain"},
                "The admin page needs the admin password.",
            )
        raise web.forbidden(
            "The admin page only answers this machine; set CHAT_ADMIN_PASSWORD to use it "
            "from elsewhere."
        )

    def GET(self):
        self._check()
        return render("admin.html", rooms=model.rooms(), result=None, error=None)

    def POST(self):
        self._check()
        form = web.input(text="", target="all")
        rooms = model.rooms()
        text = events.clean_text(form.text, MAX_NOTICE)
        targets = rooms if form.target == "all" else [r for r in rooms if str(r.id) == form.target]
        error = None
        if text is None:
            error = f"A notice has 1 to {MAX_NOTICE} characters."
        elif not targets:
            error = "There is no such room."
        if error:
            web.ctx.status = "400 Bad Request"
            return render("admin.html", rooms=rooms, result=None, error=error)
        for room in targets:
            notice = model.add_message(room.id, "notice", text)
        try:
            if form.target == "all":
                # everyone: the rooms list page shows it too
                broadcast(notice)
                result = "Notice sent to everyone online."
            else:
                broadcast_channel(notice, events.room_channel(targets[0].id))
                result = f"Notice sent to {targets[0].name}."
        except NoSocket:
            result = "Notice saved; nobody is online to see it now."
        return render("admin.html", rooms=rooms, result=result, error=None)


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
    print(f"Chat demo on http://{host}:{port}/  (admin page: /admin)", flush=True)
    server.serve_forever()
