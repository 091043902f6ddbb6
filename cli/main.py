"""The ``wsio`` command group."""

from __future__ import annotations

import click


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("webpy-socketio")
    except metadata.PackageNotFoundError:  # pragma: no cover - checkout not installed
        return "0+unknown"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
