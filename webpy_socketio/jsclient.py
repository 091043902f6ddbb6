"""The official socket.io-client that pages load: its one pin, and the
local copy a project serves when it must work without the CDN.

Everything that names a client version reads it here: the CDN URL and its
integrity hash (:data:`webpy_socketio.settings.DEFAULT_CLIENT_URL`), the
copy ``wsio client`` and ``wsio new`` fetch with npm, and the README. The
npm manifests of the tests (``tests/node/package.json`` and its lock file)
must name the same version and tarball hash; a test checks that they do.

Nothing here imports anything heavy, and nothing here touches the network
(``wsio client`` does, through npm).
"""

from __future__ import annotations

import os

#: The npm package.
PACKAGE = "socket.io-client"
#: The pinned version.
VERSION = "4.8.3"
#: The file of the npm package that browsers load.
DIST_FILE = "dist/socket.io.min.js"
#: Where the socket.io documentation serves :data:`DIST_FILE` of :data:`VERSION`.
CDN_URL = f"https://cdn.socket.io/{VERSION}/socket.io.min.js"
#: Subresource-integrity hash of :data:`DIST_FILE` (the one the socket.io
#: documentation gives for :data:`CDN_URL`).
INTEGRITY = "sha384-kzavj5fiMwLKzzD1f8S7TeoVIEi7uKHvbTA3ueZkrzYq75pNQUiUi6Dy98Q3fxb0"
#: npm's integrity hash of the package tarball ``socket.io-client-VERSION.tgz``.
NPM_INTEGRITY = (
    "sha512-"
    "uP0bpjWrjQmUt5DTHq9RuoCBdFJF10cdX9X+a368j/Ft0wmaVgxlrjvK3kjvgCODOMMOz9lcaRzxmso0bTWZ/g=="
)
#: Where a project keeps its local copy, relative to its folder (the app's
#: working folder when it serves), and the URL it is served at.
LOCAL_PATH = os.path.join("static", "socket.io.min.js")
LOCAL_URL = "/static/socket.io.min.js"


def integrity_of(data: bytes, algorithm: str = "sha384") -> str:
    """The subresource-integrity string of ``data`` (``"sha384-..."``)."""
    # imported here: this module is imported with the package, by `wsio --help` too
    import base64
    import hashlib

    digest = hashlib.new(algorithm, data).digest()
    return f"{algorithm}-{base64.b64encode(digest).decode()}"


def local_copy(root: str | os.PathLike[str] = ".") -> str:
    """The path of the local copy in the project folder ``root``."""
    return os.path.join(os.fspath(root), LOCAL_PATH)


def copy_problem(root: str | os.PathLike[str] = ".") -> str | None:
    """What is wrong with the local copy in ``root``, or None when it is
    the pinned client, byte for byte."""
    path = local_copy(root)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return f"there is no {LOCAL_PATH}"
    except OSError as exc:
        return f"{LOCAL_PATH} cannot be read ({exc.strerror})"
    if integrity_of(data) != INTEGRITY:
        return (
            f"{LOCAL_PATH} is not {DIST_FILE} of {PACKAGE} {VERSION} (its integrity hash differs)"
        )
    return None
