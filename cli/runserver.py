"""``wsio runserver [[ADDR:]PORT]``: the development server, reloading on
every change.

This module is the command: its options, the banner, and the listening
socket, bound here once and inherited by every worker, so it never closes:
a request made during a restart waits in the kernel's backlog for the new
worker instead of being refused. The processes that serve are in
:mod:`webpy_socketio.cli.dev` (supervisor, zygote, worker, watcher).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
from typing import Any

import click

from .addresses import bind, parse_addrport, url
from .dev.watcher import WATCHERS
from .loading import DEFAULT_APP, resolve_project, use_settings
from .output import say, speak_as


def _versions() -> str:
    from importlib import metadata

    parts = []
    for label, dist in (
        ("webpy-socketio", "webpy-socketio"),
        ("web.py", "web.py"),
        ("python-socketio", "python-socketio"),
        ("gevent", "gevent"),
    ):
        try:
            parts.append(f"{label} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{label} (not installed)")
    return f"Python {platform.python_version()}, " + ", ".join(parts)


def worker_config(
    app_spec: str, root: str, listen_fd: int, browser_reload: bool, access_log: bool
) -> dict[str, Any]:
    """What every worker is given (as JSON, through the zygote)."""
    return {
        "app": app_spec,
        "root": root,
        "listen_fd": listen_fd,
        "browser_reload": browser_reload,
        "access_log": access_log,
    }


def _read_address(addrport: str | None, values: dict[str, Any]) -> tuple[str, int]:
    return parse_addrport(addrport, values["SOCKETIO_HOST"], values["SOCKETIO_PORT"])


@click.command("runserver", short_help="Serve for development, reloading on every change.")
@click.argument("addrport", required=False, metavar="[[ADDR:]PORT]")
@click.option(
    "--app",
    "app_spec",
    metavar="MODULE:ATTR",
    help=f"The web.py application or WSGI callable [default: {DEFAULT_APP} of the project "
    "found from the current folder].",
)
@click.option("--settings", "settings_module", metavar="MODULE", help="The settings module.")
@click.option("--noreload", is_flag=True, help="Serve without watching files or reloading.")
@click.option(
    "--browser-reload/--no-browser-reload",
    default=True,
    show_default=True,
    help="Make open pages reload when a template or static file changes.",
)
@click.option(
    "--reloader",
    type=click.Choice(sorted(WATCHERS)),
    default="watchdog",
    show_default=True,
    help="How changes are noticed: file system events, or polling modification times.",
)
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="One line per HTTP request on stderr.",
)
def runserver(
    addrport: str | None,
    app_spec: str | None,
    settings_module: str | None,
    noreload: bool,
    browser_reload: bool,
    reloader: str,
    access_log: bool,
) -> None:
    """Serve the project for development, restarting on every change.

    [ADDR:]PORT is optional: it defaults to SOCKETIO_HOST:SOCKETIO_PORT
    from the settings, then 127.0.0.1:8000. A change to a .py file or a
    template restarts the server in well under a second; open pages
    reconnect at once and rejoin their channels, and reload when a
    template or static file changed. An error in the code prints its
    traceback, pages show that the app failed to load, and the server
    waits for the next change. Not for production: use wsio serve.
    """
    from .loading import add_to_path, read_settings_or_exit

    speak_as("wsio runserver")
    app_spec, root = resolve_project(app_spec, "runserver")
    settings_name = use_settings(settings_module)
    # the supervisor reads settings.py, and must leave no .pyc behind that a
    # later, quicker edit could be mistaken for
    sys.dont_write_bytecode = True
    add_to_path(root)
    say(_versions())
    say(f"project {root}: app {app_spec}, settings module {settings_name!r}")
    if noreload:
        host, port = _read_address(addrport, read_settings_or_exit(fresh=True))
        listener = bind(host, port)
        _warn_without_client(root)
        say(f"serving on {url(host, port)} without reloading (Ctrl-C to stop)")
        from .dev.worker import run_worker
        from .dev.zygote import preload

        # the worker's gevent socket takes the descriptor over
        config = worker_config(app_spec, root, listener.detach(), False, access_log)
        preload()
        sys.exit(run_worker(config, None, {"mode": "app"}))
    _supervise(addrport, app_spec, root, browser_reload, reloader, access_log)


def _warn_without_client(root: str) -> None:
    """Say so when pages will not get the official client: no local copy
    in static/ and the CDN cannot be reached (checked in the background, so
    the start is not delayed)."""
    from .client import warn_when_unreachable

    warn_when_unreachable(root)


def _supervise(
    addrport: str | None,
    app_spec: str,
    root: str,
    browser_reload: bool,
    reloader: str,
    access_log: bool,
) -> None:
    from webpy_socketio._history import HANDOVER_ENV
    from webpy_socketio.templating import BROWSER_RELOAD_ENV, DEV_SERVER_ENV

    from .dev.supervisor import ReloadSupervisor
    from .dev.watcher import ProjectFiles, make_watcher
    from .loading import describe_error, read_settings

    files = ProjectFiles(root, watch_static=browser_reload)
    watcher = make_watcher(reloader, files)
    try:
        while True:
            try:
                host, port = _read_address(addrport, read_settings(fresh=True))
                break
            except click.BadParameter:
                raise
            except Exception as exc:
                # a broken settings.py: wait for it to be fixed, like code
                sys.stderr.write(describe_error(exc))
                say("waiting for a change to read the settings again")
                while not watcher.wait(timeout=None):
                    pass
        listener = bind(host, port)
    except BaseException:
        watcher.close()
        raise
    _warn_without_client(root)
    say(f"watching {files.describe()} ({watcher.name})")
    say(f"serving on {url(host, port)} (Ctrl-C to stop)")
    env = dict(os.environ)
    env[DEV_SERVER_ENV] = "1"
    # channel history kept in memory passes from each worker to the next
    handover = tempfile.mkdtemp(prefix="wsio-history-")
    env[HANDOVER_ENV] = os.path.join(handover, "history.json")
    if browser_reload:
        env[BROWSER_RELOAD_ENV] = "1"
    else:
        env.pop(BROWSER_RELOAD_ENV, None)

    def zygote_command(control_fd: int) -> list[str]:
        config = worker_config(app_spec, root, listener.fileno(), browser_reload, access_log)
        config["control_fd"] = control_fd
        return [sys.executable, "-m", "webpy_socketio.cli.dev.zygote", json.dumps(config)]

    try:
        status = ReloadSupervisor(listener, zygote_command, env, watcher, browser_reload).run()
    finally:
        shutil.rmtree(handover, ignore_errors=True)
    listener.close()
    if status:
        sys.exit(status)
