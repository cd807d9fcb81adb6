"""The ledger's source of time.

Every timestamp the ledger records or compares against comes from a ``Clock``
so that tests can move time (freezegun patches ``datetime.now``) and so that
time is always timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "SystemClock", "ensure_utc"]


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def ensure_utc(moment: datetime) -> datetime:
    """Return ``moment`` as an aware UTC datetime; a naive value is taken to be UTC."""
    if moment.tzinfo is UTC:
        return moment  # already so (the system clock's): no copy
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
