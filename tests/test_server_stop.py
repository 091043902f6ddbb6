"""SocketIOServer.stop() ends the websockets it accepted, idle ones too.

An idle websocket has no greenlet of its own (it parks, see
WebSocket.park), so pywsgi's stop, which ends its request greenlets, would
leave it open; the server drops it itself. Run in a process of its own:
the test needs gevent's patching."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from support import python_env

SCRIPT = """
from gevent import monkey; monkey.patch_all()
import base64, os, socket, time
import gevent, web
from webpy_socketio import SocketIOServer, socketio_urls

app = web.application(socketio_urls, globals(), autoreload=False)
server = SocketIOServer(("127.0.0.1", 0), app.wsgifunc(), log=None)
server.start()
port = server.server_port

def frame(text):
    data = text.encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return bytes((0x81, 0x80 | len(data))) + mask + masked

client = socket.create_connection(("127.0.0.1", port), timeout=5)
key = base64.b64encode(os.urandom(16)).decode()
client.sendall(
    f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n"
    f"Upgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Key: {key}\\r\\n"
    "Sec-WebSocket-Version: 13\\r\\n\\r\\n".encode()
)
seen = b""
while b"sid" not in seen:
    seen += client.recv(65536)
client.sendall(frame("40"))
while seen.count(b"sid") < 2:  # the Socket.IO CONNECT answer, 40{"sid":...}
    seen += client.recv(65536)
gevent.sleep(0.2)  # idle now: parked
server.stop(timeout=1)
client.settimeout(5)
try:
    rest = b""
    while True:
        chunk = client.recv(65536)
        if not chunk:
            break
        rest += chunk
    print("CLOSED")
except socket.timeout:
    print("STILL OPEN")
"""


def test_stop_ends_the_idle_websockets_it_accepted():
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT)],
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip().endswith("CLOSED"), result.stdout + result.stderr
