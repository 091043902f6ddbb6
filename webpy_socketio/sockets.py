"""The server side of one connected socket, as handlers receive it."""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from . import _engine as boundary
from . import _history, _presence, admin
from . import channels as _channels
from .wire import DEFAULT_NAMESPACE, MESSAGE_EVENT

__all__ = ["MESSAGE_EVENT", "Socket"]


def _payload(message: Any) -> Any:
    # python-socketio expands a tuple into several event arguments; a message
    # is one JSON value, so send tuples as lists.
    return list(message) if isinstance(message, tuple) else message


class Socket:
    """One connected client. Messages are the standard Socket.IO
    ``message`` event, which the browser reads with
    ``socket.on("message", ...)``.

    :ivar session_id: the client's id, equal to ``socket.id`` in the browser
        (one per namespace the browser connects).
    :ivar namespace: the Socket.IO namespace of this socket (``"/"`` for
        ``io()``, ``"/admin"`` for ``io("/admin")``); its sends, broadcasts
        and channels stay in it.
    :ivar session: an object whose ``session_id`` is the same id (the
        original API's spelling).
    :ivar disconnect_reason: why the connection ended, once it has (one of
        python-socketio's reasons, such as ``"client disconnect"``).
    """

    def __init__(self, session_id: str, engine: Any, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.session_id = session_id
        self.namespace = namespace
        self.session = SimpleNamespace(session_id=session_id)
        self.disconnect_reason: str | None = None
        self._engine = engine
        # the channels joined through subscribe(), in order (see channels)
        self._joined: dict[str, None] = {}
        # channel -> the position a subscribe being handled recovers from
        self._since: dict[str, dict[str, Any]] = {}
        # channel -> its presence (webpy_socketio._presence.Subscription)
        self._presence: dict[str, Any] = {}

    def __repr__(self) -> str:
        if self.namespace == DEFAULT_NAMESPACE:
            return f"<Socket {self.session_id}>"
        return f"<Socket {self.session_id} {self.namespace}>"

    @property
    def channels(self) -> list[str]:
        """The channels this socket is subscribed to."""
        # python-socketio has no index from a socket to its rooms, and every
        # connected socket has a room of its own: walking the rooms made each
        # subscription and channel-bound message cost time in proportion to
        # the number of clients. The channels this socket joined are checked
        # against the rooms instead, so a room emptied by other means (the
        # disconnect, close_room) still drops out.
        engine, namespace, sid = self._engine, self.namespace, self.session_id
        return [
            c for c in self._joined if boundary.in_room(engine, namespace, _channels.room(c), sid)
        ]

    @property
    def connected(self) -> bool:
        return boundary.is_connected(self._engine, self.session_id, self.namespace)

    @property
    def transport(self) -> str | None:
        """``"websocket"`` or ``"polling"`` (None once disconnected)."""
        try:
            return str(self._engine.transport(self.session_id, self.namespace))
        except KeyError:
            return None

    def send(self, message: Any) -> None:
        """Send ``message`` (any JSON value) to this socket."""
        self._emit(MESSAGE_EVENT, _payload(message), to=self.session_id)

    def _emit(self, event: str, data: Any, **kwargs: Any) -> None:
        self._engine.emit(event, data, namespace=self.namespace, **kwargs)

    def emit(self, event: str, *args: Any) -> None:
        """Send a named event to this socket
        (``socket.on(event, ...)`` in the browser)."""
        self._emit(event, args if len(args) != 1 else args[0], to=self.session_id)

    def broadcast(self, message: Any) -> None:
        """Send ``message`` to every socket of this namespace except this one."""
        self._emit(MESSAGE_EVENT, _payload(message), skip_sid=self.session_id)

    def send_and_broadcast(self, message: Any) -> None:
        """Send ``message`` to every socket of this namespace, this one included."""
        self._emit(MESSAGE_EVENT, _payload(message))

    def broadcast_channel(
        self, message: Any, channel: str | None = None, event: str = MESSAGE_EVENT
    ) -> None:
        """Send ``message`` to the other subscribers of ``channel``, or, with
        no channel, of every channel this socket is in (each subscriber gets
        it once).

        :param event: the Socket.IO event name the browser listens to
            (``socket.on(event, ...)``); ``"message"`` by default.
        """
        targets = self.channels if channel is None else [_channels.validate(channel)]
        if targets:
            _history.send_to_channels(
                self._engine, self.namespace, targets, event, [_payload(message)], self.session_id
            )

    def send_and_broadcast_channel(self, message: Any, channel: str | None = None) -> None:
        """Like :meth:`broadcast_channel`, and send it to this socket too,
        whether or not it is subscribed yet (so an ``on_subscribe`` handler
        can greet the whole room, newcomer included). A channel with history
        numbers it once: a subscribed sender gets the same message, with its
        position, as everybody else."""
        targets = self.channels if channel is None else [_channels.validate(channel)]
        plain, kept = _history.split(targets)
        if plain:
            _history.send_to_channels(
                self._engine,
                self.namespace,
                plain,
                MESSAGE_EVENT,
                [_payload(message)],
                self.session_id,
            )
        mine = set(self.channels)
        for name, rule in kept:
            _history.publish(
                self._engine, self.namespace, name, rule, MESSAGE_EVENT, [_payload(message)], None
            )
        if not any(name in mine for name, _ in kept):
            # once, as a plain message: to a socket outside the channels (an
            # on_subscribe handler greeting the newcomer), or of plain ones
            self.send(message)

    def subscribe(self, channel: str, since: Any = None) -> dict[str, Any] | None:
        """Subscribe this socket to ``channel`` from the server side. No
        ``on_subscribe`` handler runs: the application decided. Nothing
        happens for a socket that has disconnected.

        For a channel with history (``SOCKETIO_HISTORY``), ``since`` (a
        position ``{"epoch": ..., "offset": ...}``, as :func:`history`
        returns it) replays the messages after it first; the return value
        is the channel's position, with ``recovered`` (and a ``reason``)
        when ``since`` was given.

        :raises InvalidChannel: for a name that is not a valid channel.
        :raises ValueError: for a ``since`` that is not a position.
        """
        _channels.validate(channel)
        if not boundary.has_socket(self._engine, self.session_id, self.namespace):
            return None  # the socket has gone (while a handler waited, say)
        rule = _history.policy(channel)
        position = None
        if rule is not None and since is not None:
            parsed = _history.parse_since(since)
            if isinstance(parsed, str):
                raise ValueError(parsed)
            position = parsed[0]
        if rule is None:
            self._join(channel)
            result = None
        else:
            result = _history.join(self, channel, rule, position, [])
        # a presence channel: the socket is tracked, and gets the state as an event
        _presence.joined(self, channel, ack=False)
        return result

    def since(self, channel: str) -> dict[str, Any] | None:
        """While ``on_subscribe`` handlers run: the position the client
        subscribes since (``{"epoch", "offset"}``, a reconnect that the
        channel's history will fill), or None for a plain subscribe. A
        handler that sends the newcomer its own snapshot of the channel can
        skip it then: the history replays what was missed."""
        return self._since.get(channel)

    def _join(self, channel: str) -> None:
        self._engine.enter_room(self.session_id, _channels.room(channel), namespace=self.namespace)
        self._joined[channel] = None
        if admin.active:
            admin.room_joined(self._engine, self.session_id, self.namespace, channel)

    def unsubscribe(self, channel: str) -> None:
        """Remove this socket from ``channel`` (nothing happens if it was
        not subscribed); it leaves the channel's presence too."""
        _channels.validate(channel)
        self._leave(channel)
        _presence.left(self, channel)

    def _leave(self, channel: str) -> None:
        self._engine.leave_room(self.session_id, _channels.room(channel), namespace=self.namespace)
        if self._joined.pop(channel, 0) is None and admin.active:
            admin.room_left(self._engine, self.session_id, self.namespace, channel)

    # -- presence (webpy_socketio._presence) ----------------------------------------

    def track(
        self, channel: str, key: str | None = None, meta: Mapping[str, Any] | None = None
    ) -> None:
        """Be in ``channel``'s presence under ``key`` (this socket's id by
        default) with ``meta`` (a JSON object; ``{}`` by default). Every
        subscriber of the channel sees it, and the socket's tabs or devices
        that use the same key are one key with several metas::

            @on_subscribe(channel="^room-")
            def joined(request, socket, context, channel):
                socket.track(channel, context["user_id"], {"name": context["name"]})

        Called before the socket has joined (in ``on_subscribe``), it says
        how the subscription will be tracked once accepted (a refused one is
        in no list). Called once it has joined, it updates the meta (one
        change: the old meta leaves, the new one joins) or, for a channel
        that no ``SOCKETIO_PRESENCE`` pattern matches, starts presence for
        this subscription.

        :raises PresenceError: for a key that is not a string of 1 to 200
            characters, or a meta that is not a dict, cannot be encoded as
            JSON or is larger than ``SOCKETIO_PRESENCE_MAX_META_BYTES``
            (nothing changes).
        :raises InvalidChannel: for a name that is not a valid channel.
        """
        _presence.track(self, _channels.validate(channel), key, meta)

    def untrack(self, channel: str) -> int | None:
        """Leave ``channel``'s presence, staying subscribed (the socket still
        sees the others). Returns how many metas the key still has, so 0
        when this was its last (the key has left everywhere; atomic across
        processes), or None when the socket was not tracked there. Called
        in ``on_subscribe``, the subscription is not tracked at all (on a
        pattern channel it still sees the others). On unsubscribe and
        disconnect this happens by itself, after the handlers ran; an
        ``on_unsubscribe`` handler that wants the count calls it first.

        :raises InvalidChannel: for a name that is not a valid channel.
        """
        return _presence.untrack(self, _channels.validate(channel))

    def disconnect(self) -> None:
        """Close the connection from the server side."""
        self._engine.disconnect(self.session_id, namespace=self.namespace)
