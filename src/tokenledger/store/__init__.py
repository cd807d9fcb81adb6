"""The event store on SQLAlchemy Core: schema, append under lock, reads, hash chain."""

from __future__ import annotations

from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError

from tokenledger.clock import Clock
from tokenledger.errors import StorageError
from tokenledger.store.backends import backend_for_url
from tokenledger.store.engine import DEFAULT_DATABASE_URL, create_ledger_engine, parse_database_url
from tokenledger.store.eventstore import ChainReport, EventStore, WriteTransaction
from tokenledger.store.migrate import ensure_schema, upgrade
from tokenledger.store.records import GENESIS_HASH, Head, PendingEvent, RecordedEvent

__all__ = [
    "DEFAULT_DATABASE_URL",
    "GENESIS_HASH",
    "ChainReport",
    "EventStore",
    "Head",
    "PendingEvent",
    "RecordedEvent",
    "WriteTransaction",
    "create_ledger_engine",
    "open_event_store",
    "parse_database_url",
    "upgrade",
]


def open_event_store(
    database_url: str | URL = DEFAULT_DATABASE_URL,
    *,
    clock: Clock | None = None,
    auto_upgrade: bool | None = None,
) -> EventStore:
    """Open the ledger at ``database_url``, checking its schema is current.

    SQLite files are created and migrated on first use (``auto_upgrade``
    defaults to true for them); a PostgreSQL database must be migrated
    explicitly with ``tokenledger db upgrade``, as production schemas are.
    """
    url = database_url if isinstance(database_url, URL) else parse_database_url(database_url)
    if auto_upgrade is None:
        auto_upgrade = backend_for_url(url).migrates_on_open
    engine = create_ledger_engine(url)
    try:
        ensure_schema(engine, auto_upgrade=auto_upgrade)
    except OperationalError as exc:
        engine.dispose()
        raise StorageError(describe_connection_error(url, exc)) from exc
    except BaseException:
        engine.dispose()
        raise
    return EventStore(engine, clock=clock)


def describe_connection_error(url: URL, exc: OperationalError) -> str:
    """One line naming the database (without its password) and the driver's first line."""
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    return f"cannot use the database {url.render_as_string(hide_password=True)}: {reason}"
