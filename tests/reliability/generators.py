"""Hypothesis strategies for hostile input to a Socket.IO server, and a fast
way to draw a large seeded corpus from them.

Nothing here knows the server's transport code: inputs are Engine.IO and
Socket.IO packets, RFC 6455 frames, long-polling bodies and HTTP requests,
as any client on the network could send them. Each :class:`Input` says how
it is delivered:

``ws-text``
    Engine.IO packets, each sent as one text frame on a connected websocket
    session; the sender then checks with an acknowledged probe that the
    session still works, or that the server closed it.
``ws``
    ready-made frames (binary, fragmented, broken headers) on a connected
    session, then the same probe.
``ws-eof``
    bytes written on a fresh websocket session, followed by the end of our
    side of the stream (truncated frames, raw garbage): the server must
    close its side too, not wait forever.
``poll``
    POST bodies on a long-polling session, then the same probe.
``http``
    a whole raw HTTP request on a fresh connection; the server must answer
    or close.

Sizes come from small draws (a length, a character) expanded in ``map``, so
a 15,000-character channel name costs Hypothesis two choices, not 15,000.

Hypothesis draws about a millisecond's worth of choices per input, so
:func:`corpus` draws one seed input in ``1 + mutants`` and derives the rest
from it with a cheap seeded mutator (truncation, deletion, duplication,
insertion of JSON and protocol delimiters, bit flips in frame headers),
the classic generate-then-mutate fuzzing loop. Mutations never change a
frame's length field, so an input cannot turn into a frame that leaves the
server waiting for bytes that will never come (those are ``ws-eof`` inputs,
on purpose).
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from rawsio import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RECORD_SEP, ws_frame

#: the server's SOCKETIO_MAX_MESSAGE_BYTES in rel_settings.py
MAX_MESSAGE_BYTES = 20_000


@dataclass(frozen=True)
class Input:
    category: str
    kind: str  # ws-text, ws, ws-eof, poll, http
    payload: tuple[bytes, ...]  # packets, frames, POST bodies, or one raw blob
    content_type: str = "text/plain;charset=UTF-8"
    mutant: bool = False

    @property
    def size(self) -> int:
        return sum(len(p) for p in self.payload)

    @property
    def units(self) -> int:
        """Packets, frames or requests in this input."""
        if self.kind == "poll":
            return sum(p.count(b"\x1e") + 1 for p in self.payload)
        return len(self.payload)


# -- JSON values and Socket.IO packets --------------------------------------------

_floats = st.floats(allow_nan=True, allow_infinity=True)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | _floats
    | st.text(max_size=30)
    | st.sampled_from(["\ud800", "\x00", "\u202e", "%s%n", "<script>", "a" * 300])
)
json_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)

EVENT_NAMES = [
    "message",
    "wsio:subscribe",
    "wsio:unsubscribe",
    "wsio:other",
    "shout",
    "report_errors",
    "connect",
    "disconnect",
    "connect_error",
    "newListener",
    "*",
    "",
]
event_names = st.sampled_from(EVENT_NAMES) | st.text(max_size=20)

# messages the fixture app acts on: these reach real handler code paths
app_ops = st.fixed_dictionaries(
    {"op": st.sampled_from(["probe", "relay", "reenter", "raise", "channels", "nope"])},
    optional={
        "n": json_values,
        "data": json_values,
        "channel": st.text(max_size=12),
        "everyone": st.booleans(),
    },
)


def _dump(value: Any) -> str:
    # allow_nan: the NaN and Infinity tokens are not JSON, which is the point
    return json.dumps(value, allow_nan=True, ensure_ascii=False)


_sio_head = st.tuples(
    st.sampled_from("0123456789x2"),  # packet type; EVENT (2) twice as likely
    st.sampled_from(["", "", "", "1-", "0-", "99-", "12345678901-", "-"]),  # attachments
    st.sampled_from(["", "", "", "/", "/,", "/admin,", "/x?y=1,", "/" * 50]),  # namespace
    st.sampled_from(["", "", "", "7", "0", "-1", "9" * 99, "9" * 150]),  # ack id
).map("".join)
_sio_args = st.one_of(
    st.tuples(event_names, json_values).map(lambda t: _dump(list(t))),
    st.tuples(st.just("message"), app_ops).map(lambda t: _dump(list(t))),
    st.lists(json_values, max_size=4).map(_dump),
    json_values.map(_dump),
    st.text(max_size=40),
    st.just(""),
)
_cuts = st.sampled_from([None, None, None, None, 1, 2, 3, 5, 8])


@st.composite
def sio_packets(draw: st.DrawFn) -> str:
    """A Socket.IO packet as an Engine.IO MESSAGE ("4..."), mostly wrong."""
    text = "4" + draw(_sio_head) + draw(_sio_args)
    cut = draw(_cuts)
    return text[: len(text) - cut] if cut and cut < len(text) else text


@st.composite
def eio_packets(draw: st.DrawFn) -> str:
    """An Engine.IO text packet: some Socket.IO, the rest of every type."""
    return draw(
        st.one_of(
            sio_packets(),
            sio_packets(),
            st.sampled_from("0123456789").map(lambda d: d) | st.just(""),
            st.tuples(st.sampled_from("012356789bx"), st.text(max_size=30)).map("".join),
            st.binary(max_size=30).map(lambda b: "b" + b.hex()),
            st.text(min_size=1, max_size=60),
        )
    )


def _event(name: str, *args: Any, ack: int | None = 1) -> str:
    return "42" + ("" if ack is None else str(ack)) + json.dumps([name, *args])


# -- targeted abuse ----------------------------------------------------------------


@st.composite
def deep_json(draw: st.DrawFn) -> str:
    """Nesting far past any parser's comfort, inside a message."""
    depth = draw(st.integers(200, 5_000))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('[{"b":', "}]")]))
    body = opener * depth + "1" + closer * depth
    if draw(st.booleans()):
        body = body[: len(body) - draw(st.integers(1, depth))]  # and unbalanced
    return _event("message", ack=None)[:-1] + "," + body + "]"


