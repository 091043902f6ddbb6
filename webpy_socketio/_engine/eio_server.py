"""The Engine.IO server: HTTP requests in, sessions out, as the protocol says.

python-engineio's ``Server`` keeps doing what python-socketio needs of it
(the session table, events to python-socketio, ``send``/``disconnect``),
but the requests themselves are answered here, from the Engine.IO v4
specification, because engine.io answers several of them otherwise:

- ``EIO`` and ``transport`` are mandatory on every request: a GET without
  ``transport`` was served as polling (the spec: 400);
- any method but GET, POST and OPTIONS is a 400 (engine.io: 405);
- the handshake announces ``pingInterval`` and ``pingTimeout`` in exact
  milliseconds (engine.io truncated to whole seconds: 0.3 s became 0);
- a POST is answered ``ok`` (engine.io: ``OK``);
- a session whose ping timed out is refused at once (engine.io swept
  expired sessions periodically and answered them meanwhile); see
  :class:`~.eio_socket.Socket` for the heartbeat itself;
- a closed session leaves the table as it closes.

CORS is decided here too (the rules of :mod:`webpy_socketio.origins`:
``None`` is the app's own origin only, ``"*"`` anyone, a callable
decides), so no private helper of engine.io is needed for it.
"""

from __future__ import annotations

import gzip
import zlib
from typing import Any
from urllib.parse import parse_qs

import engineio
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet
from engineio import payload as eio_payload

from .._websocket.connection import TRAFFIC, handshake_error
from ..origins import own_origins
from .eio_socket import Socket
from .transport import EngineWebSocket

#: Methods a client may use (anything else is a 400, as the spec asks).
METHODS = ("GET", "POST", "OPTIONS")


def milliseconds(seconds: float) -> int:
    """Seconds as whole milliseconds, rounded (0.3 -> 300)."""
    return int(round(seconds * 1000))


def _response(status: str, body: bytes, content_type: str = "text/plain") -> dict[str, Any]:
    return {"status": status, "headers": [("Content-Type", content_type)], "response": body}


def bad_request(reason: str) -> dict[str, Any]:
    """A 400 whose body says why, as JSON text (what engine.io sent too)."""
    return _response("400 Bad Request", engineio.json.dumps(reason).encode("utf-8"))


def _close_at_once(ws: Any) -> list[bytes]:
    return []  # EngineWebSocket closes the connection when this returns


