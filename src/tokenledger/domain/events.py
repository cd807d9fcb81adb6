"""The ledger's events: facts, named in the past tense, never changed once recorded.

Each event is a frozen msgspec Struct in one tagged union, so a single decoder
reads the whole log. ``SCHEMA_VERSION`` is stored beside each event; older
versions are upcast when read, never rewritten.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

__all__ = ["Event", "EventUnion", "OrgCreated", "UserCreated", "event_types"]


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every event. ``stream_id`` names the aggregate the event belongs to."""

    SCHEMA_VERSION: ClassVar[int] = 1

    @property
    def stream_id(self) -> str:
        raise NotImplementedError


class OrgCreated(Event, frozen=True, kw_only=True, tag="OrgCreated"):
    org: str

    @property
    def stream_id(self) -> str:
        return f"org:{self.org}"


class UserCreated(Event, frozen=True, kw_only=True, tag="UserCreated"):
    email: str
    name: str | None = None

    @property
    def stream_id(self) -> str:
        return f"user:{self.email}"


EventUnion = OrgCreated | UserCreated


def event_types() -> dict[str, type[Event]]:
    """Every event class by its tag (the ``event_type`` stored in the log)."""
    return {cls.__struct_config__.tag: cls for cls in EventUnion.__args__}
