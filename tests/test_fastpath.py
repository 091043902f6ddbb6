"""The engine's hot path in-process: the JSON module, the packet class and
the named-event keyword of the channel broadcasts."""

from __future__ import annotations

import json
import math

import pytest
import socketio

from webpy_socketio import broadcast_channel
from webpy_socketio._engine import fastjson
from webpy_socketio._engine.packets import FastPacket as Packet
from webpy_socketio.testing import SocketIOTestClient


@pytest.mark.parametrize(
    "value",
    [
        None,
        0,
        -(2**63),
        2**63 - 1,
        1.5,
        "é ☃ \u2028",
        [1, [2, {"a": None}]],
        {"nested": {"list": [True, False], "text": "x" * 1000}},
    ],
)
def test_dumps_and_loads_agree_with_the_standard_library(value):
    text = fastjson.dumps(value, separators=(",", ":"))
    assert json.loads(text) == value
    assert fastjson.loads(json.dumps(value)) == value


def test_integers_beyond_64_bits_stay_exact():
    big = 2**70 + 1
    assert fastjson.loads(f"[{big}]") == [big]
    assert json.loads(fastjson.dumps([big])) == [big]


def test_engineio_guard_against_huge_integers_still_applies():
    with pytest.raises(ValueError):
        fastjson.loads("1" * 150)


def test_what_the_standard_library_refuses_is_still_refused():
    with pytest.raises(TypeError):
        fastjson.dumps(object())
    with pytest.raises(ValueError):
        fastjson.loads("{not json")


def test_non_string_keys_and_nan():
    assert json.loads(fastjson.dumps({1: "a", None: "b"})) == {"1": "a", "null": "b"}
    # standard JSON has no NaN: a browser's JSON.parse would reject "NaN"
    assert fastjson.dumps([math.nan]) == "[null]"


@pytest.mark.parametrize(
    "data",
    [
        None,
        1,
        "text",
        b"raw",
        bytearray(b""),
        [1, "a", [2, {"b": None}]],
        [1, "a", [2, {"b": b"x"}]],
        {"deep": {"deeper": [[[bytearray(b"y")]]]}},
        [],
        {},
    ],
)
def test_binary_detection_matches_python_socketio(data):
    assert Packet.data_is_binary(data) is socketio.packet.Packet.data_is_binary(data)


def test_broadcast_channel_can_name_the_event():
    reader, writer = SocketIOTestClient(), SocketIOTestClient()
    assert reader.subscribe("news") == {"ok": True}
    assert writer.subscribe("news") == {"ok": True}
    broadcast_channel({"headline": "x"}, "news", event="headline")
    assert reader.get_received() == [{"name": "headline", "args": [{"headline": "x"}]}]
    for client in (reader, writer):
        client.disconnect()
