"""A web.py app for the presence tests (``python presence_app.py PORT``, or
``wsio serve --app presence_app:app``; settings: presence_settings).

A client says who it is in its connect ``auth``: ``{"user": key, "meta":
{...}}`` is tracked under that key on every ``room-`` and ``opt-`` channel
it subscribes to (``opt-`` matches no pattern: tracking turns presence on
for that subscription); ``{"watch": true}`` subscribes without being
tracked. User ``mallory`` is refused everywhere. Named events update or end the
tracking, and the pages below read presence from web.py.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import web  # noqa: E402

from webpy_socketio import (  # noqa: E402
    Denied,
    PresenceError,
    SocketIOServer,
    on,
    presence,
    socketio_urls,
)
from webpy_socketio import clients as registry  # noqa: E402
from webpy_socketio.events import on_connect, on_subscribe  # noqa: E402

CLIENT_JS = (
    Path(__file__).resolve().parent.parent
    / "node"
    / "node_modules"
    / "socket.io-client"
    / "dist"
    / "socket.io.min.js"
)

urls = (
    "/",
    "Page",
    "/client.js",
    "Client",
    "/presence/(.+)",
    "Presence",
    "/stats",
    "Stats",
) + socketio_urls


@on_connect
def who(request, socket, context):
    auth = request.auth if isinstance(request.auth, dict) else {}
    context["user"] = auth.get("user")
    context["meta"] = auth.get("meta")
    context["watch"] = bool(auth.get("watch"))


@on_subscribe(channel="^(room|opt)-")
def track(request, socket, context, channel):
    if context["watch"]:
        socket.untrack(channel)
    elif context["user"] is not None:
        socket.track(channel, context["user"], context["meta"])


@on_subscribe
def refuse(request, socket, context, channel):
    # after track() ran: a refused subscription must be in no list anyway
    if context["user"] == "mallory":
        raise Denied("no presence for you")


@on("retrack")
def retrack(request, socket, context, channel, meta):
    socket.track(channel, context["user"], meta)
    return {"ok": True}


@on("untrack")
def untrack(request, socket, context, channel):
    return {"remaining": socket.untrack(channel)}


@on("bad_track")
def bad_track(request, socket, context, channel, key, meta):
    # key and meta as the client sent them; "huge" and "unserialisable"
    # stand for values no JSON payload can carry
    if meta == "huge":
        meta = {"blob": "x" * 100_000}
    elif meta == "unserialisable":
        meta = {"when": object()}
    try:
        socket.track(channel, key, meta)
    except PresenceError as exc:
        return {"error": str(exc)}
    return {"error": None}


class Page:
    """A page that joins ``channel`` as ``user`` and keeps a log of its
    presence list (window.presenceLog) for the browser tests."""

    def GET(self):
        web.header("Content-Type", "text/html; charset=utf-8")
        return PAGE


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>presence</title></head><body>
<script src="/client.js"></script>
<script src="/socket.io/wsio.js"></script>
<script>
  const params = new URLSearchParams(location.search);
  const channel = params.get("channel");
  const auth = {user: params.get("user"), meta: JSON.parse(params.get("meta") || "{}")};
  const socket = io({auth});
  const p = socket.presence(channel);
  window.presenceLog = [];
  window.presenceList = () => p.list((key, metas) => [key, metas.length]);
  p.onSync(() => window.presenceLog.push([Date.now(), window.presenceList()]));
  window.joined = null;
  socket.on("connect", () => {
    window.subscribing = Date.now();
    socket.subscribe(channel).then((reply) => { window.joined = [Date.now(), reply]; });
  });
</script>
</body></html>
"""


class Client:
    def GET(self):
        web.header("Content-Type", "application/javascript")
        return CLIENT_JS.read_bytes()


class Presence:
    def GET(self, channel):
        web.header("Content-Type", "application/json")
        try:
            return json.dumps({"presence": presence(channel)})
        except PresenceError as exc:
            web.ctx.status = "400 Bad Request"
            return json.dumps({"error": str(exc)})


class Stats:
    def GET(self):
        web.header("Content-Type", "application/json")
        return json.dumps({"pid": os.getpid(), "clients": sorted(registry.CLIENTS)})


app = web.application(urls, globals())

if __name__ == "__main__":
    port = int(sys.argv[1])
    print(f"listening on 127.0.0.1:{port}", flush=True)
    SocketIOServer(("127.0.0.1", port), app.wsgifunc(), log=None).serve_forever()
