"""Turns python-socketio's callbacks into webpy_socketio events.

Wire protocol, in every namespace an application registered handlers for
(documented in the README):

- ``message`` (``socket.send(data)`` in the browser): ``on_message``; the
  first value other than None a handler returns is the acknowledgement.
- ``wsio:subscribe`` / ``wsio:unsubscribe`` with a channel name: acked
  ``{"ok": true}`` or ``{"ok": false, "error": "..."}``. For a channel with
  history the ack carries its ``epoch`` and ``offset``, and a subscribe
  with ``{"since": {"epoch", "offset"}}`` replays what came after it
  (``recovered``, and a ``reason`` when it could not). For a channel with
  presence it carries the state, ``"presence": {key: [meta, ...]}``, and the
  changes follow as ``wsio:presence`` events (see :mod:`._presence`).
- any other event name: the handlers registered with ``on(name)``.

Handlers are isolated from each other: one that raises is logged with its
traceback, ``on_error`` handlers receive the exception, the remaining
handlers still run and the connection stays up. Handlers of one connection
run one at a time, in the order the client sent its events.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Callable, Mapping
from time import perf_counter
from typing import Any

from . import _engine as boundary
from . import _history, _presence, admin, channels, clients, events, metrics, settings
from .clients import Client
from .events import Event
from .exceptions import Denied, InvalidChannel
from .requests import Request
from .sockets import Socket
from .wire import MESSAGE_EVENT, PROTOCOL_PREFIX, SUBSCRIBE, UNSUBSCRIBE

logger = logging.getLogger("webpy_socketio")
#: One line per received message, formatted by SOCKETIO_MESSAGE_LOG_FORMAT.
message_logger = logging.getLogger("webpy_socketio.messages")

SERVER_ERROR = "server error"


def _describe(handler: Any) -> str:
    return f"{getattr(handler, '__module__', '?')}.{getattr(handler, '__qualname__', handler)}"


def fire(
    event: Event,
    client: Client,
    *args: Any,
    channel: str | None = None,
    refusable: bool = False,
) -> list[Any]:
    """Run the handlers of ``event`` that match, return their results other
    than None.

    With ``refusable``, a handler that returns False or raises
    :class:`Denied` stops the others and :class:`Denied` propagates; a
    handler that raises anything else refuses too (closed by default).
    """
    if not event.handlers:
        return []
    scope = (channel,) if channel is not None else (lambda: client.socket.channels)
    results: list[Any] = []
    started = perf_counter() if metrics.enabled else 0.0
    for handler in event.matching(scope, client.socket.namespace):
        try:
            result = handler(client.request, client.socket, client.context, *args)
        except Denied:
            if refusable:
                raise
            logger.warning(
                "%s raised Denied in %s; only on_connect and on_subscribe handlers can refuse",
                _describe(handler),
                event.name,
            )
            continue
        except Exception as exc:
            logger.exception("%s handler %s raised", event.name, _describe(handler))
            if metrics.enabled:
                metrics.count("wsio_handler_errors_total", event.name)
            if event is not events.on_error:
                fire(events.on_error, client, exc)
            if refusable:
                raise Denied(SERVER_ERROR) from exc
            continue
        if result is False and refusable:
            raise Denied("")
        if result is not None:
            results.append(result)
    if started:
        # (a refusal that raises is not timed)
        metrics.handler_ran(event.name, perf_counter() - started)
    return results


class _LogValues(dict):
    """Environ keys for the message log; a key the request lacks shows '-'."""

    def __missing__(self, key: str) -> str:
        return "-"


def _log_message(client: Client, message: Callable[[], str]) -> None:
    fmt = settings.get("SOCKETIO_MESSAGE_LOG_FORMAT")
    if fmt is None or not message_logger.isEnabledFor(logging.INFO):
        return
    values = _LogValues(client.request.environ)
    values["TIME"] = datetime.datetime.now().replace(microsecond=0)
    # rendered only when logged: JSON-encoding every message costs
    values["MESSAGE"] = message()
    message_logger.info(fmt % values)


def _as_text(data: Any) -> str:
    try:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return repr(data)


def _first(results: list[Any]) -> Any:
    return results[0] if results else None


class Dispatcher:
    """The python-socketio handlers of one engine."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def install(self) -> None:
        # registered for every namespace ("*": python-socketio passes the
        # namespace first); which namespaces exist is the events' registry's
        # business, asked at each connect
        engine = self.engine

        def namespace_known(namespace: str) -> bool:
            return namespace == admin.namespace() or events.namespace_known(namespace)

        engine.namespace_known = namespace_known

        def on(event: str, handler: Callable[..., Any]) -> None:
            engine.on(event, handler, namespace="*")

        engine.on_rate_limited = self.rate_limited
        on("connect", self.connect)
        on("disconnect", self.disconnect)
        on(MESSAGE_EVENT, self.message)
        on(SUBSCRIBE, self.subscribe)
        on(UNSUBSCRIBE, self.unsubscribe)
        on("*", self.named)

    # -- connection lifecycle ------------------------------------------------

    def connect(
        self, namespace: str, sid: str, environ: Mapping[str, Any], auth: Any = None
    ) -> bool:
        if namespace == admin.namespace():
            admin.connect(self.engine, sid, auth)
            return True
        client = Client(Request(environ, auth), Socket(sid, self.engine, namespace))
        clients.add(client)
        try:
            fire(events.on_connect, client, refusable=True)
        except Denied as exc:
            clients.remove(sid)
            from socketio.exceptions import ConnectionRefusedError

            raise ConnectionRefusedError(exc.reason or "connection refused") from None
        metrics.count("wsio_connects_total", namespace)
        if admin.active:
            admin.socket_connected(self.engine, sid, namespace)
        return True

    def disconnect(self, namespace: str, sid: str, reason: str | None = None) -> None:
        engine = self.engine
        if namespace == admin.namespace():
            admin.disconnect(sid)
            return
        if admin.active:
            admin.socket_disconnected(engine, sid, namespace, reason)
        limiter = engine.rate_limiter
        if limiter is not None:
            limiter.forget(sid)
        # why this server ended it, when it said (a rate limit), else the engine's
        reason = engine.disconnect_reasons.pop(sid, None) or reason
        client = clients.get(sid)
        if client is None:
            return
        metrics.count("wsio_disconnects_total", namespace, str(reason))
        try:
            client.socket.disconnect_reason = reason
            fire(events.on_disconnect, client)
            # on_unsubscribe for every channel before on_finish, as the
            # original did, so channel-bound cleanup code runs on a close too
            for channel in client.socket.channels:
                fire(events.on_unsubscribe, client, channel, channel=channel)
            fire(events.on_finish, client)
        finally:
            try:
                # after the handlers, which may untrack (to learn whether a
                # key left) or read the presence still including this socket
                _presence.disconnected(client.socket)
            finally:
                clients.remove(sid)

    def rate_limited(self, namespace: str, sid: str, event_name: str) -> None:
        """An event of ``sid`` was refused by its rate limit."""
        # only names the application knows: a client choosing names must
        # not grow the metrics' label set
        known = event_name in events.named or event_name in (MESSAGE_EVENT, SUBSCRIBE, UNSUBSCRIBE)
        metrics.count("wsio_rate_limited_total", event_name if known else "(other)")
        client = clients.get(sid)
        if client is not None:
            fire(events.on_rate_limited, client, event_name)

    # -- events from the client ----------------------------------------------

    def message(self, namespace: str, sid: str, *data: Any) -> Any:
        client = clients.get(sid)
        if client is None:
            return None
        # a message is one value: socket.send(a, b) arrives as [a, b] (a
        # handler taking one message failed with a TypeError on it, so any
        # client could make every on_message handler raise)
        message = data[0] if len(data) == 1 else list(data) if data else None
        _log_message(client, lambda: _as_text(message))
        if admin.active:
            admin.event_received(self.engine, sid, namespace, [MESSAGE_EVENT, message])
        return _first(fire(events.on_message, client, message))

    def named(self, event_name: str, namespace: str, sid: str, *data: Any) -> Any:
        client = clients.get(sid)
        if client is None:
            if namespace == admin.namespace() and namespace is not None:
                admin.request(self.engine, event_name, data)
            return None
        if admin.active:
            admin.event_received(self.engine, sid, namespace, [event_name, *data])
        if event_name.startswith(PROTOCOL_PREFIX):
            return {"ok": False, "error": f"unknown request {event_name[:50]!r}"}
        event = events.named.get(event_name)
        # the name escaped as in JSON: a newline in it would forge a log line
        _log_message(client, lambda: f"{_as_text(event_name)[1:-1]} {_as_text(list(data))}")
        if event is None:
            logger.debug("no handler for event %r from %s", event_name, sid)
            return None
        return _first(fire(event, client, *data))

    def subscribe(self, namespace: str, sid: str, *data: Any) -> dict[str, Any]:
        client = clients.get(sid)
        if client is None:
            return {"ok": False, "error": "not connected"}
        try:
            channel = channels.validate(data[0] if data else None)
        except InvalidChannel as exc:
            return {"ok": False, "error": str(exc)}
        options = data[1] if len(data) > 1 else None
        since: tuple[Any, list[str]] | None = None
        if options is not None:
            if not isinstance(options, dict):
                return {"ok": False, "error": "subscribe options must be an object"}
            if options.get("since") is not None:
                parsed = _history.parse_since(options["since"])
                if isinstance(parsed, str):
                    return {"ok": False, "error": parsed}
                since = parsed
        current = client.socket.channels
        limit = settings.get("SOCKETIO_MAX_CHANNELS_PER_SOCKET")
        if channel not in current and len(current) >= limit:
            return {"ok": False, "error": f"too many channels (at most {limit} per socket)"}
        rule = _history.policy(channel)
        if channel in current and (rule is None or since is None):
            # subscribed already: nothing runs again
            return {
                "ok": True,
                **(self._position(client, channel, rule) if rule else {}),
                **_presence.joined(client.socket, channel),
            }
        if rule is None:
            return self._subscribe(client, channel, since)
        # a channel with history: what the socket is sent from here on
        # (also by the handlers) waits until the replay is out
        with _history.Hold(client.socket) as hold:
            if since is not None:
                client.socket._since[channel] = since[0].as_dict()
            return self._subscribe(client, channel, since, rule, hold)

    def _subscribe(
        self,
        client: Client,
        channel: str,
        since: tuple[Any, list[str]] | None,
        rule: Any = None,
        hold: Any = None,
    ) -> dict[str, Any]:
        try:
            # on a re-subscribe too (a reconnect): the client may have lost
            # the right, and a refused one gets nothing from the history
            fire(events.on_subscribe, client, channel, channel=channel, refusable=True)
        except Denied as exc:
            _presence.refused(client.socket, channel)  # in no list, sees none
            return {"ok": False, "error": exc.reason or "subscription refused"}
        finally:
            client.socket._since.pop(channel, None)
        if not boundary.has_socket(self.engine, client.socket.session_id, client.socket.namespace):
            _presence.refused(client.socket, channel)
            return {"ok": False, "error": "not connected"}  # it closed while the handlers ran
        # joined only after every handler agreed, so a refused socket never
        # sits in the room, not even for a moment
        if rule is None:
            client.socket._join(channel)
            reply: dict[str, Any] = {"ok": True}
            if since is not None:
                reply.update(recovered=False, reason=_history.NO_HISTORY)
        else:
            position, sids = since if since is not None else (None, [])
            reply = {
                "ok": True,
                **_history.join(client.socket, channel, rule, position, sids, hold),
            }
        # a presence channel: tracked now, and the ack carries the state
        reply.update(_presence.joined(client.socket, channel))
        return reply

    def _position(self, client: Client, channel: str, rule: Any) -> dict[str, Any]:
        store = _history.store_of(self.engine.manager)
        position = store.position(client.socket.namespace, channel, rule)
        return position.as_dict()

    def unsubscribe(self, namespace: str, sid: str, *data: Any) -> dict[str, Any]:
        client = clients.get(sid)
        if client is None:
            return {"ok": False, "error": "not connected"}
        try:
            channel = channels.validate(data[0] if data else None)
        except InvalidChannel as exc:
            return {"ok": False, "error": str(exc)}
        if channel not in client.socket.channels:
            return {"ok": False, "error": "not subscribed"}
        client.socket._leave(channel)
        try:
            fire(events.on_unsubscribe, client, channel, channel=channel)
        finally:
            _presence.left(client.socket, channel)  # after the handlers, as on a disconnect
        return {"ok": True}
