"""The request header reader of the pywsgi handler
(webpy_socketio/_websocket/handler.py: RequestHeaders), in process, and
the same rules through a real server: pywsgi answers an invalid header
block with a 400, and a valid one reaches the environ as before."""

from __future__ import annotations

import io
import socket

import pytest
from support import AppServer

from webpy_socketio._websocket.handler import MAX_HEADERS, RequestHeaders


def read(block: bytes) -> RequestHeaders:
    return RequestHeaders.read(io.BufferedReader(io.BytesIO(block)))


def test_fields_are_read_up_to_the_blank_line_and_matched_without_case():
    headers = read(b"Host: example\r\nContent-Type:  text/plain \r\nX-A: 1\r\nx-a: 2\r\n\r\nbody")
    assert headers.status == ""
    assert headers.get("host") == "example"
    assert headers.getheader("CONTENT-TYPE") == headers.typeheader == "text/plain"
    assert headers.get("x-a") == "1", "the first of repeated fields"
    assert list(headers.headers) == [
        "Host: example\r\n",
        "Content-Type: text/plain\r\n",
        "X-A: 1\r\n",
        "x-a: 2\r\n",
    ]
    del headers["X-A"]
    assert headers.get("x-a") is None and headers.get("missing", "d") == "d"


def test_a_folded_line_continues_the_field_before_it():
    headers = read(b"X-Long: part one\r\n\tpart two\r\n  three\r\n\r\n")
    assert headers.status == ""
    assert headers.get("x-long") == "part one part two three"


@pytest.mark.parametrize(
    "block, status",
    [
        (b"no colon here\r\n\r\n", "Invalid header line"),
        (b"Host : spaced\r\n\r\n", "Invalid header line"),
        (b": no name\r\n\r\n", "Invalid header line"),
        (b" folded first\r\n\r\n", "Invalid header line"),
        (b"X: " + b"a" * 70000 + b"\r\n\r\n", "Line too long"),
        (
            b"".join(b"X-%d: v\r\n" % i for i in range(MAX_HEADERS + 1)) + b"\r\n",
            "Too many headers",
        ),
    ],
)
def test_what_is_not_a_header_block_says_why(block, status):
    assert read(block).status == status


def test_the_end_of_the_stream_ends_the_block():
    headers = read(b"Host: x\r\n")
    assert headers.status == "" and headers.get("host") == "x"


@pytest.fixture(scope="module")
def server():
    server = AppServer("basic_app.py", "request-headers")
    yield server
    server.stop()


def raw_request(server: AppServer, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


@pytest.mark.server
def test_an_invalid_header_block_is_a_400_and_a_valid_one_is_served(server):
    bad = raw_request(server, b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost x\r\n\r\n")
    assert bad.startswith(b"HTTP/1.1 400"), bad[:80]
    good = raw_request(
        server,
        b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"X-Folded: a\r\n b\r\nConnection: close\r\n\r\n",
    )
    assert good.startswith(b"HTTP/1.1 200"), good[:80]
    assert b'"sid"' in good
