"""``wsio nginx-config``: an nginx config for the project, ready for production.

Two modes:

``http`` (default)
    nginx speaks HTTP: it terminates TLS, serves the static files itself,
    proxies ``/socket.io/`` with the websocket upgrade headers and timeouts
    longer than the Socket.IO heartbeat, and proxies every other route to
    the same upstream. Several upstreams get a sticky policy, because an
    Engine.IO long-polling session lives in one process only.
``stream``
    a plain TCP proxy (``stream {}``), today's form of the old ``tcp {}``
    recipe that needed a recompiled nginx. It sees no HTTP: no static
    files, no TLS, no X-Forwarded-* headers.

Every value a user passes is validated (:mod:`.nginx_values`) before
anything is rendered, so none can smuggle a directive into the file.
``--check`` runs ``nginx -t`` through :mod:`.nginx_run`. Mako and the
project's settings are imported inside the command, so ``wsio --help``
stays fast.
"""

from __future__ import annotations

import math
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from .nginx_run import check_with_nginx, find_nginx
from .nginx_values import (
    Address,
    ConfigError,
    check_file_path,
    check_name,
    check_server_name,
    check_url_path,
    parse_address,
)

MODES = ("http", "stream")
#: Sticky policies for several upstreams, the first being the default.
STICKY = ("hash", "ip_hash", "cookie")
#: Most worker ports ``--workers`` may ask for.
MAX_WORKERS = 64
#: Seconds added to ping interval + ping timeout for the proxy timeouts.
TIMEOUT_MARGIN = 15


@dataclass
class NginxConfig:
    """Validated values for one rendered config."""

    mode: str = "http"
    listen: list[Address] = field(default_factory=lambda: [Address(None, 80)])
    server_names: list[str] = field(default_factory=lambda: ["_"])
    upstreams: list[Address] = field(default_factory=lambda: [Address("127.0.0.1", 8000)])
    workers: int = 1
    sticky: str = "hash"
    static_root: str | None = None
    static_url: str = "/static/"
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_listen: list[Address] = field(default_factory=lambda: [Address(None, 443)])
    resource: str = "/socket.io/"
    name: str = "wsio"
    ping_interval: float = 25
    ping_timeout: float = 20
    max_message_bytes: int = 100_000

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def proxy_timeout(self) -> int:
        """Seconds nginx waits on a quiet connection: longer than a whole
        heartbeat (ping interval + pong timeout), so only dead peers are cut."""
        return math.ceil(self.ping_interval + self.ping_timeout) + TIMEOUT_MARGIN

    @property
    def body_limit(self) -> str:
        """client_max_body_size for polling POSTs: at least nginx's 1m default
        and never below what the app accepts (a bigger message would get an
        nginx 413 instead of reaching the app's own limit)."""
        kib = max(1024, math.ceil(self.max_message_bytes / 1024) + 16)
        return f"{kib // 1024}m" if kib % 1024 == 0 else f"{kib}k"

    @property
    def redirect_target(self) -> str:
        port = self.tls_listen[0].port
        return "https://$host$request_uri" if port == 443 else f"https://$host:{port}$request_uri"

    def command_line(self) -> str:
        """The options that reproduce this config, for its header."""
        parts = ["wsio nginx-config"]
        if self.mode != "http":
            parts.append(f"--mode {self.mode}")
        parts += [f"--listen {a}" for a in self.listen]
        if self.mode == "http":
            parts += [f"--server-name {n}" for n in self.server_names]
        if self.workers > 1:
            parts.append(f"--upstream {self.upstreams[0]} --workers {self.workers}")
        else:
            parts += [f"--upstream {a}" for a in self.upstreams]
        if len(self.upstreams) > 1:
            parts.append(f"--sticky {self.sticky}")
        if self.static_root:
            parts.append(f"--static-root {self.static_root} --static-url {self.static_url}")
        if self.tls:
            parts.append(f"--tls-cert {self.tls_cert} --tls-key {self.tls_key}")
            parts += [f"--tls-listen {a}" for a in self.tls_listen]
        if self.resource != "/socket.io/":
            parts.append(f"--resource {self.resource.strip('/')}")
        if self.name != "wsio":
            parts.append(f"--name {self.name}")
        # one option per comment line keeps long command lines readable
        return " \\\n#     ".join(parts)


def render(config: NginxConfig) -> str:
    """The config text for ``config`` (values must be validated already)."""
    from mako.lookup import TemplateLookup

    lookup = TemplateLookup(
        directories=[str(Path(__file__).resolve().parent / "templates")],
        strict_undefined=True,
    )
    template = lookup.get_template(f"nginx_{config.mode}.conf.mako")
    text: str = template.render(c=config)
    # templates keep their logic readable with blank lines; collapse runs
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


