"""Settings of the operations tests (metrics, queue health): metrics on the
app's port, a quick heartbeat through the queue when WSIO_TEST_QUEUE names
one, and small rate limits."""

import os

SOCKETIO_FAST_PATH = os.environ.get("WSIO_TEST_PATH", "fast") != "stock"
SOCKETIO_MESSAGE_LOG_FORMAT = None
SOCKETIO_METRICS = os.environ.get("WSIO_TEST_METRICS", "/metrics")
SOCKETIO_MESSAGE_QUEUE = os.environ.get("WSIO_TEST_QUEUE") or None
# a heartbeat every 0.3 s: a deaf subscription is found within 0.9 s
SOCKETIO_QUEUE_HEARTBEAT = 0.3
SOCKETIO_RATE_LIMIT = {"shout": "5/s burst 5"}
