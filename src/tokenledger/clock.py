"""The ledger's source of time, and the range of times it holds.

Every timestamp the ledger records or compares against comes from a ``Clock``
so that tests can move time (freezegun patches ``datetime.now``) and so that
time is always timezone-aware UTC.

Every time given from outside (an option, a JSON body, a query parameter) goes
through ``checked_utc`` and every lifetime through ``check_lifetime``: a value
the ledger cannot hold is a one-line ``ValidationError``, never an
``OverflowError`` from deep inside a conversion or a sum.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

from tokenledger.errors import ValidationError

__all__ = [
    "EARLIEST",
    "LATEST",
    "Clock",
    "SystemClock",
    "check_lifetime",
    "checked_utc",
    "ensure_utc",
]

#: The span of times the ledger holds, a day inside what ``datetime`` can represent at
#: each end. PostgreSQL answers a ``timestamptz`` in the session's time zone (up to 14
#: hours off UTC today, and more for the local mean times of old dates), and a driver
#: cannot build a datetime past year 9999 or before year 1: a time stored any closer to
#: the edges could be written but not read back. ``--expires-at 9999-12-31`` still fits.
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, tzinfo=UTC)


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def ensure_utc(moment: datetime) -> datetime:
    """Return ``moment`` as an aware UTC datetime; a naive value is taken to be UTC.

    A value whose UTC equivalent falls outside years 1 to 9999 (``0001-01-01T00:00+01:00``)
    cannot be converted: that is refused as bad input rather than left to overflow.
    """
    if moment.tzinfo is UTC:
        return moment  # already so (the system clock's): no copy
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValidationError(f"time {moment.isoformat()} out of range: {_SPAN}") from None


def checked_utc(moment: datetime, what: str = "time") -> datetime:
    """``moment`` in UTC, refused with a one-line ``ValidationError`` naming ``what`` (an
    option or a field) when it lies outside the span the ledger holds."""
    try:
        utc = ensure_utc(moment)
    except ValidationError:
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise ValidationError(f"invalid {what} {moment.isoformat()}: out of range: {_SPAN}")
    return utc


def check_lifetime(
    lifetime: timedelta, what: str = "lifetime", now: datetime | None = None
) -> None:
    """Refuse a lifetime that, counted from ``now`` (default: the wall clock), ends beyond the
    latest time the ledger holds: ``now + lifetime`` would overflow or be unreadable."""
    start = ensure_utc(now) if now is not None else SystemClock().now()
    try:
        end = start + lifetime
    except OverflowError:
        end = None
    if end is None or end > LATEST:
        raise ValidationError(f"invalid {what}: too long, it would end after {_text(LATEST)}")


def _text(moment: datetime) -> str:
    # Not strftime: with the C library's %Y, year 1 comes out as "1", not "0001".
    return moment.isoformat().replace("+00:00", "Z")


_SPAN = f"the ledger holds times from {_text(EARLIEST)} to {_text(LATEST)}"
