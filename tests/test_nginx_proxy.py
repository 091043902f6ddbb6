"""Generated nginx configs in front of real servers: the official
socket.io-client (Node) through the http config over websocket, polling and
the default upgrade, through TLS and through the stream config; static files
served by nginx; two backends behind each sticky policy serving polling
clients without "Invalid session" (and round robin failing, which is why the
policy exists)."""

from __future__ import annotations

import contextlib
import http.client
import itertools
import re
import ssl
import time
from collections.abc import Iterator

import pytest
from nginx_support import Nginx, generate, listen_port, nginx_binary
from support import AppServer, NodeAgent, output_dir, wait_until
from test_nginx_config import make_cert, require_openssl

pytestmark = [pytest.mark.nginx, pytest.mark.server, pytest.mark.node]

_names = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}{next(_names)}-{time.monotonic_ns()}"


@pytest.fixture(scope="module")
def backends() -> Iterator[list[AppServer]]:
    """Two independent processes of tests/apps/basic_app.py (no queue)."""
    nginx_binary()
    with contextlib.ExitStack() as cleanup:
        servers = []
        for i in range(2):
            servers.append(AppServer("basic_app.py", f"nginx-backend{i}"))
            cleanup.callback(servers[-1].stop)
        yield servers


@pytest.fixture(scope="module")
def http_proxy(backends) -> Iterator[tuple[Nginx, str]]:
    """The default http config in front of the first backend."""
    port, listen = listen_port()
    text = generate("--listen", listen, "--upstream", f"127.0.0.1:{backends[0].port}")
    proxy = Nginx(text, "http", "http", [port])
    yield proxy, f"http://127.0.0.1:{port}"
    proxy.stop()


def exchange(agent: NodeAgent, url: str, transport: str) -> None:
    """Two clients: connect, echo with ack, subscribe, channel broadcast."""
    for client in ("a", "b"):
        result = agent.connect(client, url, transport, query={"name": client})
        assert result["transport"] == transport
    assert agent.call("send", "a", data="hello") == {"echo": "hello"}
    room = unique("room-")
    for client in ("a", "b"):
        assert agent.call("subscribe", client, channel=room) == {"ok": True}
    agent.call("send", "a", data={"op": "broadcast_channel", "data": {"to": room}})
    agent.wait_for("b", lambda m: m == {"to": room})
    assert agent.call("emit", "b", event="shout", args=["quiet"]) == "QUIET"


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_http_config_carries_both_transports(http_proxy, agent, transport):
    proxy, url = http_proxy
    exchange(agent, url, transport)
    if transport == "websocket":
        # the handshake went through nginx as an upgrade (logged when it ends)
        for client in ("a", "b"):
            agent.call("disconnect", client)
        assert wait_until(
            lambda: any(
                "transport=websocket" in line and '" 101 ' in line for line in proxy.access_log()
            )
        ), proxy.access_log()


def test_http_config_default_mode_upgrades(http_proxy, agent):
    _, url = http_proxy
    agent.connect("a", url, "default")
    assert wait_until(lambda: agent.call("transport", "a") == "websocket", timeout=5)
    assert agent.call("send", "a", data="up") == {"echo": "up"}


def test_http_config_passes_the_other_routes(http_proxy, backends):
    _, url = http_proxy
    status, body = fetch(url + "/")
    assert (status, body) == (200, "webpy-socketio test app")
    # the client extension comes from the app through the Socket.IO location
    status, body = fetch(url + "/socket.io/wsio.js")
    assert status == 200 and "subscribe" in body


@pytest.mark.parametrize("transport", ["websocket", "polling", "default"])
def test_stream_config(backends, agent, transport):
    port, listen = listen_port()
    text = generate(
        "--mode", "stream", "--listen", listen, "--upstream", f"127.0.0.1:{backends[0].port}"
    )
    proxy = Nginx(text, "stream", f"stream-{transport}", [port])
    try:
        url = f"http://127.0.0.1:{port}"
        if transport == "default":
            agent.connect("a", url, "default")
            assert wait_until(lambda: agent.call("transport", "a") == "websocket", timeout=5)
            assert agent.call("send", "a", data="up") == {"echo": "up"}
        else:
            exchange(agent, url, transport)
    finally:
        proxy.stop()


