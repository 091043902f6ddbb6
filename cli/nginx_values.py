"""Validation of the values ``wsio nginx-config`` puts into a config.

Every value a user passes goes through one of these functions before
anything is rendered, so none can smuggle a directive into the file:
``;``, braces, quotes, ``$``, ``#``, whitespace and control characters are
refused wherever nginx would read them, with a one-line error that names the
option.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass

import click

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
# nginx server names: exact names, "*.example.com", ".example.com",
# "www.example.*" and the catch-all "_". Regex names (~...) are refused: they
# need characters that could also end a directive.
_SERVER_NAME = re.compile(rf"(?:\*\.|\.)?{_LABEL}(?:\.{_LABEL})*(?:\.\*)?")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")
_URL_PATH = re.compile(r"/(?:[A-Za-z0-9._~-]+/)*")
# characters nginx reads as syntax or variables in an unquoted value
_UNSAFE = set(";{}'\"$#\\`")


class ConfigError(click.UsageError):
    """A value that cannot go into an nginx config (exit status 2); the
    message names the option."""


def _refuse_unsafe(value: str, what: str) -> None:
    """Refuse characters that would end or change an nginx directive."""
    for char in value:
        if char in _UNSAFE or char.isspace() or not char.isprintable():
            shown = repr(char)[1:-1] if not char.isprintable() or char.isspace() else char
            raise ConfigError(
                f"{what} {value!r} contains {shown!r}, which nginx would read as config syntax."
            )


@dataclass(frozen=True)
class Address:
    """A host (or None for every address) and a port."""

    host: str | None
    port: int

    def __str__(self) -> str:
        if self.host is None:
            return str(self.port)
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _digits(text: str) -> bool:
    # str.isdigit() also accepts digits such as "²" that int() refuses
    return re.fullmatch(r"[0-9]+", text) is not None


def _port(text: str, value: str, what: str) -> int:
    if not _digits(text) or not 1 <= int(text) <= 65535:
        raise ConfigError(f"{what} {value!r} needs a port from 1 to 65535, not {text!r}.")
    return int(text)


def _host(text: str, value: str, what: str, wildcard: bool) -> str | None:
    if text.startswith("[") and text.endswith("]"):
        try:
            return str(ipaddress.IPv6Address(text[1:-1]))
        except ValueError:
            raise ConfigError(f"{what} {value!r}: {text} is not an IPv6 address.") from None
    if wildcard and text == "*":
        return None
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        pass
    if len(text) <= 253 and _HOSTNAME.fullmatch(text) and not _digits(text.replace(".", "")):
        return text.rstrip(".")
    raise ConfigError(
        f"{what} {value!r}: {text!r} is not a host name, an IPv4 address or a [bracketed] "
        "IPv6 address."
    )


def parse_address(value: str, what: str, port_only: bool = True) -> Address:
    """Parse ``PORT``, ``HOST:PORT`` or ``[IPV6]:PORT``.

    :param what: the option's name, for the error message.
    :param port_only: whether a bare port (every address) is allowed.
    :raises ConfigError: with a one-line explanation.
    """
    _refuse_unsafe(value, what)
    if _digits(value):
        if not port_only:
            raise ConfigError(f"{what} {value!r} needs a host too, as in 127.0.0.1:{value}.")
        return Address(None, _port(value, value, what))
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        example = "8000, 127.0.0.1:8000 or [::1]:8000" if port_only else "127.0.0.1:8000"
        raise ConfigError(f"{what} {value!r} is not an address such as {example}.")
    return Address(_host(host, value, what, wildcard=port_only), _port(port, value, what))


def check_server_name(value: str) -> str:
    """A server name nginx accepts (``_``, a host name or a wildcard name)."""
    _refuse_unsafe(value, "--server-name")
    if value == "_" or (len(value) <= 253 and _SERVER_NAME.fullmatch(value)):
        return value.lower()
    raise ConfigError(
        f"--server-name {value!r} is not a host name; use names such as example.com, "
        "*.example.com or _ (any name). Regular expressions are not accepted."
    )


def check_file_path(value: str, what: str) -> str:
    """An absolute path (relative ones are made absolute) with no character
    nginx would interpret."""
    _refuse_unsafe(value, what)
    if not value:
        raise ConfigError(f"{what} must not be empty.")
    return os.path.abspath(value)


def check_url_path(value: str, what: str) -> str:
    """A URL path prefix such as ``/static/`` (the slashes are added)."""
    _refuse_unsafe(value, what)
    path = "/" + value.strip("/") + "/" if value.strip("/") else "/"
    if path == "/" or not _URL_PATH.fullmatch(path) or "/../" in path or "/./" in path:
        raise ConfigError(
            f"{what} {value!r} must be a path below / made of letters, digits and . _ ~ -, "
            "such as /static/."
        )
    return path


def check_name(value: str) -> str:
    """The prefix of the upstream and variable names."""
    if not _NAME.fullmatch(value):
        raise ConfigError(
            f"--name {value!r} must start with a letter and hold at most 32 letters, "
            "digits and underscores."
        )
    return value
