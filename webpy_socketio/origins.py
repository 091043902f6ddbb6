"""Which web pages may open a socket: the app's own, plus those listed.

``SOCKETIO_CORS_ALLOWED_ORIGINS`` is None by default: only pages of the
app's own origin (the Host the request was made to, and behind a proxy the
scheme and host it forwards). A list adds origins to the app's own, so
listing a partner site never locks out the app's own pages; ``"*"`` allows
any page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def own_origins(environ: Mapping[str, Any]) -> list[str]:
    """The origins of the app's own pages for this request."""
    host = environ.get("HTTP_HOST")
    if not host:
        return []
    scheme = environ.get("wsgi.url_scheme", "http")
    origins = [f"{scheme}://{host}"]
    if "HTTP_X_FORWARDED_PROTO" in environ or "HTTP_X_FORWARDED_HOST" in environ:
        proto = environ.get("HTTP_X_FORWARDED_PROTO", scheme).split(",")[0].strip()
        forwarded = environ.get("HTTP_X_FORWARDED_HOST", host).split(",")[0].strip()
        origins.append(f"{proto}://{forwarded}")
    return origins


class SameOriginAnd:
    """An origin check: the app's own origin plus a list of others."""

    def __init__(self, others: list[str]) -> None:
        self.others = frozenset(others)

    def __repr__(self) -> str:
        return f"<same origin and {sorted(self.others)}>"

    def __call__(self, origin: str | None, environ: Mapping[str, Any]) -> bool:
        return origin in self.others or origin in own_origins(environ)


def policy(value: Any) -> Any:
    """The engine's origin policy for a setting's value: None (same origin
    only), "*" (anyone), a callable, or a :class:`SameOriginAnd`."""
    if value is None or value == "*" or callable(value):
        return value
    return SameOriginAnd([value] if isinstance(value, str) else list(value))
