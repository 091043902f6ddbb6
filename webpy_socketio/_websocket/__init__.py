"""The project's own WebSocket layer (RFC 6455), below the engine.

- :mod:`.connection`: one upgraded connection (framing, ping/pong, the
  close handshake, limits), with no knowledge of HTTP or Engine.IO;
- :mod:`.handler`: the ``gevent.pywsgi`` handler that hands a request's
  raw connection over once it is upgraded.

The engine adapter that joins this layer to engine.io lives with the other
overrides of python-engineio, in :mod:`webpy_socketio._engine.transport`.
"""
