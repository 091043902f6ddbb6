"""The reliability fixture server's settings with strictness off: invalid
packets are dropped and the connection stays (SOCKETIO_STRICT_PROTOCOL)."""

from rel_settings import *  # noqa: F403

SOCKETIO_STRICT_PROTOCOL = False
