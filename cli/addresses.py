"""Where the servers listen: the ``[ADDR:]PORT`` argument of ``wsio
runserver`` and ``wsio serve``, and the checks and binding that turn a
taken port into one line instead of a traceback."""

from __future__ import annotations

import errno
import re
import socket

import click


def parse_addrport(value: str | None, default_host: str, default_port: int) -> tuple[str, int]:
    """``PORT``, ``ADDR:PORT`` or ``[IPV6]:PORT`` (None: the defaults).

    :raises click.BadParameter: with a one-line reason.
    """
    if value is None:
        return default_host, default_port
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = default_host, value
    elif not host:
        raise click.BadParameter(f"{value!r} has an empty address; use 0.0.0.0:{port} or {port}.")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not re.fullmatch(r"[0-9]{1,5}", port) or not 1 <= int(port) <= 65535:
        raise click.BadParameter(f"{value!r}: the port must be a number from 1 to 65535.")
    if not re.fullmatch(r"[A-Za-z0-9.:_-]+", host):
        raise click.BadParameter(f"{value!r}: {host!r} is not a host name or an IP address.")
    return host, int(port)


def show_host(host: str) -> str:
    """``host`` as it appears in a URL (IPv6 addresses in brackets)."""
    return f"[{host}]" if ":" in host else host


def url(host: str, port: int) -> str:
    return f"http://{show_host(host)}:{port}/"


def _port_error(host: str, port: int, exc: OSError) -> click.ClickException:
    if exc.errno == errno.EADDRINUSE:
        reason = "is already in use; stop the other server or choose another port"
    elif exc.errno == errno.EACCES:
        reason = "needs privileges (ports below 1024 do); choose a port above 1023"
    else:
        reason = f"cannot be used ({exc.strerror}); choose another port"
    return click.ClickException(f"Port {port} on {host} {reason}.")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` that child processes inherit.

    :raises click.ClickException: one line naming the port when it is taken
        or cannot be used.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise click.ClickException(f"Cannot listen on {host!r}: {exc.strerror}.") from None
    sock = socket.socket(family, kind, proto)
    # as every server does: a port left in TIME_WAIT by the last run is free
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        raise _port_error(host, port, exc) from None
    sock.set_inheritable(True)
    return sock


def check_ports_free(host: str, ports: list[int]) -> None:
    """Fail before any worker starts when one of the ports is taken.

    :raises click.ClickException: one line naming the first port taken.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for port in ports:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # as the server binds: reusing an address in TIME_WAIT is fine
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise _port_error(host, port, exc) from None