def test_static_files_come_from_nginx(backends, tmp_path):
    static = tmp_path / "static"
    static.mkdir()
    (static / "hello.txt").write_text("served by nginx\n")
    port, listen = listen_port()
    text = generate(
        "--listen",
        listen,
        "--upstream",
        f"127.0.0.1:{backends[0].port}",
        "--static-root",
        str(static),
    )
    proxy = Nginx(text, "http", "static", [port])
    try:
        status, body = fetch(f"http://127.0.0.1:{port}/static/hello.txt")
        assert (status, body) == (200, "served by nginx\n")
        assert fetch(f"http://127.0.0.1:{port}/static/missing.txt")[0] == 404
        # the app itself does not have it: nginx answered
        assert backends[0].get("/static/hello.txt")[0] == 404
    finally:
        proxy.stop()


# -- TLS --------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_proxy(backends) -> Iterator[tuple[Nginx, int, int]]:
    folder = output_dir("nginx") / "tls-cert"
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    make_cert(require_openssl(), cert, key)
    http_port, http_listen = listen_port()
    tls_port, tls_listen = listen_port()
    text = generate(
        "--listen",
        http_listen,
        "--tls-listen",
        tls_listen,
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        "--upstream",
        f"127.0.0.1:{backends[0].port}",
    )
    proxy = Nginx(text, "http", "tls", [http_port, tls_port])
    yield proxy, http_port, tls_port
    proxy.stop()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_tls_config_carries_both_transports(tls_proxy, agent, transport):
    _, _, tls_port = tls_proxy
    url = f"https://127.0.0.1:{tls_port}"
    for client in ("a", "b"):
        # the certificate is self-signed; what is tested is nginx, not a CA
        agent.connect(client, url, transport, rejectUnauthorized=False)
    room = unique("room-")
    for client in ("a", "b"):
        assert agent.call("subscribe", client, channel=room) == {"ok": True}
    agent.call("send", "a", data={"op": "broadcast_channel", "data": "over tls"})
    agent.wait_for("b", lambda m: m == "over tls")


def test_tls_websocket_from_the_page_origin_passes_same_origin_check(tls_proxy, agent):
    """A browser on https://host:port sends that Origin; the app sees plain
    http from nginx and accepts it only thanks to X-Forwarded-Proto/Host."""
    _, _, tls_port = tls_proxy
    url = f"https://127.0.0.1:{tls_port}"
    agent.connect("a", url, "websocket", rejectUnauthorized=False, extraHeaders={"Origin": url})
    assert agent.call("send", "a", data="same origin") == {"echo": "same origin"}
    ok, error = agent.try_call(
        "connect",
        "evil",
        url=url,
        timeout=5,
        options={
            "transports": ["websocket"],
            "rejectUnauthorized": False,
            "extraHeaders": {"Origin": "https://evil.example"},
        },
    )
    assert not ok and "connect_error" in error


def polling_handshake(host: str, port: int, origin: str, tls: bool) -> tuple[int, str]:
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=5, context=context
        )
    else:
        conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("GET", "/socket.io/?EIO=4&transport=polling", headers={"Origin": origin})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def test_tls_polling_same_origin_check(tls_proxy, backends):
    _, _, tls_port = tls_proxy
    page = f"https://127.0.0.1:{tls_port}"
    status, body = polling_handshake("127.0.0.1", tls_port, page, tls=True)
    assert status == 200 and body.startswith('0{"sid"')
    status, _ = polling_handshake("127.0.0.1", tls_port, "https://evil.example", tls=True)
    assert status == 400
    # control: without the proxy's headers the app refuses the https origin,
    # so the pass above is the generated config's doing
    status, _ = polling_handshake("127.0.0.1", backends[0].port, page, tls=False)
    assert status == 400


def test_plain_http_redirects_to_tls(tls_proxy):
    _, http_port, tls_port = tls_proxy
    conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
    try:
        conn.request("GET", "/room/7?x=1")
        response = conn.getresponse()
        assert response.status == 301
        assert response.getheader("Location") == f"https://127.0.0.1:{tls_port}/room/7?x=1"
    finally:
        conn.close()


# -- several backends --------------------------------------------------------

#: polling clients per stickiness test: at least MIN_CLIENTS, and more (up
#: to MAX_CLIENTS) until both backends have one; the hashes depend on the
#: backends' random ports, so a fixed small set could all land on one
MIN_CLIENTS, MAX_CLIENTS = 6, 30


