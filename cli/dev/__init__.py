"""The development server of ``wsio runserver``, one module per process::

    wsio runserver   supervisor.py: no gevent; owns the listening socket,
                     watches the files (watcher.py), orders restarts
      zygote         zygote.py: gevent patched, libraries imported once,
                     forks a worker per (re)start
        worker       worker.py: imports the project and serves it

The command itself (options, banner, binding) is
:mod:`webpy_socketio.cli.runserver`.
"""

#: Seconds a restarting or stopping worker has to close its sockets cleanly.
GRACE = 3.0
