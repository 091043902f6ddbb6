"""Settings of the Admin UI tests: the Admin UI on, with a login, and the
origin the UI page is served from (WSIO_TEST_ADMIN_ORIGIN) allowed."""

import os

SOCKETIO_FAST_PATH = os.environ.get("WSIO_TEST_PATH", "fast") != "stock"
SOCKETIO_MESSAGE_LOG_FORMAT = None
SOCKETIO_ADMIN_UI = {"username": "admin", "password": "not-the-default"}
SOCKETIO_CORS_ALLOWED_ORIGINS = [os.environ.get("WSIO_TEST_ADMIN_ORIGIN", "http://127.0.0.1:1")]
