"""Import hygiene: the package and the CLI import nothing heavy at start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT, TESTS, python_env

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


def test_processes_the_tests_start_import_the_installed_package():
    """Servers and tools the tests start import webpy_socketio from where
    the tests themselves do: the installed package, editable or not. The
    checkout's own webpy_socketio/ folder never shadows it (it has no cli
    subpackage: that is mapped from cli/ at install time)."""
    import webpy_socketio.cli.main

    import webpy_socketio

    code = (
        "import webpy_socketio, webpy_socketio.cli.main as m\n"
        "print(webpy_socketio.__file__)\nprint(m.__file__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=TESTS / "apps",
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [webpy_socketio.__file__, webpy_socketio.cli.main.__file__]
    if os.environ.get("WSIO_TEST_INSTALLED") == "1":
        # ./scripts/test --installed: a real copy, not the checkout
        assert Path(webpy_socketio.__file__).parent != ROOT / "webpy_socketio"
        assert "site-packages" in Path(webpy_socketio.__file__).parts
