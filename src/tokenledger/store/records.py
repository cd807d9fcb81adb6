"""The shapes events take on their way into and out of the store."""

from __future__ import annotations

import os
import time
from datetime import datetime

import msgspec

__all__ = ["GENESIS_HASH", "Head", "PendingEvent", "RecordedEvent", "uuid7"]

#: The ``prev_hash`` of the first event: 32 zero bytes, hex encoded.
GENESIS_HASH = "0" * 64


def uuid7() -> str:
    """A UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits.

    Event ids and command ids are made this way. Time-ordered ids land next to each
    other in the log's indexes (``event_id``, ``correlation_id``), so a transaction
    dirties one index page rather than one random page per id (a random UUID4 costs
    a page write each at commit).
    """
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10))
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 9562 variant
    # str(UUID(int=value)), written out: an event id is made per event appended.
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class PendingEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event that a command decided on, not yet given a place in the log."""

    stream_id: str
    event_type: str
    data: bytes
    """The exact msgspec JSON encoding of the event's payload."""
    schema_version: int = 1
    event_id: str = msgspec.field(default_factory=uuid7)


class RecordedEvent(msgspec.Struct, frozen=True):
    """An event as stored: its payload plus the envelope the log gave it.

    The fields are in the column order of the ``events`` table (a row builds one).
    ``via`` is last and optional: what the command acted through (a token id, client id
    or session id), None for the operator and for events recorded before it was kept.
    """

    position: int
    stream_id: str
    stream_version: int
    event_id: str
    event_type: str
    schema_version: int
    data: bytes
    recorded_at: datetime
    actor: str
    command_id: str
    correlation_id: str
    prev_hash: str
    hash: str
    via: str | None = None


class Head(msgspec.Struct, frozen=True, kw_only=True):
    """The last event of the log: enough to detect later truncation or rewriting."""

    position: int
    hash: str
    recorded_at: datetime | None = None


EMPTY_HEAD = Head(position=0, hash=GENESIS_HASH)
