"""Signal-like events that application code subscribes handlers to.

Every handler is called as ``handler(request, socket, context, *args)``:

- ``request`` is the :class:`~webpy_socketio.requests.Request` that opened
  the connection (environ, remote address, headers, cookies, web.py session);
- ``socket`` is the server-side :class:`~webpy_socketio.sockets.Socket`;
- ``context`` is a dict that lives as long as the connection;
- ``args`` depend on the event (the message, the channel, the exception).

Register a handler by using the event as a decorator, with or without a
channel pattern (a regular expression matched with ``re.match``)::

    from webpy_socketio.events import on_message, on_subscribe

    @on_message
    def log_everything(request, socket, context, message):
        ...

    @on_message(channel="^room-")
    def chat(request, socket, context, message):
        socket.broadcast_channel(message)

A handler without a pattern fires for every occurrence of the event. A
handler with a pattern fires when the pattern matches the channel being
subscribed or unsubscribed (``on_subscribe``, ``on_unsubscribe``), or any
channel the socket is in (every other event). ``on_connect`` takes no
pattern: a new socket is in no channel yet. Decorating returns the function
unchanged, so it can still be called and tested directly. A function
registered again from the same file under the same name and pattern replaces
its earlier registration, so a module that is executed twice (web.py's debug
reloader does that) does not run its handlers twice.

Every event also takes ``namespace="/admin"`` (default ``"/"``): the handler
then serves the sockets a browser opens with ``io("/admin")``, over the
same connection as the default namespace's. A namespace no handler is
registered for is refused (``{"message": "Invalid namespace"}``)::

    @on_connect(namespace="/admin")
    def admins_only(request, socket, context):
        return bool(request.session and request.session.get("admin"))
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from .exceptions import EventError
from .wire import DEFAULT_NAMESPACE, PROTOCOL_PREFIX, RESERVED_EVENT_NAMES

__all__ = ["PROTOCOL_PREFIX", "RESERVED_EVENT_NAMES", "Event", "namespace_known", "on"]

Handler = Callable[..., Any]

#: every namespace an event handler was registered for, besides "/"
_namespaces: set[str] = set()


def _check_namespace(namespace: Any) -> str:
    if not isinstance(namespace, str) or not namespace.startswith("/") or len(namespace) > 200:
        raise EventError(
            f"namespace must be a string that starts with '/', such as '/admin', not {namespace!r}."
        )
    if not namespace.isprintable() or "," in namespace:
        raise EventError(f"namespace {namespace!r} must not contain commas or control characters.")
    return namespace


def namespace_known(namespace: str) -> bool:
    """Whether clients may connect ``namespace``: the default one, and every
    namespace a handler is registered for."""
    return namespace == DEFAULT_NAMESPACE or namespace in _namespaces


class Event:
    """One kind of event and the handlers registered for it.

    :param name: the event's name, used in logs and error messages.
    :param supports_channels: False for events that happen before a socket
        can be in a channel (``on_connect``).
    """

    def __init__(self, name: str, supports_channels: bool = True) -> None:
        self.name = name
        self.supports_channels = supports_channels
        #: ``(namespace, pattern or None, handler)``, in registration order.
        self.handlers: list[tuple[str, re.Pattern[str] | None, Handler]] = []

    def __repr__(self) -> str:
        return f"<Event {self.name} ({len(self.handlers)} handlers)>"

    def __call__(
        self,
        handler: Handler | None = None,
        channel: str | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        threaded: bool = False,
    ) -> Any:
        """Register ``handler``, or return a decorator when only ``channel``,
        ``namespace`` or ``threaded`` is given.

        :param namespace: the Socket.IO namespace whose sockets the handler
            serves (``io("/admin")`` in the browser); ``"/"`` by default.
            Registering a handler makes its namespace one clients may join.
        :param threaded: run the handler in gevent's thread pool, so a
            CPU-bound one holds only its own connection (see
            :mod:`webpy_socketio.threaded`).
        :raises EventError: for a pattern on an event without channels, a
            pattern that does not compile, a namespace that does not start
            with "/", or a handler that is not callable.
        """
        _check_namespace(namespace)
        if handler is None:

            def decorator(func: Handler) -> Handler:
                return self(func, channel=channel, namespace=namespace, threaded=threaded)

            return decorator
        if not callable(handler):
            raise EventError(
                f"{self.name} takes a function, not {handler!r}; use @{self.name} or "
                f"@{self.name}(channel='^pattern')."
            )
        pattern = None
        if channel is not None:
            if not self.supports_channels:
                raise EventError(
                    f"The {self.name} event does not support channels (a socket is in no "
                    f"channel when it connects), so {_describe(handler)} could not be "
                    "registered with channel=."
                )
            if not isinstance(channel, str) or not channel:
                raise EventError(f"channel must be a regular expression string, not {channel!r}.")
            try:
                pattern = re.compile(channel)
            except re.error as exc:
                raise EventError(
                    f"channel={channel!r} for {_describe(handler)} is not a valid regular "
                    f"expression: {exc}."
                ) from None
        if namespace != DEFAULT_NAMESPACE:
            _namespaces.add(namespace)
        registered = handler
        if threaded:
            from .threaded import in_thread

            registered = in_thread(handler)
        key = _identity(handler, pattern, namespace)
        for index, (old_namespace, old_pattern, old_handler) in enumerate(self.handlers):
            if key is not None and _identity(old_handler, old_pattern, old_namespace) == key:
                # the same function from the same file again: its module was
                # re-executed (web.py's debug reloader does this, and runs a
                # main script twice, as __main__ and under its own name)
                self.handlers[index] = (namespace, pattern, registered)
                return handler
        self.handlers.append((namespace, pattern, registered))
        return handler

    def disconnect(self, handler: Handler) -> bool:
        """Remove every registration of ``handler``; return whether there
        was one."""
        before = len(self.handlers)
        self.handlers = [
            entry
            for entry in self.handlers
            if entry[2] is not handler and getattr(entry[2], "__wrapped__", None) is not handler
        ]
        return len(self.handlers) != before

    def matching(
        self,
        channels: Iterable[str] | Callable[[], Iterable[str]],
        namespace: str = DEFAULT_NAMESPACE,
    ) -> list[Handler]:
        """The handlers that fire for a socket of ``namespace`` in
        ``channels`` (an iterable, or a function returning one, called only
        if a pattern needs it)."""
        found = []
        resolved: list[str] | None = None
        for handler_namespace, pattern, handler in self.handlers:
            if handler_namespace != namespace:
                continue
            if pattern is not None:
                if resolved is None:
                    resolved = list(channels() if callable(channels) else channels)
                if not any(pattern.match(c) for c in resolved):
                    continue
            found.append(handler)
        return found

    def send(self, request: Any, socket: Any, context: dict, *args: Any) -> list[Any]:
        """Call every matching handler directly, in registration order, and
        return their results. Exceptions propagate; the server uses its own
        dispatch, which isolates handlers from each other."""
        return [
            handler(request, socket, context, *args)
            for handler in self.matching(
                lambda: socket.channels, getattr(socket, "namespace", DEFAULT_NAMESPACE)
            )
        ]


def _identity(
    handler: Handler, pattern: re.Pattern[str] | None, namespace: str
) -> tuple[str, str, str, str] | None:
    # a threaded handler is registered as its wrapper: the function's own code
    handler = getattr(handler, "__wrapped__", handler)
    code = getattr(handler, "__code__", None)
    if code is None:
        return None
    return (code.co_filename, handler.__qualname__, pattern.pattern if pattern else "", namespace)


def _describe(handler: Handler) -> str:
    module = getattr(handler, "__module__", "?")
    name = getattr(handler, "__qualname__", repr(handler))
    return f"{module}.{name}"


on_connect = Event("on_connect", supports_channels=False)  # request, socket, context
on_message = Event("on_message")  # request, socket, context, message
on_subscribe = Event("on_subscribe")  # request, socket, context, channel
on_unsubscribe = Event("on_unsubscribe")  # request, socket, context, channel
on_error = Event("on_error")  # request, socket, context, exception
on_disconnect = Event("on_disconnect")  # request, socket, context
on_finish = Event("on_finish")  # request, socket, context
#: an event the client sent was refused by SOCKETIO_RATE_LIMIT
on_rate_limited = Event("on_rate_limited")  # request, socket, context, event_name

#: The built-in events, by the wire name ``on()`` accepts for them.
BUILTIN = {"message": on_message}

#: Named events registered with :func:`on`, by name.
named: dict[str, Event] = {}


def on(
    event_name: str,
    channel: str | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    threaded: bool = False,
) -> Callable[[Handler], Handler]:
    """Register a handler for a named Socket.IO event. The first value other
    than None that a handler returns is the acknowledgement the client's
    callback receives::

        @on("rename")
        def rename(request, socket, context, new_name):
            context["name"] = new_name
            return {"ok": True}

    In the browser: ``socket.emit("rename", "ada", (reply) => ...)``. With
    ``namespace="/admin"`` the handler serves sockets of ``io("/admin")``.
    With ``threaded=True`` it runs in gevent's thread pool: a CPU-bound
    handler then holds only its own connection (its events stay in order),
    not every connection of the process::

        @on("report", threaded=True)
        def report(request, socket, context, spec):
            return build_the_report(spec)

    :raises EventError: for a reserved name (``connect``, ``disconnect``,
        names starting with ``wsio:`` and the client's reserved names).
    """
    if not isinstance(event_name, str) or not event_name:
        raise EventError(f"on() takes an event name string, not {event_name!r}.")
    if event_name in RESERVED_EVENT_NAMES or event_name.startswith(PROTOCOL_PREFIX):
        raise EventError(
            f"{event_name!r} is reserved by Socket.IO or webpy_socketio; use on_connect, "
            "on_disconnect, on_subscribe and friends, or choose another name."
        )
    if event_name in BUILTIN:
        event = BUILTIN[event_name]
    else:
        event = named.setdefault(event_name, Event(event_name))
    if channel is not None and not isinstance(channel, str):
        raise EventError(f"channel must be a regular expression string, not {channel!r}.")
    _check_namespace(namespace)

    def decorator(handler: Handler) -> Handler:
        return event(handler, channel=channel, namespace=namespace, threaded=threaded)

    return decorator
