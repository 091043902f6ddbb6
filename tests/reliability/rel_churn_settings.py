"""Settings of the churn server (WSIO_SETTINGS_MODULE): a short heartbeat,
so clients that vanish without a word are found within seconds."""

SOCKETIO_PING_INTERVAL = 1
SOCKETIO_PING_TIMEOUT = 2
SOCKETIO_MESSAGE_LOG_FORMAT = None
