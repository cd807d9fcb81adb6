"""What a storage backend must provide: everything in which SQLite and PostgreSQL differ.

The ledger's code above the store is written once, against ``Backend``; each database
has one module implementing it (``store.backends.sqlite``, ``store.backends.postgresql``),
chosen once per SQLAlchemy dialect by ``store.backends.backend_for``. Those two modules
are the only code that names a database, builds dialect-specific SQL (``INSERT ... ON
CONFLICT``, ``COPY``, arrays, advisory locks, ``ATTACH``) or touches a driver's own
features (psycopg's pipelines). A third backend implements this protocol and passes
``tests/backend_contract.py``.

How a write is carried out (row by row, batched, loaded in bulk, pipelined) is decided in
one place, ``write_strategy``, from the size of the write and the backend's capabilities.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from tokenledger.store.driver import Converter, DriverStatement
from tokenledger.store.records import RecordedEvent

if TYPE_CHECKING:
    from tokenledger.store.notify import CommitWatcher

__all__ = [
    "BULK_EVENTS",
    "SET",
    "WHERE",
    "WRITE_OPTION",
    "Backend",
    "Shadow",
    "WriteStrategy",
    "update_statement",
    "write_strategy",
]

Row = Mapping[str, Any]

#: Execution option marking a connection whose transaction writes to the ledger (SQLite
#: begins such a transaction with ``BEGIN IMMEDIATE``).
WRITE_OPTION = "tokenledger_write"

#: From how many events a write is loaded in bulk: a cascade's thousands of revocations, a
#: copied log. Below it, statement count, not row count, is the cost.
BULK_EVENTS = 100

#: Bind parameter prefixes of a row update's WHERE and SET values (SQLAlchemy reserves a
#: column's own name in SET).
WHERE = "w_"
SET = "s_"


class WriteStrategy(enum.Enum):
    """How the events of one write and their projection rows reach the database."""

    #: Each row operation runs at once (a single event on a backend without pipelines).
    ROW_BY_ROW = "row by row"
    #: Row operations are queued per table and each same-shaped run is one ``executemany``.
    BATCHED = "batched"
    #: Batched, and the events and all their rows are sent in one pipeline (one round trip),
    #: whose errors surface only at its end.
    PIPELINED = "pipelined"
    #: The rows the events create are folded in memory and loaded in bulk (COPY where the
    #: backend has it), the events too; updates of older rows are batched.
    BULK = "bulk"


class Shadow(Protocol):
    """A rebuild's shadow tables: empty copies of the projection tables beside the live ones."""

    #: A connection on which every table is translated to the shadow's location, so that
    #: the projections' own statements write there.
    connection: Connection

    def finish(self, tables: Sequence[sa.Table]) -> None:
        """Give the loaded shadow tables the live tables' keys, indexes and planner
        statistics (outside the write lock: this is the slow part of a swap)."""
        ...

    def swap_in(self, tables: Sequence[sa.Table]) -> None:
        """Inside the caller's transaction (which holds the write lock), make the shadow
        tables' rows the live tables' rows, all tables or none: a reader sees the old
        tables or the new ones, never a mix, and a rollback leaves the live ones as they
        were."""
        ...


