"""This project's benchmark server: a web.py app with ``socketio_urls`` and
the events API, served by ``SocketIOServer`` the way the README shows.

Usage: python webpy_app.py PORT

Request logging and the per-message log are off, as for the reference
servers (``log=None``; their per-message logging is off by default).

For benchmarks/presence_bench.py: ``WSIO_BENCH_PRESENCE=1`` gives the
``bench`` channels presence, and ``WSIO_BENCH_QUEUE`` (a Redis URL) joins
several processes.
"""

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import sys  # noqa: E402

import web  # noqa: E402

from webpy_socketio import SocketIOServer, configure, on, socketio_urls  # noqa: E402

configure(SOCKETIO_MESSAGE_LOG_FORMAT=None)
# variants measured beside the default (benchmarks/run.py sets these):
# channel history on the benchmark's room, in memory or on Redis
if os.environ.get("WSIO_BENCH_HISTORY"):
    configure(SOCKETIO_HISTORY={"^bench$": {"size": 200, "ttl": 600}})
if os.environ.get("WSIO_BENCH_PRESENCE"):
    configure(SOCKETIO_PRESENCE=["^bench"])
if os.environ.get("WSIO_BENCH_QUEUE"):
    configure(SOCKETIO_MESSAGE_QUEUE=os.environ["WSIO_BENCH_QUEUE"])
# the cost of the operations features, measured as servers of their own
# (run.py's webpy-metrics and webpy-limits): metrics on, or a rate limit
# that every benchmark stays under
if os.environ.get("WSIO_BENCH_METRICS"):
    configure(SOCKETIO_METRICS="/metrics")
if os.environ.get("WSIO_BENCH_RATE_LIMIT"):
    configure(SOCKETIO_RATE_LIMIT={"*": ["1000000/s", "1000MB/s"], "echo": "1000000/s"})

urls = ("/", "Index") + socketio_urls


class Index:
    def GET(self):
        return "webpy-socketio benchmark server"


@on("join")
def join(request, socket, context, channel):
    socket.subscribe(channel)
    return "ok"


@on("bcast")
def bcast(request, socket, context, data):
    socket.broadcast_channel(data, data["room"], event="msg")
    return "ok"


@on("echo")
def echo(request, socket, context, data):
    return data


app = web.application(urls, globals())

if __name__ == "__main__":
    port = int(sys.argv[1])
    print(f"webpy-socketio on {port}", flush=True)
    SocketIOServer(("127.0.0.1", port), app.wsgifunc(), log=None).serve_forever()
