"""The registry of sockets connected to this process.

Each entry holds what every handler receives: the connect request, the
server-side socket and the per-connection context dict. Entries are added
when a connection is accepted and removed after ``on_finish`` has run, so
an empty registry means no handler can still be running for a socket.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .requests import Request
from .sockets import Socket


@dataclass(eq=False)
class Client:
    request: Request
    socket: Socket
    context: dict[str, Any] = field(default_factory=dict)
    #: when the connection was accepted (time.time())
    connected_at: float = field(default_factory=time.time)


#: session id -> Client, for the sockets connected to this process.
CLIENTS: dict[str, Client] = {}


def add(client: Client) -> None:
    CLIENTS[client.socket.session_id] = client


def get(session_id: str) -> Client | None:
    return CLIENTS.get(session_id)


def remove(session_id: str) -> Client | None:
    return CLIENTS.pop(session_id, None)


def count() -> int:
    return len(CLIENTS)
