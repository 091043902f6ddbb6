"""Default settings module of the test apps (they run with tests/apps as
their working folder): the engine path under test, from WSIO_TEST_PATH
("fast", the default, or "stock"; see the engine_path fixture)."""

import os

SOCKETIO_FAST_PATH = os.environ.get("WSIO_TEST_PATH", "fast") != "stock"