class Backend(Protocol):
    """One database's implementation of everything the ledger does differently per database.

    Every method runs inside the caller's transaction on ``connection`` unless it says
    otherwise, and raises driver errors as SQLAlchemy's exception classes.
    """

    #: SQLAlchemy's name for the dialect, as in URLs (``sqlite``, ``postgresql``).
    name: str
    #: Whether ``pipeline`` sends statements without waiting for each answer.
    pipelines: bool
    #: Whether ``open_event_store`` creates and migrates a database on first use (an
    #: embedded file) rather than requiring ``tokenledger db upgrade`` (a server).
    migrates_on_open: bool
    #: Whether ``read_snapshot`` holds one snapshot across its statements; without it
    #: each statement reads its own snapshot (and a caller needing one state across
    #: statements must read it in one statement).
    snapshots_span_statements: bool
    #: Whether several server processes may share one database (many API workers): a
    #: server database, not an embedded file opened by one process.
    serves_many_processes: bool

    def database_file(self, url: URL) -> Path | None:
        """The file the database lives in (for files kept beside it, such as the signing
        keys), or None for a server or an in-memory database."""
        ...

    def __hash__(self) -> int:
        """Backends key caches of the statements built for them (identity will do)."""
        ...

    # -- engines -------------------------------------------------------------------------

    def normalise_url(self, url: URL) -> URL:
        """``url`` with the driver the ledger uses; ``ValidationError`` for one it does not."""
        ...

    def create_engine(self, url: URL, **kwargs: Any) -> Engine:
        """An engine whose connections have the settings the ledger relies on (durable
        commits, foreign keys, a writer's transaction taking the write lock when
        ``WRITE_OPTION`` is set, if the database does it at ``BEGIN``)."""
        ...

    # -- the write lock and the log ------------------------------------------------------

    def write_lock(self, connection: Connection) -> None:
        """Take the ledger's write lock for the rest of the transaction: from this call
        (or the ``BEGIN`` of a connection with ``WRITE_OPTION``) to its commit or rollback,
        no other writer's transaction gets past this call, and every statement after it
        sees every transaction committed before it. Readers never wait for it."""
        ...

    def migration_lock(self, connection: Connection) -> None:
        """Serialise schema migrations (for the rest of the transaction), so that two
        processes migrating at once queue rather than collide."""
        ...

    def stream_versions(self, connection: Connection, stream_ids: Sequence[str]) -> dict[str, int]:
        """The latest version of each of ``stream_ids`` (distinct) that has events, in as
        few statements as the database allows, whatever their number; streams without
        events are left out."""
        ...

    def insert_events(
        self, connection: Connection, records: Sequence[RecordedEvent], *, bulk: bool
    ) -> None:
        """Insert ``records`` exactly as given (their positions, versions and hashes are
        final). ``bulk``: the write's strategy is ``BULK`` (the backend may use its bulk
        path). A constraint the rows break raises ``IntegrityError`` (at once, or inside a
        pipeline when it ends); the caller's transaction then rolls back."""
        ...

    def announce_head(self, connection: Connection, position: int) -> None:
        """Tell listeners in other processes that the log reaches ``position`` once the
        caller's transaction commits (nothing if it rolls back); nothing to do for a
        database whose readers notice commits by themselves (``store.notify``). Sends
        without waiting for an answer (it may run inside a pipeline)."""
        ...

    def commit_watcher(self, url: URL) -> CommitWatcher | None:
        """A watcher (not started) that wakes subscribers when the database at ``url`` may
        have new commits, without reading the log (``store.notify``); None for a database
        that lives in this process only, whose store's own commits wake them."""
        ...

    def stored_time(self, value: Any) -> Any:
        """A ``recorded_at`` value read raw (as ``String``, unconverted) as an aware UTC
        ``datetime``, if it is one the ledger wrote; anything else returned as it is,
        never raising (a verifier names the position)."""
        ...

    # -- projection rows -----------------------------------------------------------------

    def insert_on_conflict(
        self,
        table: sa.Table,
        columns: Sequence[str],
        update: Callable[[Any], Mapping[str, Any]] | None = None,
    ) -> DriverStatement:
        """An INSERT binding ``columns`` (by name) that, when a row with the same primary key
        exists, leaves that row (``update`` None) or sets on it what ``update(excluded)``
        returns (``excluded`` names the values the INSERT proposed, by column)."""
        ...

    def load_rows(
        self, connection: Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[Row]
    ) -> None:
        """Insert new rows, each a mapping of exactly ``columns`` in that order, by the
        database's fastest path. The table ends as inserting them one by one would leave
        it; a row whose key exists raises ``IntegrityError`` (at once, or, inside a
        pipeline, when it ends)."""
        ...

    def update_many(
        self,
        connection: Connection,
        table: sa.Table,
        where: Sequence[str],
        values: Sequence[str],
        only_if_null: Sequence[str],
        rows: Sequence[Row],
    ) -> None:
        """Run a run of updates, each ``SET values WHERE where AND only_if_null IS NULL``
        with its parameters in a mapping (``WHERE`` + column, ``SET`` + column). The
        table ends exactly as running them one by one, in order, would leave it."""
        ...

    def pipeline(self, connection: Connection) -> AbstractContextManager[None]:
        """A block whose statements may be sent without waiting for each answer. Their
        results are the same as without it; reading a result inside waits for everything
        sent before it; an error may surface only when the block ends. A block inside
        another adds nothing. Without pipelines, a plain block."""
        ...

    def in_pipeline(self, connection: Connection) -> bool:
        """Whether ``connection`` is inside a ``pipeline`` block that defers answers."""
        ...

    # -- rebuilds ------------------------------------------------------------------------

    def shadow(
        self, connection: Connection, tables: Sequence[sa.Table]
    ) -> AbstractContextManager[Shadow]:
        """Empty shadow copies of ``tables`` (keys and indexes come with ``finish``),
        beside the live ones and invisible to their readers, on ``connection`` (outside a
        transaction). One rebuild at a time per database: another one's open shadow
        raises ``Conflict``, and a shadow a killed run left behind is discarded. The
        shadow is removed when the block ends."""
        ...

    # -- reads ---------------------------------------------------------------------------

    def prepare_reader(self, connection: Connection) -> None:
        """Set up a connection (detached from the pool) that ``read_snapshot`` will use."""
        ...

    def read_snapshot(self, connection: Connection) -> AbstractContextManager[Connection]:
        """Bracket lookups on a ``prepare_reader`` connection: each of its statements sees
        only committed data, and all of them one state if ``snapshots_span_statements``.
        Only ``DriverStatement``s run inside (SQLAlchemy opens no transaction on it)."""
        ...

    # -- the driver ----------------------------------------------------------------------

    def bind_converter(self, type_: sa.types.TypeEngine[Any]) -> Converter | None:
        """How a value of ``type_`` is given to the driver (None: as it is), exactly as
        SQLAlchemy's type would convert it."""
        ...

    def result_converter(self, type_: sa.types.TypeEngine[Any]) -> Converter | None:
        """How a value of ``type_`` read by the driver is returned (None: as it is)."""
        ...

    def unprepared(self) -> Callable[[Any, str, Any], None] | None:
        """How to run a statement on a driver cursor so that it is planned for the
        parameters it gets (``DriverStatement(prepare=False)``); None: as usual."""
        ...


