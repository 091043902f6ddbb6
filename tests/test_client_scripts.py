"""The client side: the Mako include, the pinned official client, and the
extension script (served, and working in the official client)."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from support import NODE_DIR, ensure_node_client, wait_until

from webpy_socketio import settings
from webpy_socketio.templating import add_template_dir, script_tags, template_lookup


@pytest.fixture(autouse=True)
def in_an_empty_folder(tmp_path, monkeypatch):
    # a local client copy is looked for in the working folder
    monkeypatch.chdir(tmp_path)


def render_include(**data) -> str:
    lookup = template_lookup([], default_filters=["h"])
    from mako.template import Template

    page = Template('<%include file="socketio_scripts.html"/>', lookup=lookup)
    return page.render(**data)


def test_include_renders_pinned_client_and_extension():
    html = render_include()
    url, integrity = settings.DEFAULT_CLIENT_URL, settings.DEFAULT_CLIENT_INTEGRITY
    expected = f'<script src="{url}" integrity="{integrity}" crossorigin="anonymous"></script>'
    assert expected in html
    assert f'<script src="/socket.io/wsio.js" data-client="{url}"></script>' in html


def test_local_copy_wins(tmp_path):
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "socket.io.min.js").write_text("// local")
    html = render_include()
    assert '<script src="/static/socket.io.min.js"></script>' in html
    assert "cdn.socket.io" not in html


def test_custom_url_is_escaped_and_carries_its_own_integrity():
    settings.configure(SOCKETIO_CLIENT_URL='/js/io.js"><script>alert(1)</script>')
    tags = script_tags()
    assert "<script>alert(1)" not in tags
    assert "&quot;&gt;&lt;script&gt;" in tags
    assert "integrity" not in tags
    settings.configure(SOCKETIO_CLIENT_URL="/js/io.js", SOCKETIO_CLIENT_INTEGRITY="sha384-abc")
    assert (
        '<script src="/js/io.js" integrity="sha384-abc" crossorigin="anonymous">' in script_tags()
    )


def test_add_template_dir_to_an_existing_lookup():
    from mako.lookup import TemplateLookup

    lookup = add_template_dir(TemplateLookup(directories=[]))
    assert lookup.get_template("socketio_scripts.html")
    assert add_template_dir(lookup).directories.count(lookup.directories[-1]) == 1


@pytest.mark.node
def test_pinned_integrity_matches_the_npm_package():
    ensure_node_client()
    dist = NODE_DIR / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
    digest = base64.b64encode(hashlib.sha384(dist.read_bytes()).digest()).decode()
    version = settings.DEFAULT_CLIENT_URL.split("/")[-2]
    import json

    package = json.loads((dist.parent.parent / "package.json").read_text())
    assert package["version"] == version
    assert settings.DEFAULT_CLIENT_INTEGRITY == "sha384-" + digest


@pytest.mark.server
def test_extension_script_is_served(basic_server):
    import urllib.request

    with urllib.request.urlopen(basic_server.url + "/socket.io/wsio.js", timeout=5) as response:
        body = response.read()
        etag = response.headers["ETag"]
        assert response.headers["Content-Type"].startswith("application/javascript")
    assert b"wsio:subscribe" in body
    request = urllib.request.Request(
        basic_server.url + "/socket.io/wsio.js", headers={"If-None-Match": etag}
    )
    try:
        urllib.request.urlopen(request, timeout=5)
    except urllib.error.HTTPError as exc:
        assert exc.code == 304
    else:
        pytest.fail("expected 304 Not Modified")


@pytest.mark.server
@pytest.mark.node
@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_extension_resubscribes_after_reconnect(basic_server, agent, transport):
    first = agent.connect(
        "a",
        basic_server.url,
        transport,
        reconnection=True,
        reconnectionDelay=100,
        reconnectionDelayMax=200,
    )["id"]
    channel = f"room-resub-{transport}-{os.getpid()}"
    assert agent.call("subscribe", "a", channel=channel) == {"ok": True}
    assert agent.call("channels", "a") == [channel]
    agent.call("drop", "a")
    agent.wait_for("a", lambda args: True, event="reconnect", timeout=10)

    def new_member():
        members = basic_server.stats()["channel_rooms"].get("#" + channel, [])
        return [m for m in members if m != first]

    assert wait_until(new_member, timeout=5)
    assert basic_server.get(f"/oob/channel/{channel}")[0] == 200
    agent.wait_for("a", lambda m: m == {"oob": "channel", "channel": channel})
    assert agent.call("channels", "a") == [channel]