@st.composite
def huge_channels(draw: st.DrawFn) -> str:
    length = draw(st.sampled_from([200, 201, 1_000]) | st.integers(150, 6_000))
    char = draw(st.sampled_from(["a", "#", "é", "\u0000", "\u202e", " ", "\ud83d\ude00"]))
    event = draw(st.sampled_from(["wsio:subscribe", "wsio:unsubscribe"]))
    return _event(event, char * length)


@st.composite
def subscribe_floods(draw: st.DrawFn) -> list[str]:
    """More subscriptions than a socket may hold, in one burst."""
    count = draw(st.integers(101, 115))
    prefix = draw(st.sampled_from(["flood-", "greet-", "forbidden-", "denied-", "#", ""]))
    packets = [_event("wsio:subscribe", f"{prefix}{i}", ack=None) for i in range(count)]
    if draw(st.integers(0, 3)) == 0:
        packets += [_event("wsio:unsubscribe", f"{prefix}{i}", ack=None) for i in range(count)]
    return packets


@st.composite
def oversized(draw: st.DrawFn) -> str:
    over = draw(st.integers(1, 10_000))
    return _event("message", "x" * (MAX_MESSAGE_BYTES + over), ack=None)


@st.composite
def binary_events(draw: st.DrawFn) -> list[tuple[int, bytes]]:
    """Binary attachments announced wrongly, placeholders that point
    nowhere, attachments that never were announced."""
    announced = draw(st.integers(0, 3))
    num = draw(st.sampled_from([0, 1, 7, -1, "0", None, 1.5]))
    header = f"45{announced}-" + json.dumps(["message", {"_placeholder": True, "num": num}])
    sent = draw(st.integers(0, 4))
    frames = [(OP_TEXT, header.encode())] if draw(st.booleans()) or announced else []
    frames += [(OP_BINARY, draw(st.binary(max_size=64))) for _ in range(sent)]
    return frames or [(OP_BINARY, b"")]


# -- RFC 6455 ----------------------------------------------------------------------

_opcodes = st.sampled_from([OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG]) | st.integers(
    0, 15
)


@st.composite
def bad_frames(draw: st.DrawFn) -> bytes:
    """One frame with something wrong in its header, or a close/control
    frame with a bad body, or a fragmented message gone wrong."""
    choice = draw(st.integers(0, 7))
    payload = draw(st.binary(max_size=80))
    if choice == 0:  # reserved bits without an extension
        return ws_frame(OP_TEXT, b"40", rsv=draw(st.integers(1, 7)))
    if choice == 1:  # unmasked client frame
        return ws_frame(draw(_opcodes), payload, mask=None)
    if choice == 2:  # unknown opcode
        return ws_frame(draw(st.sampled_from([3, 4, 5, 6, 7, 11, 12, 13, 14, 15])), payload)
    if choice == 3:  # control frame too long or fragmented
        op = draw(st.sampled_from([OP_PING, OP_PONG, OP_CLOSE]))
        return ws_frame(op, b"p" * draw(st.integers(126, 300)), fin=draw(st.booleans()))
    if choice == 4:  # close frame with a bad code or bad UTF-8 reason
        code = draw(st.sampled_from([0, 999, 1004, 1005, 1006, 1015, 2999, 5000, 65535]))
        body = code.to_bytes(2, "big") + draw(st.sampled_from([b"", b"\xff\xfe", b"ok"]))
        return ws_frame(OP_CLOSE, body if draw(st.booleans()) else body[:1])
    if choice == 5:  # continuation of nothing, or a new message inside one
        if draw(st.booleans()):
            return ws_frame(OP_CONT, payload)
        return ws_frame(OP_TEXT, b"42", fin=False) + ws_frame(OP_TEXT, b"[]")
    if choice == 6:  # text that is not UTF-8
        bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80"]))
        return ws_frame(OP_TEXT, b"42" + bad + payload)
    # a length far beyond the limit, announced in the header only
    n = draw(st.integers(MAX_MESSAGE_BYTES + 1, 2**62))
    return ws_frame(OP_TEXT, b"", length=n)


