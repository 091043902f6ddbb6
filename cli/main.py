"""The ``wsio`` command group.

Commands live one per module and are imported only when they run or when
help lists them; each imports its heavy dependencies (gevent, web.py,
cookiecutter, watchdog) inside the command function, so ``wsio --help``
and ``wsio --version`` start fast.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import click

#: command name -> "module:attribute" inside webpy_socketio.cli
COMMANDS = {
    "new": "new:new",
    "runserver": "runserver:runserver",
    "serve": "serve:serve",
    "nginx-config": "nginx:nginx_config",
}


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("webpy-socketio")
    except metadata.PackageNotFoundError:  # pragma: no cover - checkout not installed
        return "0+unknown"


class LazyGroup(click.Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self._available())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = self._available().get(name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        module = importlib.import_module(f"webpy_socketio.cli.{module_name}")
        command: Any = getattr(module, attribute)
        return command  # type: ignore[no-any-return]

    @staticmethod
    def _available() -> dict[str, str]:
        # a command whose module is not written yet is simply not offered
        found = {}
        for name, target in COMMANDS.items():
            module_name = target.split(":")[0]
            if importlib.util.find_spec(f"webpy_socketio.cli.{module_name}") is not None:
                found[name] = target
        return found


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), "--version", "-V", prog_name="wsio")
def cli() -> None:
    """webpy-socketio: realtime websockets for web.py apps.

    \b
    wsio new mychat       create a project with a working chat room
    wsio runserver        serve it, reloading on every change
    wsio nginx-config     print an nginx config for production
    """


def main() -> None:
    cli(prog_name="wsio")
