"""The ``wsio`` command group.

Commands live one per module and are imported only when they run: ``wsio
--help`` lists them from :data:`COMMANDS` without importing any, and
``--version`` reads the installed version only when asked. Each command
imports its heavy dependencies (gevent, web.py, cookiecutter, watchdog)
inside its function. ``benchmarks/cli_startup.py`` measures the result.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

#: command name -> ("module:attribute" inside webpy_socketio.cli, short help).
#: The short help is repeated here so that listing the commands imports
#: none of them; a test checks that it equals each command's own.
COMMANDS = {
    "new": ("new:new", "Create a project: a web.py app with realtime websockets."),
    "runserver": ("runserver:runserver", "Serve for development, reloading on every change."),
    "serve": ("serve:serve", "Serve in production: N workers, no reloader."),
    "client": ("client:client", "Put the official socket.io client in static/ (offline)."),
    "nginx-config": ("nginx:nginx_config", "Write the nginx config for production."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module_name, attribute = COMMANDS[name][0].split(":")
        module = importlib.import_module(f"webpy_socketio.cli.{module_name}")
        command: Any = getattr(module, attribute)
        return command  # type: ignore[no-any-return]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, short_help) for name, (_, short_help) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(None, "--version", "-V", package_name="webpy-socketio", prog_name="wsio")
def cli() -> None:
    """webpy-socketio: realtime websockets for web.py apps.

    \b
    wsio new mychat       create a project with a working chat room
    wsio runserver        serve it, reloading on every change
    wsio client           serve the socket.io client from static/ (offline)
    wsio serve -w 4       serve it in production
    wsio nginx-config     write nginx's part for production

    Run wsio COMMAND --help for a command's options.
    """


def main() -> None:
    cli(prog_name="wsio")