def spread_clients(
    agent: NodeAgent, url: str, backends: list[AppServer], options: list[dict], stop: bool = True
) -> dict[int, list[str]]:
    """Connect polling clients (one per options dict, stopping once both
    backends have one when ``stop``), make each do several polling round
    trips, and return {backend index: [client names]}."""
    ids: dict[str, str] = {}
    where: dict[int, list[str]] = {}
    for i, extra in enumerate(options):
        name = f"c{i}"
        ids[name] = agent.connect(name, url, "polling", **extra)["id"]
        for index, backend in enumerate(backends):
            if ids[name] in backend.stats()["clients"]:
                where.setdefault(index, []).append(name)
        if stop and len(where) == 2 and len(ids) >= MIN_CLIENTS:
            break
    for round_trip in range(3):
        for name in ids:
            assert agent.call("send", name, data=[name, round_trip]) == {"echo": [name, round_trip]}
    assert sorted(n for group in where.values() for n in group) == sorted(ids)
    return where


def assert_no_invalid_session(backends: list[AppServer]) -> None:
    for backend in backends:
        assert "Invalid session" not in backend.output(), backend.output()[-2000:]


@pytest.fixture
def sticky_proxy(backends):
    started: list[Nginx] = []

    def start(sticky: str, *extra: str) -> str:
        port, listen = listen_port()
        text = generate(
            "--listen",
            listen,
            "--upstream",
            f"127.0.0.1:{backends[0].port}",
            "--upstream",
            f"127.0.0.1:{backends[1].port}",
            "--sticky",
            sticky,
            *extra,
        )
        started.append(Nginx(text, "http", f"sticky-{sticky}", [port]))
        return f"http://127.0.0.1:{port}"

    yield start
    for proxy in started:
        proxy.stop()


def test_cookie_sticky_spreads_polling_clients(sticky_proxy, backends, agent):
    url = sticky_proxy("cookie")
    # withCredentials gives the Node client a cookie jar, as a browser has
    where = spread_clients(agent, url, backends, [{"withCredentials": True}] * MAX_CLIENTS)
    assert len(where) == 2, where  # both processes got clients
    assert_no_invalid_session(backends)


def test_hash_sticky_spreads_polling_clients_by_address(sticky_proxy, backends, agent):
    url = sticky_proxy("hash")
    addresses = [f"127.0.0.{i}" for i in range(2, 2 + MAX_CLIENTS)]
    where = spread_clients(agent, url, backends, [{"localAddress": a} for a in addresses])
    assert len(where) == 2, where
    assert_no_invalid_session(backends)


def test_ip_hash_keeps_a_whole_slash_24_on_one_process(sticky_proxy, backends, agent):
    """ip_hash uses the first three octets: 127.0.0.x all land together,
    127.0.N.1 spread."""
    url = sticky_proxy("ip_hash")
    same_24 = [{"localAddress": f"127.0.0.{i}"} for i in range(2, 2 + MIN_CLIENTS * 2)]
    assert len(spread_clients(agent, url, backends, same_24, stop=False)) == 1
    agent.close()
    other = NodeAgent("ip-hash")
    try:
        many_24 = [{"localAddress": f"127.0.{i}.1"} for i in range(1, 1 + MAX_CLIENTS)]
        assert len(spread_clients(other, url, backends, many_24)) == 2
    finally:
        other.close()
    assert_no_invalid_session(backends)


def test_round_robin_breaks_polling(agent):
    """The hazard the sticky policy removes: the same config without it
    sends a session's requests to both processes, which refuse the other's
    session ids. (Fresh backends: their logs are searched.)"""
    with contextlib.ExitStack() as cleanup:
        backends = []
        for i in range(2):
            backends.append(AppServer("basic_app.py", f"round-robin{i}"))
            cleanup.callback(backends[-1].stop)
        port, listen = listen_port()
        upstreams = [f"--upstream=127.0.0.1:{b.port}" for b in backends]
        text = generate("--listen", listen, *upstreams)
        text = re.sub(r"\n\s*hash \$remote_addr consistent;", "", text)
        assert "hash $remote_addr" not in text  # nginx's default: round robin
        cleanup.callback(Nginx(text, "http", "round-robin", [port]).stop)
        failures = 0
        for i in range(4):
            ok, _ = agent.try_call(
                "connect",
                f"r{i}",
                url=f"http://127.0.0.1:{port}",
                timeout=4,
                options={"transports": ["polling"]},
            )
            failures += not ok
        assert failures > 0
        assert any("Invalid session" in b.output() for b in backends)


def fetch(url: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
