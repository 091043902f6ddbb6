"""Settings of the runserver test project (the tests pass the port)."""

SOCKETIO_PORT = 8000
