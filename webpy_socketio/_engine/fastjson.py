"""The JSON module the engine encodes and decodes packets with: orjson
where it gives the same result, the standard library otherwise.

python-socketio calls ``dumps(data, separators=(",", ":"))`` for every
packet it sends and ``loads(text)`` for every packet it receives. With the
standard library, ``dumps`` builds a new encoder on each call (because of
the non-default separators); orjson is several times faster at both.

What stays as before:

- Anything orjson refuses is handed to the standard library, which either
  encodes it (integers beyond 64 bits) or raises the usual ``TypeError``.
- Integers stay exact and engine.io's guard against huge ones (over 100
  digits are refused) still applies: orjson would read an integer beyond 64
  bits as a float, so text with a run of 19 or more digits is parsed by
  engine.io's ``loads``, as is anything orjson refuses.

Two differences, both in favour of clients: non-ASCII text is sent as
UTF-8 instead of ``\\u`` escapes (the same string once decoded), and
``NaN``/``Infinity`` become ``null`` instead of the non-standard tokens a
browser's ``JSON.parse`` rejects.
"""

from __future__ import annotations

import json as _json
from typing import Any

from engineio import json as _engineio_json

orjson: Any
try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency; keep working without it
    orjson = None

_OPTIONS = orjson.OPT_NON_STR_KEYS if orjson is not None else 0
# A run of 19 digits may be an integer beyond 64 bits. Looking for it in a
# copy where every digit is "0" and everything else a space is a few C
# loops, several times cheaper than a regular expression.
_DIGITS_ONLY = bytes(0x30 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
_LONG_RUN = b"0" * 19


def _has_long_number(text: str) -> bool:
    return _LONG_RUN in text.encode("utf-8", "surrogatepass").translate(_DIGITS_ONLY)


def dumps(obj: Any, **kwargs: Any) -> str:
    """Compact JSON text for ``obj`` (``kwargs`` as ``json.dumps``; the
    compact separators python-socketio asks for are orjson's only style)."""
    if orjson is not None and kwargs.get("separators", (",", ":")) == (",", ":"):
        try:
            return orjson.dumps(obj, option=_OPTIONS).decode("utf-8")
        except TypeError:
            pass
    kwargs.setdefault("separators", (",", ":"))
    return _json.dumps(obj, **kwargs)


def loads(text: str | bytes, **kwargs: Any) -> Any:
    """Parse JSON text; what orjson refuses is parsed (or refused) by
    engine.io's guarded ``loads``."""
    if orjson is not None and not kwargs and isinstance(text, str) and not _has_long_number(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return _engineio_json.loads(text, **kwargs)
