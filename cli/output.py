"""The commands' own lines on stderr, each starting with who speaks::

    wsio runserver: serving on http://127.0.0.1:8000/ (Ctrl-C to stop)
    wsio serve: [worker 0 pid 4242] listening on http://127.0.0.1:8000/

A command names itself once with :func:`speak_as`; the processes it starts
(zygote, workers) name themselves the same way, so every line of one
command carries the same prefix whichever process printed it.
"""

from __future__ import annotations

import click

_speaker = "wsio"


def speak_as(name: str) -> None:
    """Make ``name`` (``"wsio runserver"``, ``"wsio serve"``) the prefix of
    this process's lines, and of the processes it forks."""
    global _speaker
    _speaker = name


def say(message: str) -> None:
    """Print one line of the command's own output on stderr (where the
    servers' access logs and tracebacks go too, so the order is kept)."""
    click.echo(f"{_speaker}: {message}", err=True)
