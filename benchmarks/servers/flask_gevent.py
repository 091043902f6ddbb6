"""Reference: Flask-SocketIO in gevent mode, started with
``socketio.run`` as its documentation shows.

Usage: python flask_gevent.py PORT
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from flask import Flask  # noqa: E402
from flask_socketio import SocketIO, emit, join_room  # noqa: E402

app = Flask(__name__)
socketio = SocketIO(app, async_mode="gevent")


@socketio.on("join")
def join(room):
    join_room(room)
    return "ok"


@socketio.on("bcast")
def bcast(data):
    emit("msg", data, to=data["room"], include_self=False)
    return "ok"


@socketio.on("echo")
def echo(data):
    return data


if __name__ == "__main__":
    port = int(sys.argv[1])
    print(f"Flask-SocketIO on {port}", flush=True)
    socketio.run(app, host="127.0.0.1", port=port, log_output=False)
