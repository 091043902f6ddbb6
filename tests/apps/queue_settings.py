"""Settings for servers that share a message queue: the URL comes from
WSIO_TEST_QUEUE, which the scale-out tests set to their own redis-server."""

import os

SOCKETIO_MESSAGE_QUEUE = os.environ["WSIO_TEST_QUEUE"]
