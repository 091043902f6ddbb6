"""Settings of tests/apps/history_app.py: channels with history, the engine
path under test (WSIO_TEST_PATH) and, when WSIO_TEST_QUEUE is set, a Redis
message queue."""

import os

SOCKETIO_FAST_PATH = os.environ.get("WSIO_TEST_PATH", "fast") != "stock"
SOCKETIO_HISTORY = {
    "^room-": {"size": 1000, "ttl": 600},
    "^small-": {"size": 10, "ttl": 600},
}
SOCKETIO_MESSAGE_QUEUE = os.environ.get("WSIO_TEST_QUEUE") or None
SOCKETIO_MESSAGE_LOG_FORMAT = None
SOCKETIO_PING_INTERVAL = float(os.environ.get("WSIO_TEST_PING", "25"))
SOCKETIO_PING_TIMEOUT = float(os.environ.get("WSIO_TEST_PING", "20"))