@st.composite
def fragmented(draw: st.DrawFn) -> bytes:
    """A valid packet split into many fragments, interleaved with pings;
    sometimes adding up to more than the limit."""
    text = draw(eio_packets() | sio_packets()).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 4)) == 0:
        text += b" " * (MAX_MESSAGE_BYTES + 10)
    pieces = max(1, min(len(text), draw(st.integers(2, 40))))
    step = max(1, len(text) // pieces)
    chunks = [text[i : i + step] for i in range(0, len(text), step)] or [b""]
    out = bytearray()
    for i, chunk in enumerate(chunks):
        op = OP_TEXT if i == 0 else OP_CONT
        out += ws_frame(op, chunk, fin=i == len(chunks) - 1)
        if draw(st.integers(0, 5)) == 0:
            out += ws_frame(OP_PING, b"hi")
    return bytes(out)


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


# -- inputs ------------------------------------------------------------------------


def _ws(category: str) -> Any:
    return lambda texts: Input(category, "ws-text", tuple(_encode(t) for t in texts))


ws_eof_inputs = st.one_of(
    st.binary(min_size=1, max_size=300).map(
        lambda b: Input("random bytes, then EOF", "ws-eof", (b,))
    ),
    st.tuples(eio_packets(), st.integers(1, 40)).map(
        lambda t: Input(
            "truncated frames, then EOF",
            "ws-eof",
            (ws_frame(OP_TEXT, _encode(t[0]))[: -t[1]] or b"\x81",),
        )
    ),
)


@st.composite
def poll_bodies(draw: st.DrawFn) -> Input:
    choice = draw(st.integers(0, 5))
    if choice <= 1:
        texts = draw(st.lists(eio_packets(), min_size=1, max_size=4))
        return Input("polling packets", "poll", (_encode(RECORD_SEP.join(texts)),))
    if choice == 2:
        body = draw(st.binary(min_size=1, max_size=200))
        return Input("polling random bodies", "poll", (body,), draw(_content_types))
    if choice == 3:
        bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80"]))
        return Input("polling invalid UTF-8", "poll", (b"42" + bad + b'["message"]',))
    if choice == 4:
        return Input("polling oversized", "poll", (_encode(draw(oversized())),))
    texts = draw(st.one_of(st.tuples(deep_json()), st.tuples(huge_channels())))
    return Input("polling nested / huge channels", "poll", (_encode(texts[0]),))


_content_types = st.sampled_from(
    ["text/plain;charset=UTF-8", "application/octet-stream", "application/json", ""]
)


@st.composite
def http_requests(draw: st.DrawFn) -> Input:
    """Whole HTTP requests at the Socket.IO path that are wrong in one way."""
    method = draw(st.sampled_from(["GET", "POST", "OPTIONS", "PUT", "DELETE", "G\x00T", "GET"]))
    query = {
        "EIO": draw(st.sampled_from(["4", "3", "5", "", "4x"])),
        "transport": draw(st.sampled_from(["polling", "websocket", "flashsocket", "", "POLLING"])),
    }
    if draw(st.booleans()):
        query["sid"] = draw(
            st.sampled_from(["", "AAAA", "x" * 500, "../../etc"]) | st.text(max_size=20)
        )
    if draw(st.integers(0, 3)) == 0:
        query["j"] = draw(st.sampled_from(["0", "x", "-1", "<script>"]))
    target = "/socket.io/?" + "&".join(f"{k}={v}" for k, v in query.items())
    headers = []
    if draw(st.booleans()):
        headers += ["Upgrade: websocket", "Connection: Upgrade"]
        headers += draw(
            st.sampled_from(
                [
                    [],
                    ["Sec-WebSocket-Version: 13"],
                    ["Sec-WebSocket-Version: 8", "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="],
                    ["Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: not base64"],
                ]
            )
        )
    body = b""
    if method == "POST":
        body = draw(st.binary(max_size=100))
        headers.append(
            "Content-Length: "
            + draw(st.sampled_from([str(len(body)), "-1", "abc", "99999999999", "0"]))
        )
    if draw(st.integers(0, 5)) == 0:
        headers.append(draw(st.sampled_from(["Origin: http://evil.example", "X: " + "y" * 9000])))
    head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(
        h + "\r\n" for h in headers
    )
    raw = head.encode("utf-8", "surrogatepass") + b"\r\n" + body
    if draw(st.integers(0, 6)) == 0:
        raw = draw(st.binary(min_size=1, max_size=200))  # not HTTP at all
    return Input("malformed HTTP requests", "http", (raw,))


#: every kind of input, weighted: cheap in-session packets are the bulk,
#: subscribe floods (a hundred packets each) are rarer
all_inputs = st.one_of(
    st.lists(eio_packets(), min_size=1, max_size=3).map(_ws("eio/sio packets")),
    st.lists(eio_packets(), min_size=1, max_size=3).map(_ws("eio/sio packets")),
    st.lists(sio_packets(), min_size=1, max_size=3).map(_ws("socket.io wrong types, bad JSON")),
    st.lists(sio_packets(), min_size=1, max_size=3).map(_ws("socket.io wrong types, bad JSON")),
    st.tuples(app_ops).map(lambda t: [_event("message", t[0])]).map(_ws("app messages")),
    deep_json().map(lambda t: [t]).map(_ws("deeply nested JSON")),
    huge_channels().map(lambda t: [t]).map(_ws("huge channel names")),
    subscribe_floods().map(_ws("subscribe floods"))
    | st.lists(sio_packets(), min_size=1, max_size=3).map(_ws("socket.io wrong types, bad JSON")),
    oversized().map(lambda t: [t]).map(_ws("oversized message")),
    binary_events().map(
        lambda frames: Input("binary attachments", "ws", tuple(ws_frame(o, p) for o, p in frames))
    ),
    bad_frames().map(lambda b: Input("bad websocket frames", "ws", (b,))),
    fragmented().map(lambda b: Input("fragmented messages", "ws", (b,))),
    poll_bodies(),
    poll_bodies(),
    ws_eof_inputs,
    http_requests(),
)


# -- mutation ----------------------------------------------------------------------

_DELIMITERS = [
    b'"',
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b":",
    b"\\",
    b"\x00",
    b"\x1e",
    b"-",
    b"/",
    b"4",
    b"2",
    b"\xed\xa0\x80",
    b"\xff",
    b"null",
    b"1e999",
    b"\\ud800",
]


def _mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        n = len(out)
        op = rng.randrange(6)
        i = rng.randrange(n + 1)
        if op == 0 and n:  # truncate
            del out[i:]
        elif op == 1 and n:  # delete a slice
            del out[i : i + rng.randint(1, 8)]
        elif op == 2:  # insert a delimiter
            out[i:i] = rng.choice(_DELIMITERS)
        elif op == 3 and n:  # replace a byte
            out[min(i, n - 1)] = rng.randrange(256)
        elif op == 4 and n:  # duplicate a slice
            out[i:i] = out[i : i + rng.randint(1, 16)]
        elif n > 1:  # swap two bytes
            j = rng.randrange(n)
            k = min(i, n - 1)
            out[j], out[k] = out[k], out[j]
    return bytes(out)


def mutate(inp: Input, rng: random.Random) -> Input:
    """A variant of ``inp`` delivered the same way."""
    parts = list(inp.payload)
    i = rng.randrange(len(parts))
    if inp.kind == "ws":
        # flip FIN/RSV/opcode bits only: the length field stays true
        frame = bytearray(parts[i])
        frame[0] ^= rng.choice([0x80, 0x40, 0x20, 0x10, 0x01, 0x02, 0x08, 0x03])
        parts[i] = bytes(frame)
    else:
        parts[i] = _mutate_bytes(parts[i], rng) or b"4"
    return replace(inp, payload=tuple(parts), mutant=True)


def corpus(count: int, seed_value: int, mutants: int = 4, batch: int = 25) -> list[Input]:
    """``count`` inputs, deterministic for a seed: Hypothesis' generation
    phase draws ``count / (1 + mutants)`` of them, each followed by
    ``mutants`` variants."""
    drawn: list[Input] = []
    seeds = math.ceil(count / (1 + mutants))

    @settings(
        max_examples=math.ceil(seeds / batch),
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @seed(seed_value)
    @given(st.lists(all_inputs, min_size=batch, max_size=batch))
    def collect(inputs: list[Input]) -> None:
        drawn.extend(inputs)

    collect()
    rng = random.Random(seed_value)
    out: list[Input] = []
    for inp in drawn:
        out.append(inp)
        out.extend(mutate(inp, rng) for _ in range(mutants))
        if len(out) >= count:
            break
    return out[:count]
