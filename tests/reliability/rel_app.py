"""The reliability suite's fixture app.

Every handler can be made to raise, stall, block the event loop or send
re-entrantly, on request of the client (the ``fault`` query parameter, or
an ``op`` in a message), and ``/registry`` shows what the process still
holds: sockets, contexts, channel memberships, engine.io sessions, greenlets,
file descriptors and resident memory. The tests compare it before and after
each ordeal.

Run as ``python rel_app.py PORT``; settings come from the module named by
WSIO_SETTINGS_MODULE, as in a real project.
"""

from gevent import monkey

monkey.patch_all()

import ctypes  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402

import gevent  # noqa: E402
import greenlet  # noqa: E402
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
from webpy_socketio.clients import Client  # noqa: E402
from webpy_socketio.engine import get_engine  # noqa: E402
from webpy_socketio.events import (  # noqa: E402
    on_connect,
    on_disconnect,
    on_error,
    on_finish,
    on_message,
    on_subscribe,
    on_unsubscribe,
)
from webpy_socketio.sockets import Socket  # noqa: E402

# a sleep that really blocks the whole process, as a careless handler's
# blocking library call would
blocking_sleep = monkey.get_original("time", "sleep")

urls = (
    "/",
    "Index",
    "/registry",
    "Registry",
    "/oob/channel/(.+)",
    "OobChannel",
    "/oob/send/(.+)",
    "OobSend",
    "/page",
    "Page",
    "/client.js",
    "ClientScript",
    "/traced",
    "Traced",
) + socketio_urls

#: how often each handler ran, and how many raised on purpose
COUNTS: Counter = Counter()


class Fault(RuntimeError):
    """Raised on purpose by a handler."""


def _maybe_fail(context, event):
    COUNTS[event] += 1
    if context.get("fault") == event:
        COUNTS["raised:" + event] += 1
        raise Fault(f"{event} handler failed on purpose")


@on_connect
def connected(request, socket, context):
    context["name"] = request.query.get("name", "anon")
    context["fault"] = request.query.get("fault")
    if request.query.get("refuse"):
        raise Denied("refused on purpose")
    if request.query.get("slow_connect"):
        # a handler that waits on something (a database, say)
        gevent.sleep(float(request.query["slow_connect"]))
    if request.query.get("greet"):
        # a send to the socket while it is still being accepted
        socket.send({"greeting": context["name"]})
    _maybe_fail(context, "connect")


def _reenter(socket, message):
    """Out-of-band and socket sends from inside a handler, to this socket,
    to a channel it is in and to everyone."""
    channel = message.get("channel")
    socket.send({"reenter": "socket.send"})
    send(socket.session_id, {"reenter": "send"})
    socket.emit("reentered", {"reenter": "emit"})
    if channel:
        socket.send_and_broadcast_channel({"reenter": "channel"}, channel)
        broadcast_channel({"reenter": "oob-channel"}, channel)
    if message.get("everyone"):
        broadcast({"reenter": "broadcast"})
    return {"reentered": True}


@on_message
def message(request, socket, context, message):
    _maybe_fail(context, "message")
    if not isinstance(message, dict):
        return None
    op = message.get("op")
    if op == "probe":
        return {"probe": message.get("n")}
    if op == "relay":
        # to the channels this socket is in, never to one it names
        socket.broadcast_channel(message.get("data"))
        return {"relayed": True}
    if op == "whoami":
        return {
            "sid": socket.session_id,
            "remote_addr": request.remote_addr,
            "name": context["name"],
            "channels": socket.channels,
        }
    if op == "broadcast":
        socket.broadcast_channel(message["data"], message["channel"])
        return {"broadcast": message.get("n")}
    if op == "join":
        # a subscription decided by the server: no on_subscribe runs
        socket.subscribe(message["channel"])
        return {"joined": message["channel"]}
    if op == "sleep":
        gevent.sleep(float(message.get("seconds", 1)))
        return {"slept": True}
    if op == "block":
        blocking_sleep(float(message.get("seconds", 1)))
        return {"blocked": True}
    if op == "spin":
        # a CPU-bound computation that never yields
        until = time.monotonic() + float(message.get("seconds", 1))
        while time.monotonic() < until:
            sum(range(1000))
        return {"spun": True}
    if op == "reenter":
        return _reenter(socket, message)
    if op == "disconnect_me":
        socket.send({"bye": True})
        socket.disconnect()
        # sends after the socket is gone must not raise in the handler
        socket.send({"after": "disconnect"})
        socket.broadcast_channel({"after": "disconnect"})
        return {"disconnected": True}
    if op == "raise":
        raise Fault("message handler failed on request")
    return None


