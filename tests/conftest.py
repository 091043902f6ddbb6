"""Shared fixtures. Real-process helpers live in tests/support.py.

``clean_global_state`` runs around every test: the one place that knows
which global state of the library and of the commands a test may leave
behind, and resets it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support import AppServer, NodeAgent  # noqa: E402

#: Environment variables through which the library and the commands keep
#: state: the settings module (``--settings`` sets it in-process) and the
#: marks ``wsio runserver`` gives its workers.
STATE_ENV = ("WSIO_SETTINGS_MODULE", "WSIO_BROWSER_RELOAD", "WSIO_DEV_SERVER")


def _reset_library() -> None:
    from webpy_socketio.cli import output

    import webpy_socketio
    from webpy_socketio import engine, settings

    settings.reset()  # configure() values and the settings module read
    engine.reset()  # the in-process engine and the registry of its clients
    webpy_socketio.use_session(None)
    output.speak_as("wsio")


@pytest.fixture(autouse=True)
def clean_global_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts from the library's defaults, whatever the shell or
    the previous test set, and leaves none of its own state behind (also
    what the code under test set itself, such as ``--settings``)."""
    for name in STATE_ENV:
        # set, then removed: monkeypatch restores the variable's state from
        # before the test whatever the test does to it
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    _reset_library()
    yield
    _reset_library()


@pytest.fixture(scope="module")
def basic_server() -> Iterator[AppServer]:
    """tests/apps/basic_app.py served by SocketIOServer on a free port."""
    server = AppServer("basic_app.py", "basic")
    yield server
    server.stop()


@pytest.fixture
def agent() -> Iterator[NodeAgent]:
    """A Node process driving official socket.io-client sockets."""
    node = NodeAgent()
    yield node
    node.close()
