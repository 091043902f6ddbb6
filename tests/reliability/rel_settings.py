"""Settings of the reliability fixture server (WSIO_SETTINGS_MODULE)."""

import os

# the engine path under test (the engine_path fixture sets WSIO_TEST_PATH)
SOCKETIO_FAST_PATH = os.environ.get("WSIO_TEST_PATH", "fast") != "stock"

# small enough that oversized inputs are cheap to send, large enough for
# every legitimate message of the suite
SOCKETIO_MAX_MESSAGE_BYTES = 20_000
# the handler's log line per message is part of what is exercised, but at
# 100,000 hostile inputs it would only fill the disk
SOCKETIO_MESSAGE_LOG_FORMAT = None
# engine.io removes closed sessions in a sweep that takes a ping timeout;
# a short one lets the tests see an empty registry within seconds
SOCKETIO_PING_INTERVAL = 5
SOCKETIO_PING_TIMEOUT = 5
