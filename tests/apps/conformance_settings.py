"""Settings of the conformance server (tests/apps/conformance_app.py): the
configuration the protocol authors give for their own test suites
(pingInterval 300 ms, pingTimeout 200 ms, maxPayload 1e6, connectTimeout
1000 ms, any origin)."""

import os

SOCKETIO_PING_INTERVAL = 0.3
SOCKETIO_PING_TIMEOUT = 0.2
SOCKETIO_MAX_MESSAGE_BYTES = 1_000_000
# seconds: a session that connects no namespace within it is closed
SOCKETIO_CONNECT_TIMEOUT = 1
SOCKETIO_CORS_ALLOWED_ORIGINS = "*"
# WSIO_TEST_PATH=stock runs python-socketio's own code paths instead of the
# project's fast path; the protocol seen on the wire must be the same
SOCKETIO_FAST_PATH = os.environ.get("WSIO_TEST_PATH", "fast") != "stock"
