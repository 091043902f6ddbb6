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
    from webpy_socketio import _history, engine, settings

    settings.reset()  # configure() values and the settings module read
    engine.reset()  # the in-process engine and the registry of its clients
    _history.reset()  # this process's channel histories
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


#: The engine's two implementations (SOCKETIO_FAST_PATH True and False); the
#: real-client modules run on both, and any difference is a bug in one.
ENGINE_PATHS = ["fast", "stock"]


@pytest.fixture(scope="module", params=ENGINE_PATHS)
def engine_path(request: pytest.FixtureRequest) -> str:
    """The engine path a module's server runs ("fast" or "stock"); test apps
    read it from WSIO_TEST_PATH (tests/apps/settings.py)."""
    return str(request.param)


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


@pytest.fixture(scope="module")
def conformance_server(request: pytest.FixtureRequest, engine_path: str) -> Iterator[AppServer]:
    """tests/apps/conformance_app.py with conformance_settings, once per
    engine path (the protocol seen on the wire must be the same on both)."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    server = AppServer(
        "conformance_app.py",
        f"conformance-{module}-{engine_path}",
        env={"WSIO_SETTINGS_MODULE": "conformance_settings", "WSIO_TEST_PATH": engine_path},
    )
    yield server
    server.stop()
