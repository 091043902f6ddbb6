"""``wsio client``: put the official socket.io-client in the project's
``static/``, so its pages work without the CDN (offline, on a closed
network, behind a strict firewall).

The copy comes from npm, at exactly the version webpy-socketio pins
(:mod:`webpy_socketio.jsclient`), and is checked twice before it is
written: the tarball against npm's published integrity hash, the file
against the subresource-integrity hash the CDN copy carries. ``wsio new``
runs the same fetch when npm is installed. Without npm, the command says
how to put the file there by hand; ``wsio client --check`` verifies it.

This module also holds the start-up warning of ``wsio runserver`` for a
project whose pages cannot get the client at all.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlsplit

import click

from webpy_socketio import jsclient

#: Seconds npm may take to fetch the package.
NPM_TIMEOUT = 120.0
#: Seconds the CDN check of ``wsio runserver`` waits for an answer.
REACH_TIMEOUT = 3.0


class ClientFetchError(click.ClickException):
    """The client could not be fetched or did not pass its checks; the
    message says why and how to put it in place by hand."""


def by_hand(root: str | os.PathLike[str]) -> str:
    """How to put the client in place without ``wsio client``."""
    target = Path(jsclient.local_copy(root))
    return (
        f"Install Node.js with npm and run 'wsio client' again, or download "
        f"{jsclient.CDN_URL} on a machine that can reach it, save it as {target} and check it "
        "with 'wsio client --check'."
    )


def _npm() -> str | None:
    return shutil.which("npm")


def fetch(root: str | os.PathLike[str], npm: str | None = None) -> Path:
    """Fetch the pinned client with npm into ``root/static/``, checked.

    :returns: the path written.
    :raises ClientFetchError: without npm, when npm fails (no network, no
        registry) or when a hash does not match; nothing is written then.
    """
    npm = npm or _npm()
    if npm is None:
        raise ClientFetchError(f"npm is not installed. {by_hand(root)}")
    spec = f"{jsclient.PACKAGE}@{jsclient.VERSION}"
    target = Path(jsclient.local_copy(root))
    with tempfile.TemporaryDirectory(prefix="wsio-client-") as tmp:
        try:
            result = subprocess.run(
                [npm, "pack", spec, "--json", "--pack-destination", tmp, "--prefer-offline"],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=NPM_TIMEOUT,
                # never prompt (a first run of npx-style tools can), never a spinner
                stdin=subprocess.DEVNULL,
                env={**os.environ, "npm_config_update_notifier": "false"},
            )
        except subprocess.TimeoutExpired:
            raise ClientFetchError(
                f"npm did not fetch {spec} within {NPM_TIMEOUT:g} s. {by_hand(root)}"
            ) from None
        if result.returncode != 0:
            errors = [ln for ln in result.stderr.splitlines() if ln.strip()]
            reason = errors[-1].removeprefix("npm error ").strip() if errors else "no output"
            raise ClientFetchError(f"npm could not fetch {spec} ({reason}). {by_hand(root)}")
        tarballs = list(Path(tmp).glob("*.tgz"))
        if len(tarballs) != 1:
            raise ClientFetchError(f"npm pack {spec} left no tarball. {by_hand(root)}")
        data = _checked_dist_file(tarballs[0], spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    # a page being served never sees half a file
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, target)
    return target


def _checked_dist_file(tarball: Path, spec: str) -> bytes:
    tarball_hash = jsclient.integrity_of(tarball.read_bytes(), "sha512")
    if tarball_hash != jsclient.NPM_INTEGRITY:
        raise ClientFetchError(
            f"The tarball npm gave for {spec} does not have the pinned integrity hash "
            f"({tarball_hash[:20]}... instead of {jsclient.NPM_INTEGRITY[:20]}...); nothing was "
            "written. Check your npm registry setting."
        )
    with tarfile.open(tarball, "r:gz") as archive:
        member = archive.extractfile(f"package/{jsclient.DIST_FILE}")
        if member is None:
            raise ClientFetchError(f"{spec} has no {jsclient.DIST_FILE}; nothing was written.")
        data = member.read()
    if jsclient.integrity_of(data) != jsclient.INTEGRITY:
        raise ClientFetchError(
            f"{jsclient.DIST_FILE} of {spec} does not have the pinned integrity hash; nothing "
            "was written."
        )
    return data


def fetch_for_new_project(root: Path) -> str:
    """What ``wsio new`` prints after trying to fetch the client (it never
    fails the command: the project works with the CDN)."""
    if _npm() is None:
        return (
            "Pages load the socket.io client from its CDN. npm is not installed, so no local "
            "copy was made; to work offline, run 'wsio client' in the project once npm is "
            "installed, or see 'wsio client --help'."
        )
    try:
        fetch(root)
    except ClientFetchError as exc:
        return f"No local copy of the socket.io client was made: {exc.message}"
    return (
        f"Put {jsclient.PACKAGE} {jsclient.VERSION} (from npm, integrity checked) in "
        f"{jsclient.LOCAL_PATH}: pages work offline."
    )


# -- the warning of wsio runserver ---------------------------------------------------


def unreachable_reason(url: str, timeout: float = REACH_TIMEOUT) -> str | None:
    """Why ``url``'s server cannot be reached from here (it cannot be
    resolved, or no connection opens within ``timeout``), or None when it
    can (or ``url`` is on this server: a path, not a URL)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return None
    except socket.gaierror as exc:
        return f"{parts.hostname} cannot be resolved: {exc.strerror}"
    except OSError as exc:
        return f"{parts.hostname}:{port} cannot be reached: {exc.strerror or exc}"


