"""Reference: plain python-socketio under gevent, served the way its
documentation shows (``socketio.WSGIApp`` on ``gevent.pywsgi``).

Usage: python pysio_gevent.py PORT
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

import socketio  # noqa: E402
from gevent import pywsgi  # noqa: E402

sio = socketio.Server(async_mode="gevent")


@sio.event
def join(sid, room):
    sio.enter_room(sid, room)
    return "ok"


@sio.event
def bcast(sid, data):
    sio.emit("msg", data, to=data["room"], skip_sid=sid)
    return "ok"


@sio.event
def echo(sid, data):
    return data


if __name__ == "__main__":
    port = int(sys.argv[1])
    print(f"python-socketio on {port}", flush=True)
    pywsgi.WSGIServer(("127.0.0.1", port), socketio.WSGIApp(sio), log=None).serve_forever()
