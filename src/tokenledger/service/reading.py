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

__all__ = ["Reader", "valid", "valid_org"]


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
