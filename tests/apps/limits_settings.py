"""Settings of the operations tests' server (tests/test_ratelimit.py and
friends): small limits that a test reaches in a second."""

import os

SOCKETIO_FAST_PATH = os.environ.get("WSIO_TEST_PATH", "fast") != "stock"
SOCKETIO_MESSAGE_LOG_FORMAT = None
# "shout" at most 5 at once and 5 a second; every event together 200/s
SOCKETIO_RATE_LIMIT = {"*": "200/s burst 200", "shout": "5/s burst 5"}
SOCKETIO_RATE_LIMIT_DISCONNECT_SECONDS = 2
