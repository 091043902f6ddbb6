"""Import hygiene: the package and the CLI import nothing heavy at start."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ["gevent", "web", "socketio", "engineio", "mako", "cookiecutter", "watchdog", "redis"]


def imported_after(statement: str) -> set[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    # run from / so that the checkout is not on sys.path: only the installed package counts
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(json.loads(result.stdout))


@pytest.mark.parametrize("statement", ["import webpy_socketio", "import webpy_socketio.cli.main"])
def test_light_imports(statement):
    modules = imported_after(statement)
    assert not [m for m in HEAVY if m in modules]


def test_no_top_level_cli_module():
    result = subprocess.run(
        [sys.executable, "-c", "import importlib.util; print(importlib.util.find_spec('cli'))"],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == "None"
