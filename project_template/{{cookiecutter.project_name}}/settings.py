"""Settings of {{ cookiecutter.project_name }}.

webpy-socketio reads the SOCKETIO_* names from this module (``settings`` is
the default; ``WSIO_SETTINGS_MODULE=othermodule`` picks another). An unknown
SOCKETIO_* name is an error, so a typo never passes silently. Uncomment a
line to change its value; the values shown are the defaults.
"""

# Where `wsio runserver` (and `python app.py`) listen.
# SOCKETIO_HOST = "127.0.0.1"
SOCKETIO_PORT = {{ cookiecutter.port }}

# One log line per message a client sends: %-format with the connect
# request's WSGI environ keys plus TIME and MESSAGE. None turns it off.
# SOCKETIO_MESSAGE_LOG_FORMAT = '%(REMOTE_ADDR)s - - [%(TIME)s] "Socket.IO message: %(MESSAGE)s"'

# Which other origins may open sockets. None: same origin only (the safe
# default). "*" for any, or a list such as ["https://example.com"].
# SOCKETIO_CORS_ALLOWED_ORIGINS = None

# Where browsers load the official socket.io client from. A copy at
# static/socket.io.min.js is served instead when it exists (`wsio client`
# puts it there, for offline use).
# SOCKETIO_CLIENT_URL = "https://cdn.socket.io/4.8.3/socket.io.min.js"
# Integrity hash for a custom SOCKETIO_CLIENT_URL (the default URL carries
# its own pinned hash).
# SOCKETIO_CLIENT_INTEGRITY = None

# The largest message a client may send, in bytes; a bigger one closes the
# connection.
# SOCKETIO_MAX_MESSAGE_BYTES = 100000

# How many channels one socket may be in at a time.
# SOCKETIO_MAX_CHANNELS_PER_SOCKET = 100

# Channels whose subscribers are tracked ("who is here", pushed live to each
# subscriber): a list of patterns. None: only what socket.track() tracks.
# SOCKETIO_PRESENCE = None
SOCKETIO_PRESENCE = {{ '["^room-"]  # the chat rooms' if cookiecutter.variant == "chat" else "None" }}
# Seconds after which the members of a process that stopped refreshing them
# (killed, machine lost) expire; they leave within a third more.
# SOCKETIO_PRESENCE_TIMEOUT = 15
# The largest presence meta (socket.track(channel, key, meta)), in bytes of JSON.
# SOCKETIO_PRESENCE_MAX_META_BYTES = 2048

# "redis://127.0.0.1:6379/0" to share broadcasts between several server
# processes (pip install "webpy-socketio[redis]").
# SOCKETIO_MESSAGE_QUEUE = None

# Engine.IO heartbeat, in seconds. Behind a proxy, its read timeout must be
# longer than their sum.
# SOCKETIO_PING_INTERVAL = 25
# SOCKETIO_PING_TIMEOUT = 20

# Channels that keep their last messages, so that a page that reconnects
# gets what it missed, in order (messages kept, seconds kept). The default is
# None (no history); here the room-* channels keep theirs.
# SOCKETIO_HISTORY = None
SOCKETIO_HISTORY = {"^room-": {"size": 200, "ttl": 3600}}

# Close a connection that has joined no namespace this many seconds after
# its handshake; None: no limit.
# SOCKETIO_CONNECT_TIMEOUT = 45

# A malformed packet closes the connection (as Node socket.io); False drops
# the packet and keeps the connection.
# SOCKETIO_STRICT_PROTOCOL = True

# The fast path for the commonest packets; False runs python-socketio's own
# code paths (same protocol, more CPU).
# SOCKETIO_FAST_PATH = True

# Log a warning, with the stack, when code holds the event loop (and so
# every connection) longer than this many seconds; None turns it off.
# SOCKETIO_BLOCKING_WARNING_SECONDS = 0.5

# Memory bounds: bytes queued for one client that reads too slowly before
# it is disconnected; bytes queued for all clients together (the largest
# queues are disconnected first); the kernel send buffer per connection
# (None: the kernel's own sizing).
# SOCKETIO_MAX_QUEUED_BYTES = 16 * 1024 * 1024
# SOCKETIO_MAX_QUEUED_BYTES_TOTAL = 64 * 1024 * 1024
# SOCKETIO_SEND_BUFFER_BYTES = 256 * 1024

# Rate limits per socket on what a client sends: for every event ("*") and
# per event name; byte rules take a unit. Refused events are answered
# {"ok": false, "error": "rate limited"} (or dropped without an ack), and a
# client that stays over its limit this many seconds is disconnected.
# SOCKETIO_RATE_LIMIT = {"*": "50/s burst 100", "message": "10/s"}
# SOCKETIO_RATE_LIMIT_DISCONNECT_SECONDS = 10

# Prometheus metrics: a path on the app's port ("/metrics"), an address of
# their own ("127.0.0.1:9300"), or None. With wsio serve --workers N, any
# worker answers with the sum of all of them.
# SOCKETIO_METRICS = None

# Seconds between two heartbeats each process sends itself through the
# message queue; a subscription that stops hearing them is re-established,
# and /socket.io/health answers 503 meanwhile. None: no heartbeat.
# SOCKETIO_QUEUE_HEARTBEAT = 5

# The official Socket.IO Admin UI (npm @socket.io/admin-ui, or
# admin.socket.io): its login, read-only unless "read_only": False. Add the
# origin it is served from to SOCKETIO_CORS_ALLOWED_ORIGINS. None: off.
# SOCKETIO_ADMIN_UI = {"username": "admin", "password": "change me"}

# Not a webpy-socketio setting: True shows web.py's debug pages, with
# tracebacks and local variables, to whoever triggers an error. Development
# only.
DEBUG = False
