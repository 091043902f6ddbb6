"""The request that opened a Socket.IO connection, as handlers see it."""

from __future__ import annotations

from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qsl

_session_object: Any = None


def use_session(session: Any) -> None:
    """Tell webpy_socketio which ``web.session.Session`` the app uses, so
    handlers can read it as ``request.session``::

        session = web.session.Session(app, web.session.DiskStore("sessions"))
        webpy_socketio.use_session(session)

    Without this call, ``web.config._session`` is used when the app sets it
    (the usual web.py idiom).
    """
    global _session_object
    _session_object = session


def _find_session() -> Any:
    if _session_object is not None:
        return _session_object
    try:
        import web
    except ImportError:  # pragma: no cover - web.py is a dependency
        return None
    return web.config.get("_session")


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only view of the request headers in an
    environ (``headers["user-agent"]``)."""

    def __init__(self, environ: Mapping[str, Any]) -> None:
        self._items: dict[str, str] = {}
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                self._items[key[5:].replace("_", "-").lower()] = value
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                self._items[key.replace("_", "-").lower()] = environ[key]

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class Request:
    """What handlers know about the HTTP request that opened the connection.

    :ivar environ: the WSGI environ of that request.
    :ivar auth: the ``auth`` payload the client passed to ``io(url, {auth})``,
        or None.
    """

    def __init__(self, environ: Mapping[str, Any], auth: Any = None) -> None:
        self.environ = environ
        self.auth = auth
        self._headers: Headers | None = None
        self._cookies: dict[str, str] | None = None
        self._session: Any = _UNSET

    def __repr__(self) -> str:
        return f"<Request {self.remote_addr} {self.path}>"

    @property
    def remote_addr(self) -> str:
        """The peer's address (nginx's address when behind a proxy; see
        :attr:`forwarded_for`)."""
        return str(self.environ.get("REMOTE_ADDR", ""))

    @property
    def forwarded_for(self) -> str | None:
        """The first address of X-Forwarded-For, as a proxy reported it.
        Trust it only behind a proxy you run."""
        value = self.environ.get("HTTP_X_FORWARDED_FOR")
        return value.split(",")[0].strip() if value else None

    @property
    def path(self) -> str:
        return str(self.environ.get("PATH_INFO", ""))

    @property
    def query(self) -> dict[str, str]:
        """The query string's parameters (the last value of a repeated key)."""
        return dict(parse_qsl(self.environ.get("QUERY_STRING", ""), keep_blank_values=True))

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(self.environ)
        return self._headers

    @property
    def cookies(self) -> dict[str, str]:
        if self._cookies is None:
            cookies: dict[str, str] = {}
            raw = self.environ.get("HTTP_COOKIE", "")
            for part in raw.split(";"):
                # parse one by one so a single malformed cookie does not hide
                # the others
                jar: SimpleCookie = SimpleCookie()
                try:
                    jar.load(part)
                except CookieError:
                    continue
                cookies.update({k: m.value for k, m in jar.items()})
            self._cookies = cookies
        return self._cookies

    @property
    def session(self) -> Any:
        """The web.py session's data at connect time, read from its store by
        the session cookie, as a ``web.storage``; None when the app uses no
        session or the browser has none. It is a snapshot: changes made here
        are not saved."""
        if self._session is _UNSET:
            self._session = self._load_session()
        return self._session

    def _load_session(self) -> Any:
        session = _find_session()
        if session is None:
            return None
        import web

        name = session._config.cookie_name
        session_id = self.cookies.get(name)
        if not session_id or not all(c in "0123456789abcdefABCDEF" for c in session_id):
            return None
        try:
            if session_id not in session.store:
                return None
            data = session.store[session_id]
        except Exception:  # a broken store must not break the connection
            return None
        return web.storage(data)


class _Unset:
    pass


_UNSET = _Unset()
