"""Mako helpers for the client scripts include.

In a page template::

    <%include file="socketio_scripts.html"/>

with the package's template folder in the lookup::

    from webpy_socketio.templating import template_lookup
    lookup = template_lookup(["templates"], default_filters=["h"])
"""

from __future__ import annotations

import os
from html import escape
from typing import Any

from . import jsclient, settings

#: Folder holding ``socketio_scripts.html``.
TEMPLATE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
#: Where a local copy of the official client is looked for, relative to the
#: app's working folder, and the URL web.py serves it at.
LOCAL_CLIENT_PATH = jsclient.LOCAL_PATH
LOCAL_CLIENT_URL = jsclient.LOCAL_URL
#: Set to "1" by ``wsio runserver`` (unless ``--no-browser-reload``).
BROWSER_RELOAD_ENV = "WSIO_BROWSER_RELOAD"
#: Set to "1" by ``wsio runserver`` for its workers.
DEV_SERVER_ENV = "WSIO_DEV_SERVER"


def template_lookup(directories: list[str] | tuple[str, ...] = (), **kwargs: Any) -> Any:
    """A ``mako.lookup.TemplateLookup`` over ``directories`` plus the
    package's template folder (searched last)."""
    from mako.lookup import TemplateLookup

    return TemplateLookup(directories=[*directories, TEMPLATE_DIR], **kwargs)


def add_template_dir(lookup: Any) -> Any:
    """Append the package's template folder to an existing lookup."""
    if TEMPLATE_DIR not in lookup.directories:
        lookup.directories.append(TEMPLATE_DIR)
    return lookup


def client_source() -> tuple[str, str | None]:
    """The URL browsers load the official client from, and its integrity
    hash (None when there is none to check)."""
    if os.path.isfile(LOCAL_CLIENT_PATH):
        return LOCAL_CLIENT_URL, None
    url = settings.get("SOCKETIO_CLIENT_URL")
    if url == settings.DEFAULT_CLIENT_URL:
        return url, settings.DEFAULT_CLIENT_INTEGRITY
    return url, settings.get("SOCKETIO_CLIENT_INTEGRITY")


def script_tags(resource: str = "socket.io") -> str:
    """The ``<script>`` tags for the official client and the extension."""
    url, integrity = client_source()
    client = f'<script src="{escape(url)}"'
    if integrity:
        client += f' integrity="{escape(integrity)}" crossorigin="anonymous"'
    client += "></script>"
    extension = f'<script src="/{escape(resource.strip("/"))}/wsio.js"'
    # where the client was to come from: wsio.js names it on the page when
    # the client did not load (offline, blocked, a wrong integrity hash)
    extension += f' data-client="{escape(url)}"'
    if os.environ.get(DEV_SERVER_ENV) == "1":
        # only under `wsio runserver`: after a restart wsio.js reconnects at
        # once, and shows when the server is reloading or the app failed
        extension += " data-wsio-dev"
    if os.environ.get(BROWSER_RELOAD_ENV) == "1":
        # only under `wsio runserver`: wsio.js then reloads the page when
        # the server says a template or static file changed
        extension += " data-wsio-reload"
    extension += "></script>"
    return client + "\n" + extension + "\n"