def write_strategy(
    backend: Backend,
    connection: Connection,
    events: int,
    *,
    wanted: WriteStrategy | None = None,
) -> WriteStrategy:
    """How a write of ``events`` events (and the 2 to 4 projection rows each brings) is
    carried out: the one place this is decided, for the command, the event store and the
    projector alike.

    Inside a pipeline nothing may need an answer at once: no COPY (psycopg refuses it
    there) and no bulk fold, whose fallback needs a failed load's error at once, so the
    write is pipelined whatever its size. Otherwise ``wanted`` (a rebuild's pages are
    always bulk) or: from ``BULK_EVENTS`` events on, bulk; below, one pipeline where the
    backend has pipelines (every statement is a round trip), batched for several events,
    and row by row for one (a batch's bookkeeping costs more than it saves).
    """
    if backend.pipelines and backend.in_pipeline(connection):
        return WriteStrategy.PIPELINED
    if wanted is not None:
        if wanted is WriteStrategy.PIPELINED and not backend.pipelines:
            return WriteStrategy.BATCHED
        return wanted
    if events >= BULK_EVENTS:
        return WriteStrategy.BULK
    if backend.pipelines:
        return WriteStrategy.PIPELINED
    return WriteStrategy.BATCHED if events > 1 else WriteStrategy.ROW_BY_ROW


@cache
def update_statement(
    table: sa.Table, where: tuple[str, ...], values: tuple[str, ...], only_if_null: tuple[str, ...]
) -> DriverStatement:
    """``UPDATE table SET values WHERE where AND only_if_null IS NULL``, bound as ``WHERE`` +
    column and ``SET`` + column (the same SQL on every backend)."""
    conditions = [table.c[name] == sa.bindparam(WHERE + name) for name in where]
    conditions += [table.c[name].is_(None) for name in only_if_null]
    return DriverStatement(
        sa.update(table)
        .where(*conditions)
        .values({name: sa.bindparam(SET + name, type_=table.c[name].type) for name in values})
    )