def warn_when_unreachable(root: str | os.PathLike[str], wait: bool = False) -> None:
    """Print a warning when the project's pages cannot get the client: no
    local copy in ``root/static/`` and the client URL cannot be reached.

    The check runs in a background thread (a slow resolver does not delay
    the start) unless ``wait`` is true.
    """
    from webpy_socketio import settings

    from .output import say

    if os.path.isfile(jsclient.local_copy(root)):
        return
    url = settings.get("SOCKETIO_CLIENT_URL")

    def check() -> None:
        reason = unreachable_reason(url)
        if reason is not None:
            say(
                f"warning: pages load the socket.io client from {url}, and {reason}; until "
                f"it can, pages will not connect. Run 'wsio client' in {root} to serve a local "
                f"copy from static/."
            )

    if wait:
        check()
    else:
        threading.Thread(target=check, name="wsio-client-check", daemon=True).start()


# -- the command ---------------------------------------------------------------------


@click.command("client", short_help="Put the official socket.io client in static/ (offline).")
@click.option(
    "--directory",
    "-d",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The project's folder [default: the project found from the current folder].",
)
@click.option(
    "--check", is_flag=True, help="Only check the copy in static/; exit status 1 if it is wrong."
)
@click.option("--force", is_flag=True, help="Fetch again even when the copy is right.")
def client(directory: Path | None, check: bool, force: bool) -> None:
    """Put the official socket.io-client, the version webpy-socketio pins,
    in the project's static/ folder, so that its pages work offline. The
    pages then load /static/socket.io.min.js instead of the CDN copy.

    The copy comes from npm (Node.js must be installed) and is checked
    against the pinned integrity hashes before it is written. Without npm,
    download the CDN copy elsewhere, save it as static/socket.io.min.js and
    run wsio client --check.
    """
    from .loading import find_project_root

    root = directory or find_project_root()
    if root is None:
        raise click.ClickException(
            f"No app.py in {os.getcwd()} or a folder above it. Run wsio client in the folder "
            "of a project made by 'wsio new', or pass --directory."
        )
    problem = jsclient.copy_problem(root)
    where = os.path.relpath(jsclient.local_copy(root))
    if check:
        if problem is not None:
            raise click.ClickException(f"{problem[0].upper()}{problem[1:]}. {by_hand(root)}")
        click.echo(f"{where} is {jsclient.PACKAGE} {jsclient.VERSION}, integrity checked.")
        return
    if problem is None and not force:
        click.echo(f"{where} is already {jsclient.PACKAGE} {jsclient.VERSION} (integrity checked).")
        return
    if problem is not None and "integrity" in problem:
        click.echo(f"Replacing {where}: {problem}.")
    fetch(root)
    click.echo(
        f"Put {jsclient.PACKAGE} {jsclient.VERSION} (from npm, integrity checked) in {where}; "
        "pages load it instead of the CDN copy."
    )
