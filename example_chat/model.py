"""The chat's data: rooms and messages, in SQLite through ``web.database``.

The database file and its tables are created on first use; there is no
setup step. Who is in a room is not stored here: it is the room channel's
presence (events.py), which every server process shares.
"""

from __future__ import annotations

import datetime
import os
import sqlite3
from typing import Any

import web

import settings

HERE = os.path.dirname(os.path.abspath(__file__))

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS rooms (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        created TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS messages (
        id INTEGER PRIMARY KEY,
        room_id INTEGER NOT NULL REFERENCES rooms (id),
        kind TEXT NOT NULL,
        name TEXT,
        text TEXT NOT NULL,
        created TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS messages_by_room ON messages (room_id, id)",
)
FIRST_ROOMS = ("General", "Random")

db = web.database(dbn="sqlite", db=os.path.join(HERE, settings.CHAT_DATABASE))
db.printing = False  # web.py would print every query in debug mode


class RoomExists(Exception):
    """Raised when a room of the same name (ignoring case) exists."""


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def setup() -> None:
    """Create the tables and the first rooms if needed."""
    for statement in SCHEMA:
        db.query(statement)
    if not list(db.select("rooms", what="id", limit=1)):
        for name in FIRST_ROOMS:
            db.insert("rooms", name=name, created=now())


# -- rooms ---------------------------------------------------------------------------


def rooms() -> list[Any]:
    """Every room, oldest first."""
    return list(db.select("rooms", what="id, name", order="id"))


def room(room_id: int) -> Any:
    """The room ``room_id``, or None."""
    found = list(db.select("rooms", where="id = $room_id", vars={"room_id": room_id}))
    return found[0] if found else None


def create_room(name: str) -> int:
    """Create a room; return its id.

    :raises RoomExists: when the name is taken.
    """
    try:
        return int(db.insert("rooms", name=name, created=now()))
    except sqlite3.IntegrityError:
        raise RoomExists(name) from None


# -- messages ------------------------------------------------------------------------


def add_message(room_id: int, kind: str, text: str, name: str | None = None) -> dict[str, Any]:
    """Store a message (``kind`` is chat, system or notice); return it as
    the page receives it."""
    created = now()
    message_id = db.insert(
        "messages", room_id=room_id, kind=kind, name=name, text=text, created=created
    )
    return wire(int(message_id), kind, text, name, created)


def wire(message_id: int, kind: str, text: str, name: str | None, created: str) -> dict[str, Any]:
    # the id lets a page that got a message twice (its snapshot, then the
    # replay of what it missed) show it once
    message = {"id": message_id, "type": kind, "text": text, "time": created}
    if name is not None:
        message["name"] = name
    return message


def recent_messages(room_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """The room's last ``limit`` messages, oldest first."""
    rows = db.select(
        "messages",
        where="room_id = $room_id",
        vars={"room_id": room_id},
        order="id DESC",
        limit=limit,
    )
    return [wire(r.id, r.kind, r.text, r.name, r.created) for r in reversed(list(rows))]
