"""The boundary with python-socketio and python-engineio
(webpy_socketio/_engine): every upstream name it relies on that is not
their documented API exists in the installed versions, and the supported
range in the package's requirements is the one CI covers. CI runs this
module on the lowest and on the highest supported versions."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from webpy_socketio._engine import SUPPORTED, upstream

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def test_every_upstream_name_the_engine_needs_is_there():
    assert upstream.missing() == []


def test_a_name_an_upstream_release_drops_is_reported_by_name(monkeypatch):
    # the contract can fail: remove one name as a release would
    import engineio.socket
    import socketio

    monkeypatch.delattr(engineio.socket.Socket, "_websocket_handler")
    monkeypatch.delattr(socketio.Server, "_handle_connect")
    gone = upstream.missing()
    assert len(gone) == 2, gone
    assert gone[0].startswith("engineio.socket.Socket._websocket_handler - needed for: ")
    assert gone[1].startswith("socketio.Server._handle_connect - needed for: ")


@pytest.mark.parametrize("dist", sorted(SUPPORTED))
def test_requirements_pin_the_tested_range(dist):
    low, high = SUPPORTED[dist]
    requirements = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    (pin,) = [r for r in requirements if r.startswith(dist)]
    # ">=LOW,<NEXT": the lowest tested version, and nothing past the highest
    match = re.fullmatch(rf"{dist}>=([\d.]+),<([\d.]+)", pin.replace(" ", ""))
    assert match, pin
    assert version_tuple(match.group(1)) == version_tuple(low)
    major, minor = version_tuple(high)[:2]
    assert version_tuple(match.group(2)) == (major, minor + 1)


@pytest.mark.parametrize("dist", sorted(SUPPORTED))
def test_installed_version_is_in_the_tested_range(dist):
    low, high = SUPPORTED[dist]
    assert version_tuple(low) <= version_tuple(metadata.version(dist)) <= version_tuple(high)