# -- the command -----------------------------------------------------------


def _project_settings(module: str | None) -> Any:
    """The project's settings (``settings.py`` in the current folder, or
    ``--settings``/``WSIO_SETTINGS_MODULE``)."""
    from .loading import add_to_path, read_settings_or_exit, use_settings

    use_settings(module)
    # a console script runs with its own folder on sys.path, not the project's
    if os.getcwd() not in sys.path:
        add_to_path(os.getcwd())
    return read_settings_or_exit()


def _upstream_default(values: dict[str, Any]) -> Address:
    host = values["SOCKETIO_HOST"]
    # a server listening on every address is reached on loopback
    if host in ("0.0.0.0", "", "*"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    try:
        return parse_address(f"{host}:{values['SOCKETIO_PORT']}", "SOCKETIO_HOST/PORT", False)
    except ConfigError as exc:
        raise click.ClickException(f"The settings give no usable upstream: {exc}") from None


def build_config(
    settings_values: dict[str, Any],
    mode: str = "http",
    listen: tuple[str, ...] = (),
    server_name: tuple[str, ...] = (),
    upstream: tuple[str, ...] = (),
    workers: int = 1,
    sticky: str | None = None,
    static_root: str | None = None,
    static_url: str = "/static/",
    tls_cert: str | None = None,
    tls_key: str | None = None,
    tls_listen: tuple[str, ...] = (),
    resource: str = "socket.io",
    name: str = "wsio",
) -> NginxConfig:
    """Validate the command's values (same names as its options) into an
    :class:`NginxConfig`.

    :param settings_values: the project's settings, for the defaults.

    :raises ConfigError: for a bad value or a combination that cannot work.
    """
    config = NginxConfig(
        mode=mode,
        name=check_name(name),
        ping_interval=settings_values["SOCKETIO_PING_INTERVAL"],
        ping_timeout=settings_values["SOCKETIO_PING_TIMEOUT"],
        max_message_bytes=settings_values["SOCKETIO_MAX_MESSAGE_BYTES"],
    )
    if listen:
        config.listen = _unique([parse_address(v, "--listen") for v in listen], "--listen")
    if upstream:
        config.upstreams = _unique(
            [parse_address(v, "--upstream", port_only=False) for v in upstream], "--upstream"
        )
    else:
        config.upstreams = [_upstream_default(settings_values)]
    if not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"--workers must be from 1 to {MAX_WORKERS}, not {workers}.")
    if workers > 1:
        if len(config.upstreams) > 1:
            raise ConfigError(
                "--workers N takes one --upstream (the first worker's address); the workers "
                "listen on consecutive ports from there."
            )
        first = config.upstreams[0]
        if first.port + workers - 1 > 65535:
            raise ConfigError(f"--workers {workers} from port {first.port} runs past 65535.")
        config.upstreams = [Address(first.host, first.port + i) for i in range(workers)]
        config.workers = workers
    config.resource = check_url_path(resource, "--resource")

    if mode == "stream":
        _refuse_in_stream(server_name, static_root, tls_cert or tls_key, tls_listen, sticky)
        return config

    if server_name:
        config.server_names = list(dict.fromkeys(check_server_name(n) for n in server_name))
    config.sticky = sticky or STICKY[0]
    config.static_url = check_url_path(static_url, "--static-url")
    if config.static_url == config.resource:
        raise ConfigError(f"--static-url {static_url!r} is the Socket.IO path; choose another.")
    if static_root is None and os.path.isdir("static"):
        static_root = "static"  # a `wsio new` project keeps its assets there
    if static_root is not None:
        config.static_root = check_file_path(static_root, "--static-root").rstrip("/") + "/"
    if bool(tls_cert) != bool(tls_key):
        raise ConfigError("--tls-cert and --tls-key go together: give both or neither.")
    if tls_cert and tls_key:
        config.tls_cert = check_file_path(tls_cert, "--tls-cert")
        config.tls_key = check_file_path(tls_key, "--tls-key")
        if tls_listen:
            config.tls_listen = _unique(
                [parse_address(v, "--tls-listen") for v in tls_listen], "--tls-listen"
            )
        clash = {a.port for a in config.tls_listen} & {a.port for a in config.listen}
        if clash:
            raise ConfigError(
                f"--listen and --tls-listen both use port {min(clash)}; plain HTTP and TLS "
                "need different ports."
            )
    elif tls_listen:
        raise ConfigError("--tls-listen needs --tls-cert and --tls-key.")
    return config


def _unique(addresses: list[Address], what: str) -> list[Address]:
    seen = set()
    for address in addresses:
        if address in seen:
            raise ConfigError(f"{what} {address} is given twice.")
        seen.add(address)
    return addresses