@on_message(channel="^mine-")
def channel_bound(request, socket, context, message):
    # only here so that every message asks for the socket's channels
    COUNTS["channel_bound"] += 1


@on_subscribe
def subscribing(request, socket, context, channel):
    _maybe_fail(context, "subscribe")
    if channel.startswith("forbidden"):
        return False
    if channel.startswith("denied-"):
        raise Denied("not for you")
    if channel.startswith("slow-"):
        # a handler that asks something slow (a database, say) first
        gevent.sleep(1)
    if channel.startswith("greet-"):
        # greet the channel from inside the subscription, newcomer included
        socket.send_and_broadcast_channel({"joined": context["name"]}, channel)
    return None


@on_unsubscribe
def unsubscribing(request, socket, context, channel):
    _maybe_fail(context, "unsubscribe")
    if channel.startswith("greet-"):
        socket.broadcast_channel({"left": context["name"]}, channel)


@on_disconnect
def disconnected(request, socket, context):
    # the socket's channels still know it here: tell them, re-entrantly
    greet = [c for c in socket.channels if c.startswith("greet-")]
    for channel in greet:
        socket.broadcast_channel({"gone": context["name"]}, channel)
    if greet:
        try:
            send(socket.session_id, {"too": "late"})
        except NoSocket:
            pass
    _maybe_fail(context, "disconnect")


@on_finish
def finished(request, socket, context):
    _maybe_fail(context, "finish")


@on_error
def errored(request, socket, context, exception):
    COUNTS["on_error"] += 1
    if context.get("fault") == "error":
        COUNTS["raised:error"] += 1
        raise Fault("error handler failed on purpose")
    if context.get("report_errors"):
        socket.send({"error": type(exception).__name__})


@on("shout")
def shout(request, socket, context, text):
    _maybe_fail(context, "named")
    return str(text).upper()


@on("report_errors")
def report_errors(request, socket, context, flag=True):
    context["report_errors"] = bool(flag)
    return {"ok": True}


_SNAPSHOTS = {}


