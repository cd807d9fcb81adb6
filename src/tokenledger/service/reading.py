"""What the service's readers need of the ledger: a consistent view, the time, the log."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from tokenledger.domain.names import check_name
from tokenledger.errors import ValidationError
from tokenledger.projections import SqlLedgerView
from tokenledger.store import EventStore

__all__ = ["Reader", "valid", "valid_org", "within_log"]


class Reader(Protocol):
    """The part of ``Ledger`` a query reads through."""

    @property
    def store(self) -> EventStore: ...

    def view(self) -> AbstractContextManager[SqlLedgerView]: ...

    def now(self) -> datetime: ...


def valid(check: Callable[[str], str], value: str) -> str:
    """Check a query argument with the same rule commands use."""
    try:
        return check(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def valid_org(value: str) -> str:
    return valid(lambda v: check_name(v, "org name"), value)


def within_log(reader: Reader, moment: datetime, what: str) -> datetime:
    """``moment``, when the log can answer for it: not before its first event (nothing was
    yet, and an answer of "unknown" would hide a mistyped year), not after now (the log
    cannot answer for what has not happened). ``ValidationError`` saying which otherwise."""
    from tokenledger.projections.temporal_window import first_recorded_at

    now = reader.now()
    if moment > now:
        raise ValidationError(f"{what} {moment.isoformat()} is after now ({now.isoformat()})")
    with reader.store.engine.connect() as connection:
        first = first_recorded_at(connection)
    if first is None:
        raise ValidationError(f"{what} {moment.isoformat()}: the log holds no event yet")
    if moment < first:
        raise ValidationError(
            f"{what} {moment.isoformat()} is before the first event ({first.isoformat()})"
        )
    return moment
