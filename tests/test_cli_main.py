"""The ``wsio`` group: its help lists every command without importing any
of them, the listed short help is each command's own, and ``--version``."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from webpy_socketio.cli.main import COMMANDS, cli

WSIO = str(Path(sys.executable).parent / "wsio")


def test_help_lists_every_command_and_imports_none():
    code = (
        "import sys, json\n"
        "from webpy_socketio.cli.main import cli\n"
        "try:\n    cli(['--help'], prog_name='wsio')\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd="/", capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    help_text, modules = result.stdout.rsplit("\n", 2)[:2]
    loaded = set(json.loads(modules))
    commands = [
        m for m in loaded if m.startswith("webpy_socketio.cli.") and m != "webpy_socketio.cli.main"
    ]
    assert commands == []
    assert "importlib.metadata" not in loaded  # only --version reads the installed version
    for name in ("new", "runserver", "serve", "client", "nginx-config"):
        assert f"\n  {name} " in help_text, help_text
        assert f"wsio {name}" in help_text  # and in the summary at the top


@pytest.mark.parametrize("name", list(COMMANDS))
def test_listed_short_help_is_the_commands_own(name: str):
    module_name, attribute = COMMANDS[name][0].split(":")
    command = getattr(importlib.import_module(f"webpy_socketio.cli.{module_name}"), attribute)
    assert command.name == name
    assert command.short_help == COMMANDS[name][1]


@pytest.mark.parametrize("name", ["runserver", "serve"])
def test_the_address_reads_as_optional(name: str):
    result = CliRunner().invoke(cli, [name, "--help"], prog_name="wsio")
    assert result.exit_code == 0
    assert f"Usage: wsio {name} [OPTIONS] [[ADDR:]PORT]" in result.output


def test_version():
    from importlib import metadata

    result = subprocess.run([WSIO, "--version"], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == f"wsio, version {metadata.version('webpy-socketio')}"


def test_package_version_is_read_when_asked():
    from importlib import metadata

    import webpy_socketio

    assert webpy_socketio.__version__ == metadata.version("webpy-socketio")


def test_an_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(cli, ["runservr"], prog_name="wsio")
    assert result.exit_code == 2
    assert "No such command 'runservr'" in result.output
