"""Settings of tests/apps/presence_app.py: presence on the ``room-``
channels, the timeout from WSIO_TEST_PRESENCE_TIMEOUT (short in the tests
that kill a process), the queue from WSIO_TEST_QUEUE when it is set, and
the engine path from WSIO_TEST_PATH."""

import os

SOCKETIO_PRESENCE = ["^room-"]
SOCKETIO_PRESENCE_TIMEOUT = float(os.environ.get("WSIO_TEST_PRESENCE_TIMEOUT", "15"))
SOCKETIO_MESSAGE_QUEUE = os.environ.get("WSIO_TEST_QUEUE") or None
SOCKETIO_FAST_PATH = os.environ.get("WSIO_TEST_PATH", "fast") != "stock"
SOCKETIO_MESSAGE_LOG_FORMAT = None
