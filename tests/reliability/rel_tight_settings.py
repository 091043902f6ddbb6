"""Settings for the queue limits' tests: small limits that a test reaches in
a second (WSIO_TEST_LIMIT says which: "client" or "total")."""

import os

from rel_settings import *  # noqa: F403

SOCKETIO_METRICS = "/metrics"
SOCKETIO_SEND_BUFFER_BYTES = 16 * 1024
if os.environ.get("WSIO_TEST_LIMIT") == "client":
    SOCKETIO_MAX_QUEUED_BYTES = 1024 * 1024
else:
    SOCKETIO_MAX_QUEUED_BYTES = 64 * 1024 * 1024
    SOCKETIO_MAX_QUEUED_BYTES_TOTAL = 1024 * 1024
