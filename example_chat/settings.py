"""Settings of the chat demo.

webpy-socketio reads the SOCKETIO_* names (an unknown one is an error, so a
typo never passes silently); the CHAT_* names are the demo's own. Uncomment
a line to change it; the values shown are the defaults.
"""

import os

# -- webpy-socketio ------------------------------------------------------------------

# Where `wsio runserver` (and `python app.py`) listen.
# SOCKETIO_HOST = "127.0.0.1"
# SOCKETIO_PORT = 8000

# One log line per message a client sends: %-format with the connect
# request's WSGI environ keys plus TIME and MESSAGE. None turns it off.
# SOCKETIO_MESSAGE_LOG_FORMAT = '%(REMOTE_ADDR)s - - [%(TIME)s] "Socket.IO message: %(MESSAGE)s"'

# Which other origins may open sockets. None: same origin only.
# SOCKETIO_CORS_ALLOWED_ORIGINS = None

# Where browsers load the official socket.io client from. A copy at
# static/socket.io.min.js is served instead when it exists (`wsio client`
# puts it there, for offline use).
# SOCKETIO_CLIENT_URL = "https://cdn.socket.io/4.8.3/socket.io.min.js"
# SOCKETIO_CLIENT_INTEGRITY = None

# The largest message a client may send, in bytes.
# SOCKETIO_MAX_MESSAGE_BYTES = 100000

# How many channels one socket may be in at a time.
# SOCKETIO_MAX_CHANNELS_PER_SOCKET = 100

# "redis://127.0.0.1:6379/0" to share broadcasts between processes. The demo
# keeps its member lists per process, so it is meant to run as one process.
# SOCKETIO_MESSAGE_QUEUE = None

# Engine.IO heartbeat, in seconds.
# SOCKETIO_PING_INTERVAL = 25
# SOCKETIO_PING_TIMEOUT = 20

# -- the demo ------------------------------------------------------------------------

# The SQLite file, relative to this folder; created on first run.
CHAT_DATABASE = os.environ.get("CHAT_DATABASE", "chat.db")

# With a password, /admin asks for it (user "admin", HTTP basic auth; use
# HTTPS in production). Without one, /admin answers only requests made
# directly from this machine (127.0.0.1, no proxy in between).
CHAT_ADMIN_PASSWORD = os.environ.get("CHAT_ADMIN_PASSWORD") or None

# True shows web.py's debug pages, with tracebacks, to whoever triggers an
# error: development only.
DEBUG = os.environ.get("CHAT_DEBUG") == "1"
