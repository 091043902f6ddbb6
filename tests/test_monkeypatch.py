"""SocketIOServer refuses to start when gevent's patching is missing or
comes after ``import web`` (which would share web.ctx between requests)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from support import python_env

SERVE = """
from webpy_socketio import SocketIOServer, MonkeyPatchError
import web
app = web.application(("/", "x"), globals(), autoreload=False)
try:
    SocketIOServer(("127.0.0.1", 0), app.wsgifunc())
except MonkeyPatchError as exc:
    print("REFUSED:", exc)
else:
    print("STARTED")
"""


@pytest.mark.parametrize(
    ("prelude", "expected"),
    [
        ("from gevent import monkey; monkey.patch_all()\n", "STARTED"),
        (
            "import web\nfrom gevent import monkey; monkey.patch_all()\n",
            "REFUSED: web.py was imported before",
        ),
        ("", "REFUSED: gevent has not monkey-patched socket, threading, select"),
    ],
    ids=["patched-first", "web-first", "not-patched"],
)
def test_patch_order_is_checked(prelude, expected):
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(SERVE)],
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.startswith(expected), result.stdout + result.stderr


def test_port_in_use_is_one_clear_error():
    code = textwrap.dedent(
        """
        from gevent import monkey; monkey.patch_all()
        import socket, web
        from webpy_socketio import SocketIOServer
        from webpy_socketio.server import AddressInUse
        taken = socket.socket(); taken.bind(("127.0.0.1", 0)); taken.listen()
        port = taken.getsockname()[1]
        app = web.application(("/", "x"), globals(), autoreload=False)
        try:
            SocketIOServer(("127.0.0.1", port), app.wsgifunc()).start()
        except AddressInUse as exc:
            print(str(exc).replace(str(port), "PORT"))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=python_env(), capture_output=True, text=True, timeout=60
    )
    assert "Port PORT on 127.0.0.1 is already in use" in result.stdout, result.stderr
