"""Settings of the server that allows one other origin (WSIO_SETTINGS_MODULE)."""

SOCKETIO_CORS_ALLOWED_ORIGINS = ["https://allowed.example"]
SOCKETIO_MESSAGE_LOG_FORMAT = None