class EngineIOServer(engineio.Server):
    """python-engineio's server answering requests as the protocol says.

    :param socket_class: the session class (the stock
        :class:`~.eio_socket.Socket` or the fast path's
        :class:`~.direct.DirectSocket`).
    """

    #: the session class; subclasses for each path set it
    socket_class: type[Socket] = Socket

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # the heartbeat is timed per session (eio_socket.Socket); engine.io's
        # sweep over every session would only find what the timers found
        kwargs["monitor_clients"] = False
        super().__init__(*args, **kwargs)
        # engine.io's own websocket class, for servers that are not ours
        fallback = self._async.get("websocket")
        self.websocket_class = type("EngineWebSocket", (EngineWebSocket,), {"fallback": fallback})
        self._warned: set[str] = set()

    # -- requests ------------------------------------------------------------

    def handle_request(self, environ: dict[str, Any], start_response: Any) -> Any:
        r = self._route(environ, start_response)
        if not isinstance(r, dict):
            return r  # a websocket: it has answered for itself
        if (
            self.http_compression
            and len(r["response"]) >= self.compression_threshold
            and r["status"].startswith("200")
        ):
            r = self._compressed(r, environ)
        start_response(r["status"], r["headers"] + self.cors_headers(environ))
        return [r["response"]]

    def _route(self, environ: dict[str, Any], start_response: Any) -> Any:
        origin = environ.get("HTTP_ORIGIN")
        if origin and self.cors_allowed_origins != [] and not self.origin_allowed(origin, environ):
            return self.refuse("bad-origin", "Not an accepted origin", origin)
        method = environ.get("REQUEST_METHOD", "")
        if method == "OPTIONS":
            return {"status": "204 No Content", "headers": [], "response": b""}
        if method not in METHODS:
            return self.refuse("bad-method", "Method not allowed", method)
        query = parse_qs(environ.get("QUERY_STRING", ""))
        if query.get("EIO") != ["4"]:
            return self.refuse(
                "bad-version",
                "The client is using an unsupported version of the Socket.IO or Engine.IO "
                "protocols (EIO=4 is required)",
            )
        transport = (query.get("transport") or [None])[0]
        if transport not in self.transports:
            return self.refuse("bad-transport", "Invalid transport", transport)
        upgrade = environ.get("HTTP_UPGRADE", "").lower() == "websocket"
        if transport == "websocket" and not upgrade:
            return self.refuse("bad-upgrade", "Invalid websocket upgrade")
        sid = (query.get("sid") or [None])[0]
        if sid is None:
            if method != "GET":
                return self.refuse("bad-sid", "Invalid session", "(none)")
            return self._handle_connect(environ, start_response, transport)
        sock = self.sockets.get(sid)
        if sock is None or sock.closed or sock.expire_if_late():
            return self.refuse("bad-sid", "Invalid session", sid)
        if not sock.connected:
            return self.refuse("not-connected", "Not connected", sid)
        if transport == "websocket" and method == "GET" and (sock.upgraded or sock.upgrading):
            # "A client MUST NOT open more than one WebSocket connection per
            # session. Should it happen, the server MUST close the WebSocket
            # connection": accepted, then closed at once (an HTTP error
            # would reach a browser's page as an uncaught error event)
            return self.websocket_class(_close_at_once, self)(environ, start_response)
        if sock.upgraded:
            return self.refuse("unexpected-http", "Unexpected HTTP request", sid)
        if method == "GET":
            if transport == "websocket":
                return sock.upgrade(environ, start_response)
            try:
                return self.ok_packets(sock.handle_get_request(environ, start_response))
            except eio_exceptions.EngineIOError:
                return bad_request("Bad request")
        if transport != "polling":
            return self.refuse("bad-transport", "Invalid transport", transport)
        try:
            sock.handle_post_request(environ)
        except eio_exceptions.EngineIOError:
            return bad_request("Bad request")
        return _response("200 OK", b"ok", "text/html")

    def _handle_connect(
        self, environ: dict[str, Any], start_response: Any, transport: str, jsonp_index: Any = None
    ) -> Any:
        """A new session: the OPEN packet over polling or websocket."""
        if transport == "websocket":
            problem = handshake_error(environ)
            if problem is not None:
                # refused before a session exists for it
                return bad_request(problem)
        sid = self.generate_id()
        sock = self.socket_class(self, sid)
        self.sockets[sid] = sock
        sock.send(
            eio_packet.Packet(
                eio_packet.OPEN,
                {
                    "sid": sid,
                    "upgrades": ["websocket"]
                    if self.allow_upgrades and transport == "polling"
                    else [],
                    "pingInterval": milliseconds(
                        self.ping_interval + self.ping_interval_grace_period
                    ),
                    "pingTimeout": milliseconds(self.ping_timeout),
                    "maxPayload": self.max_http_buffer_size,
                },
            )
        )
        accepted = self._trigger_event("connect", sid, environ, run_async=False)
        if accepted is not None and accepted is not True:
            self.sockets.pop(sid, None)
            return _response("401 Unauthorized", b'"Unauthorized"', "application/json")
        sock.schedule_ping()
        if transport == "websocket":
            result = sock.upgrade(environ, start_response)
            sock.forget()
            return result
        sock.connected = True
        try:
            return self.ok_packets(sock.poll())
        except eio_exceptions.QueueEmpty:
            return bad_request("Bad request")

    def ok_packets(self, packets: list[Any]) -> dict[str, Any]:
        """A 200 carrying ``packets`` as one long-polling payload."""
        body = eio_payload.Payload(packets=packets).encode().encode("utf-8")
        TRAFFIC.poll_packets_out += len(packets)
        TRAFFIC.poll_bytes_out += len(body)
        return _response("200 OK", body, "text/plain; charset=UTF-8")

    def _compressed(self, r: dict[str, Any], environ: dict[str, Any]) -> dict[str, Any]:
        accepted = [
            e.split(";")[0].strip() for e in environ.get("HTTP_ACCEPT_ENCODING", "").split(",")
        ]
        if "gzip" in accepted:
            body, encoding = gzip.compress(r["response"]), "gzip"
        elif "deflate" in accepted:
            body, encoding = zlib.compress(r["response"]), "deflate"
        else:
            return r
        return dict(r, response=body, headers=r["headers"] + [("Content-Encoding", encoding)])

    def refuse(self, key: str, reason: str, detail: str | None = None) -> dict[str, Any]:
        """A 400 saying ``reason``, logged as an error the first time for
        ``key`` and at INFO level after (as engine.io did)."""
        message = reason if detail is None else f"{reason} {str(detail)[:100]}"
        if key in self._warned:
            self.logger.info(message)
        else:
            self._warned.add(key)
            self.logger.error("%s (further occurrences are logged at INFO level)", message)
        return bad_request(reason)

    # -- CORS ----------------------------------------------------------------

    def origin_allowed(self, origin: str, environ: dict[str, Any]) -> bool:
        allowed = self.cors_allowed_origins
        if allowed is None:
            return origin in own_origins(environ)
        if allowed == "*":
            return True
        if callable(allowed):
            return bool(allowed(origin, environ))
        if isinstance(allowed, str):
            return origin == allowed
        return "*" in allowed or origin in allowed

    def cors_headers(self, environ: dict[str, Any]) -> list[tuple[str, str]]:
        if self.cors_allowed_origins == []:
            return []  # CORS handling turned off
        headers = []
        origin = environ.get("HTTP_ORIGIN")
        if origin and self.origin_allowed(origin, environ):
            headers.append(("Access-Control-Allow-Origin", origin))
            if self.cors_credentials:
                headers.append(("Access-Control-Allow-Credentials", "true"))
        if environ.get("REQUEST_METHOD") == "OPTIONS":
            headers.append(("Access-Control-Allow-Methods", "OPTIONS, GET, POST"))
            requested = environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS")
            if requested:
                headers.append(("Access-Control-Allow-Headers", requested))
        return headers
