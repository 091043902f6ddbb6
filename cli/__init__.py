"""The ``wsio`` command: ``new``, ``runserver``, ``serve`` and ``nginx-config``.

Installed as ``webpy_socketio.cli`` (see setup.py); there is no top-level
``cli`` module. Commands import their heavy dependencies inside their
functions, so ``wsio --help`` starts fast.
"""
