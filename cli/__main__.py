"""``python -m webpy_socketio.cli``."""

from webpy_socketio.cli.main import main

main()
