"""Fixtures of the reliability suite: a fixture server per module, and a
check after each test that it is still alive."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from relsupport import RelServer


@pytest.fixture(scope="module")
def rel_server(request: pytest.FixtureRequest) -> Iterator[RelServer]:
    """tests/reliability/rel_app.py on a free port, for the whole module
    (modules that run on both engine paths override it with
    :func:`relsupport.path_server`)."""
    server = RelServer(request.module.__name__.rsplit(".", 1)[-1])
    yield server
    server.stop()
