"""``wsio serve [[ADDR:]PORT] --workers N``: the production server.

No reloader. N worker processes (one by default) listen on consecutive
ports (PORT, PORT+1, ...) under a small supervisor that never imports
gevent or the app (both are in :mod:`webpy_socketio.cli.workers`).

Why consecutive ports and not one shared listening socket: with a shared
socket the kernel hands each *connection* to whichever worker accepts
first, and a Socket.IO long-polling session is many HTTP requests that must
all reach the process that created it; on another one they fail with
"Invalid session". Separate ports let nginx route each client to one worker
(``wsio nginx-config --workers N`` writes that sticky upstream), and a
message queue carries broadcasts between the workers, which is why N > 1
requires ``SOCKETIO_MESSAGE_QUEUE``.
"""

from __future__ import annotations

import sys

import click

from .addresses import check_ports_free, parse_addrport
from .loading import DEFAULT_APP, add_to_path, read_settings_or_exit, resolve_project, use_settings
from .output import speak_as

#: Most workers one command may start.
MAX_WORKERS = 64


def check_queue(url: str) -> None:
    """Refuse a message queue that cannot work: its client library is not
    installed, or it cannot be reached.

    :raises click.ClickException: one line naming the queue and the fix.
    """
    from webpy_socketio.exceptions import WebpySocketIOError
    from webpy_socketio.messagequeue import check_reachable, describe

    try:
        check_reachable(url)
    except WebpySocketIOError as exc:
        raise click.ClickException(str(exc)) from None
    except ImportError as exc:
        package = (exc.name or "redis").split(".")[0]
        extra = "'webpy-socketio[redis]'" if package == "redis" else package
        raise click.ClickException(
            f"SOCKETIO_MESSAGE_QUEUE={describe(url)!r} needs the {package} package, which is "
            f"not installed: pip install {extra}."
        ) from None


# -- the command --------------------------------------------------------------


@click.command("serve", short_help="Serve in production: N workers, no reloader.")
@click.argument("addrport", required=False, metavar="[[ADDR:]PORT]")
@click.option(
    "-w",
    "--workers",
    type=int,
    default=1,
    show_default=True,
    metavar="N",
    help="Worker processes, on consecutive ports from PORT. N > 1 needs "
    "SOCKETIO_MESSAGE_QUEUE, and nginx in front (wsio nginx-config --workers N).",
)
@click.option(
    "--app",
    "app_spec",
    metavar="MODULE:ATTR",
    help=f"The web.py application or WSGI callable [default: {DEFAULT_APP} of the project "
    "found from the current folder].",
)
@click.option("--settings", "settings_module", metavar="MODULE", help="The settings module.")
@click.option(
    "--graceful-timeout",
    type=click.FloatRange(0, 3600),
    default=10.0,
    show_default=True,
    help="Seconds a stopping worker waits for its sockets to close.",
)
@click.option("--access-log/--no-access-log", default=True, show_default=True)
def serve(
    addrport: str | None,
    workers: int,
    app_spec: str | None,
    settings_module: str | None,
    graceful_timeout: float,
    access_log: bool,
) -> None:
    """Serve the project in production: no reloader, N worker processes.

    [ADDR:]PORT defaults to SOCKETIO_HOST:SOCKETIO_PORT from the settings.
    SIGTERM (or Ctrl-C) stops gracefully: every socket is closed cleanly and
    its on_disconnect and on_finish handlers run.
    """
    if not 1 <= workers <= MAX_WORKERS:
        raise click.BadParameter(
            f"must be from 1 to {MAX_WORKERS}, not {workers}.", param_hint="--workers"
        )
    from .workers import WorkerSpec, WorkerSupervisor

    speak_as("wsio serve")
    app_spec, root = resolve_project(app_spec, "serve")
    use_settings(settings_module)
    add_to_path(root)
    values = read_settings_or_exit()
    host, port = parse_addrport(addrport, values["SOCKETIO_HOST"], values["SOCKETIO_PORT"])
    if port + workers - 1 > 65535:
        raise click.BadParameter(f"{workers} workers from port {port} run past 65535.")
    queue = values["SOCKETIO_MESSAGE_QUEUE"]
    if workers > 1 and not queue:
        raise click.UsageError(
            f"--workers {workers} needs SOCKETIO_MESSAGE_QUEUE (for example "
            "'redis://127.0.0.1:6379/0'): without a queue a broadcast reaches only the sockets "
            "of the process that sends it."
        )
    if queue:
        check_queue(queue)
    ports = [port + i for i in range(workers)]
    check_ports_free(host, ports)
    specs = [
        WorkerSpec(app_spec, host, p, root, i, graceful_timeout, access_log)
        for i, p in enumerate(ports)
    ]
    metrics_dir = None
    if values.get("SOCKETIO_METRICS"):
        import tempfile

        metrics_dir = tempfile.mkdtemp(prefix="wsio-metrics-")
    try:
        code = WorkerSupervisor(specs, metrics_dir).run()
    finally:
        if metrics_dir is not None:
            import shutil

            shutil.rmtree(metrics_dir, ignore_errors=True)
    sys.exit(code)