class Traced:
    """With RELIABILITY_TRACEMALLOC=1: ``?take=NAME`` stores a tracemalloc
    snapshot, ``?diff=A,B`` lists where memory grew between two (for hunting
    a leak by hand)."""

    def GET(self):
        import tracemalloc

        query = web.input(take="", diff="")
        gc.collect()
        if query.take:
            _SNAPSHOTS[query.take] = tracemalloc.take_snapshot()
            return json.dumps(
                {"taken": query.take, "traced_kb": tracemalloc.get_traced_memory()[0] // 1024}
            )
        first, second = query.diff.split(",")
        stats = _SNAPSHOTS[second].compare_to(_SNAPSHOTS[first], "lineno")
        return "\n".join(str(s) for s in stats[:25])


class Index:
    def GET(self):
        return "reliability fixture"


def _rss_kb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def _count_instances(*types):
    found = Counter()
    for obj in gc.get_objects():
        t = type(obj)
        if t in types:
            found[t.__name__] += 1
    return found


def _greenlet_kinds():
    """What each live greenlet runs (its function, or where it is parked)."""
    kinds = Counter()
    for obj in gc.get_objects():
        if isinstance(obj, greenlet.greenlet) and not obj.dead:
            run = getattr(obj, "_run", None) or getattr(obj, "run", None)
            name = getattr(run, "__qualname__", None) or type(obj).__name__
            kinds[name] += 1
    return dict(kinds)


class Registry:
    """What the process holds. ``?gc=1`` collects garbage first and counts
    live handler-side objects and greenlets (a full heap walk: slow)."""

    def GET(self):
        engine = get_engine()
        manager = engine.manager
        rooms = manager.rooms.get("/", {})
        result = {
            "clients": len(registry.CLIENTS),
            "channel_rooms": len([r for r in rooms if isinstance(r, str) and r.startswith("#")]),
            "channel_memberships": sum(
                len(m) for r, m in rooms.items() if isinstance(r, str) and r.startswith("#")
            ),
            "rooms_all": sum(len(ns) for ns in manager.rooms.values()),
            "namespaces": sorted(str(n) for n in manager.rooms),
            "eio_sockets": len(engine.eio.sockets),
            "eio_states": dict(
                Counter(
                    f"{type(s).__name__} closed={s.closed} closing={s.closing} "
                    f"upgraded={s.upgraded} connected={s.connected}"
                    for s in list(engine.eio.sockets.values())
                )
            ),
            "environ": len(engine.environ),
            "binary_pending": len(engine._binary_packet),
            "callbacks": sum(len(c) for c in manager.callbacks.values()),
            # python-socketio 5.18 keeps connecting sockets here; older
            # versions have no such table (the engine keeps its own)
            "pending_connect": sum(
                len(p) for p in getattr(manager, "pending_connect", {}).values()
            ),
            "connecting": len(engine._connecting),
            "held": len(engine._held),
            "pending_disconnect": sum(len(p) for p in manager.pending_disconnect.values()),
            "eio_to_sid": len(manager.eio_to_sid),
            "fds": len(os.listdir("/proc/self/fd")),
            "rss_kb": _rss_kb(),
            "counts": dict(COUNTS),
        }
        query = web.input(gc="", trim="", types="")
        if query.gc or query.trim:
            gc.collect()
        if query.gc:
            live = _count_instances(Client, Socket, greenlet.greenlet, gevent.Greenlet)
            result["live_clients"] = live.get("Client", 0)
            result["live_sockets"] = live.get("Socket", 0)
            result["greenlets"] = sum(
                1 for o in gc.get_objects() if isinstance(o, greenlet.greenlet) and not o.dead
            )
            result["greenlet_kinds"] = _greenlet_kinds()
        if query.types:
            # the most numerous object types, to find what a leak is made of
            counts = Counter(type(o).__qualname__ for o in gc.get_objects())
            result["types"] = dict(counts.most_common(40))
        if query.trim:
            # give free heap pages back to the system, so that RSS shows what
            # the process holds rather than what glibc keeps cached (after
            # the counting above, whose temporary lists are freed by now)
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        result["rss_kb"] = _rss_kb()
        web.header("Content-Type", "application/json")
        return json.dumps(result)


def _oob(function, *args):
    try:
        function(*args)
    except NoSocket as exc:
        web.ctx.status = "404 Not Found"
        return json.dumps({"nosocket": str(exc)})
    return json.dumps({"sent": True})


class OobChannel:
    def GET(self, channel):
        return _oob(broadcast_channel, {"oob": "channel", "channel": channel}, channel)


class OobSend:
    def GET(self, session_id):
        return _oob(send, session_id, {"oob": "send"})


# the official client as npm installed it for the tests (never committed)
CLIENT_JS = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..",
    "node",
    "node_modules",
    "socket.io-client",
    "dist",
    "socket.io.min.js",
)

# a page that connects to the server named in its query string (?target=,
# ?transport=) and leaves the outcome in window.result, for the browser tests
PAGE = """<!doctype html>
<meta charset="utf-8">
<script src="/client.js"></script>
<script>
  const params = new URLSearchParams(location.search);
  window.result = null;
  const socket = io(params.get("target"), {
    transports: [params.get("transport")], reconnection: false, timeout: 4000
  });
  socket.on("connect", () => {
    socket.emit("message", {op: "whoami"}, (me) => {
      window.result = {connected: true, sid: me.sid};
    });
  });
  socket.on("connect_error", (err) => {
    window.result = {connected: false, error: String(err.message)};
  });
</script>
"""


class Page:
    def GET(self):
        web.header("Content-Type", "text/html; charset=utf-8")
        return PAGE


class ClientScript:
    def GET(self):
        if not os.path.exists(CLIENT_JS):
            raise web.notfound("socket.io-client is not installed (npm ci in tests/node)")
        web.header("Content-Type", "application/javascript")
        with open(CLIENT_JS, "rb") as script:
            return script.read()


app = web.application(urls, globals(), autoreload=False)

if __name__ == "__main__":
    if os.environ.get("RELIABILITY_TRACEMALLOC"):
        import tracemalloc

        tracemalloc.start(10)
    port = int(sys.argv[1])
    print(f"listening on 127.0.0.1:{port}", flush=True)
    SocketIOServer(("127.0.0.1", port), app.wsgifunc(), log=None).serve_forever()