def _refuse_in_stream(
    server_name: tuple[str, ...],
    static_root: str | None,
    tls: str | None,
    tls_listen: tuple[str, ...],
    sticky: str | None,
) -> None:
    if server_name:
        raise ConfigError("--server-name needs --mode http: a stream proxy sees no Host header.")
    if static_root:
        raise ConfigError("--static-root needs --mode http: a stream proxy cannot serve files.")
    if tls or tls_listen:
        raise ConfigError(
            "TLS needs --mode http: behind a TLS stream proxy the app sees plain http and "
            "refuses the browser's https origin."
        )
    if sticky not in (None, "hash"):
        raise ConfigError(
            f"--sticky {sticky} needs --mode http; a stream proxy can only hash the client "
            "address (--sticky hash)."
        )


def _write(path: str, text: str) -> None:
    target = Path(path)
    if target.is_dir():
        raise click.BadParameter(f"{path!r} is a folder.", param_hint="--output")
    if not target.parent.is_dir():
        raise click.BadParameter(
            f"the folder {str(target.parent)!r} does not exist.", param_hint="--output"
        )
    # write beside the target and rename, so a reload never reads half a file
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@click.command("nginx-config", short_help="Write the nginx config for production.")
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="http",
    show_default=True,
    help="http: full reverse proxy; stream: plain TCP proxy (stream {}).",
)
@click.option(
    "--listen",
    multiple=True,
    metavar="[ADDR:]PORT",
    help="Where nginx listens for plain HTTP (repeatable). [default: 80]",
)
@click.option(
    "--server-name",
    multiple=True,
    metavar="NAME",
    help="Host names this server answers (repeatable). [default: _ (any)]",
)
@click.option(
    "--upstream",
    multiple=True,
    metavar="HOST:PORT",
    help="A wsio server process (repeatable). [default: SOCKETIO_HOST:SOCKETIO_PORT]",
)
@click.option(
    "--workers",
    type=int,
    default=1,
    show_default=True,
    metavar="N",
    help="N server processes on consecutive ports from the upstream (wsio serve --workers N).",
)
@click.option(
    "--sticky",
    type=click.Choice(STICKY),
    default=None,
    help="How several upstreams keep a client on one process: hash (the client address, "
    "consistent), ip_hash (the first three IPv4 octets) or cookie (a random per-browser "
    "cookie). [default: hash]",
)
@click.option(
    "--static-root",
    metavar="DIR",
    help="Folder nginx serves at --static-url. [default: ./static when it exists]",
)
@click.option("--static-url", default="/static/", show_default=True, metavar="PATH")
@click.option(
    "--tls-cert",
    metavar="FILE",
    help="Certificate (chain) in PEM; adds a TLS server and redirects plain HTTP to it.",
)
@click.option("--tls-key", metavar="FILE", help="The certificate's private key in PEM.")
@click.option(
    "--tls-listen",
    multiple=True,
    metavar="[ADDR:]PORT",
    help="Where nginx listens for TLS (repeatable). [default: 443]",
)
@click.option(
    "--resource",
    default="socket.io",
    show_default=True,
    help="The Socket.IO path (SocketIOServer's resource, the client's path).",
)
@click.option(
    "--name",
    default="wsio",
    show_default=True,
    help="Prefix of the upstream and variable names, unique per nginx.",
)
@click.option(
    "--settings",
    "settings_module",
    metavar="MODULE",
    help="The project's settings module. [default: settings, or $WSIO_SETTINGS_MODULE]",
)
@click.option(
    "-o", "--output", metavar="FILE", help="Write the config here instead of printing it."
)
@click.option("--check", is_flag=True, help="Also run nginx -t on the config.")
def nginx_config(
    settings_module: str | None, output: str | None, check: bool, **options: Any
) -> None:
    """Print an nginx config that serves this project in production.

    Run it in the project's folder: the upstream address and the proxy
    timeouts come from its settings (SOCKETIO_HOST, SOCKETIO_PORT and the
    ping interval and timeout).
    """
    config = build_config(_project_settings(settings_module), **options)
    text = render(config)
    if output:
        _write(output, text)
        click.echo(f"Wrote {output}", err=True)
    else:
        click.echo(text, nl=False)
    if not check:
        return
    nginx = find_nginx()
    if nginx is None:
        raise click.ClickException(
            "--check: nginx is not installed (looked on PATH and in /usr/sbin), so the config "
            "was not checked."
        )
    ok, report = check_with_nginx(text, config.mode, nginx, output or "<generated config>")
    click.echo(report, err=True)
    if not ok:
        raise click.ClickException("nginx -t rejected the config (see above).")
    click.echo("nginx -t: the config is valid.", err=True)
