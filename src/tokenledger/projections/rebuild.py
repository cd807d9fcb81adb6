"""Rebuilding projections from the log: replace, check, or build a past state elsewhere.

A rebuild folds the whole log, in keyset pages (constant memory), into fresh
*shadow* tables beside the live ones (each page's new rows folded in memory and
loaded in bulk, ``projections.bulk``; keys and indexes built once at the end,
before the write lock is taken): an attached database file on SQLite, a sibling
schema on PostgreSQL, addressed through SQLAlchemy's ``schema_translate_map`` so
that the very handlers the inline projections use write there. The live tables
keep serving meanwhile. At the end the rebuild takes the ledger's write lock,
folds the few events appended since, and then either swaps the shadow tables in
(one transaction: on PostgreSQL the tables change schema, on SQLite their
records are copied, index records included) or compares them with the live
ones. A rebuild killed midway leaves only the shadow behind, which the next run
discards before starting again.

Every event is checked against the hash chain as it is read (``read_verified``:
one pass over the log, not a second one before it), up to the head read under the
write lock. A broken chain raises ``ChainBroken`` naming the position before
anything is swapped in or compared: the shadow is discarded and the live tables
stay as they were, for projections built from a log the chain no longer vouches
for would pass forged events off as the ledger's state.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tokenledger.errors import Conflict
from tokenledger.projections.gc_pause import gc_paused
from tokenledger.projections.projector import PROJECTIONS, Projection, Projector, projection_tables
from tokenledger.store import EventStore, RecordedEvent
from tokenledger.store.chain import ChainVerifier
from tokenledger.store.engine import WRITE_OPTION
from tokenledger.store.eventstore import acquire_write_lock
from tokenledger.store.mapper import decode_event
from tokenledger.store.schema import events

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "CheckReport",
    "Difference",
    "Progress",
    "RebuildReport",
    "build_into",
    "check",
    "rebuild",
]

#: Called with (events folded so far, events to fold in all).
Progress = Callable[[int, int], None]

DEFAULT_BATCH_SIZE = 10_000
SHADOW = "tl_rebuild"


@dataclass(frozen=True, slots=True)
class RebuildReport:
    events: int
    position: int
    seconds: float


@dataclass(frozen=True, slots=True)
class Difference:
    """One row that differs: ``live`` or ``rebuilt`` is None when the row is missing there."""

    table: str
    key: tuple[Any, ...]
    live: tuple[Any, ...] | None
    rebuilt: tuple[Any, ...] | None


@dataclass(frozen=True, slots=True)
class CheckReport:
    events: int
    position: int
    seconds: float
    differences: list[Difference] = field(default_factory=list)
    #: True when more differences existed than were collected.
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return not self.differences


def rebuild(
    store: EventStore,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    projections: Sequence[Projection] = PROJECTIONS,
) -> RebuildReport:
    """Rebuild every projection from position 1 and swap the result in atomically."""
    started = time.perf_counter()
    chain = _chain_verifier()
    with _shadow(store) as shadow:
        folded = _fold_into_shadow(store, shadow, batch_size, progress, projections, chain)
        shadow.index(projection_tables(projections))
        shadow.analyze(projection_tables(projections))
        with _locked(shadow.connection):
            folded += _catch_up(store, shadow, projections, chain)
            position = store.head().position
            shadow.swap_in(projection_tables(projections))
    return RebuildReport(events=folded, position=position, seconds=time.perf_counter() - started)


def check(
    store: EventStore,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    limit: int = 100,
    projections: Sequence[Projection] = PROJECTIONS,
) -> CheckReport:
    """Rebuild beside the live tables and report every row that differs (up to ``limit``)."""
    started = time.perf_counter()
    chain = _chain_verifier()
    with _shadow(store) as shadow:
        folded = _fold_into_shadow(store, shadow, batch_size, progress, projections, chain)
        with _locked(shadow.connection), store.engine.connect() as live:
            folded += _catch_up(store, shadow, projections, chain)
            position = store.head().position
            differences, truncated = shadow.compare(live, projection_tables(projections), limit)
    return CheckReport(
        events=folded,
        position=position,
        seconds=time.perf_counter() - started,
        differences=differences,
        truncated=truncated,
    )


def build_into(
    store: EventStore,
    target: EventStore,
    *,
    until_position: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> RebuildReport:
    """Copy the log up to ``until_position`` into ``target`` and build its projections there.

    The target becomes a ledger as it was then: its events keep their hashes, so
    its chain verifies. A target that already holds a prefix of this log (an
    interrupted earlier run) is continued; any other non-empty target is refused.
    The chain is checked from position 1 up to the bound as the log is read (the
    prefix the target holds included: it is read again, not copied), so a broken
    chain stops the copy at the page before the break.
    """
    started = time.perf_counter()
    head = target.head()
    if head.position > until_position:
        raise Conflict(f"the target already holds {head.position} events, past {until_position}")
    if head.position:
        mine = next(store.read_all(from_position=head.position, until_position=head.position), None)
        if mine is None or mine.hash != head.hash:
            raise Conflict("the target holds another ledger's events: give an empty database")
    total = until_position - head.position
    folded = 0
    projector = Projector()
    verified = store.read_verified(
        _chain_verifier(), until_position=until_position, batch_size=batch_size
    )
    records = (record for record in verified if record.position > head.position)
    for page in _pages(records, batch_size):
        with gc_paused(), target.engine.begin() as connection:
            connection.execute(events.insert(), [msgspec.structs.asdict(r) for r in page])
            projector.apply(connection, [(r, decode_event(r)) for r in page], batched=True)
        folded += len(page)
        if progress:
            progress(folded, total)
    return RebuildReport(
        events=folded, position=until_position, seconds=time.perf_counter() - started
    )


# -- the shadow tables -----------------------------------------------------------------


class _Shadow:
    """Where the shadow tables live, and the dialect-specific swap.

    ``connection`` translates every table to the shadow location (SQLAlchemy's
    ``schema_translate_map``), so the projections' own handlers write there; raw
    SQL (``exec_driver_sql``) is not translated, which the swap relies on.
    Everything about the live tables is read through other connections.
    """

    def __init__(self, connection: Connection, live_schema: str | None, name: str) -> None:
        self.connection = connection.execution_options(schema_translate_map={None: name})
        self.live_schema = live_schema
        self.name = name

    def create(self, tables: Sequence[sa.Table]) -> None:
        """The tables with their keys and unique constraints, but no other index yet: loading
        rows and then building an index (one sort) is far cheaper than updating it per row.
        A table marked ``keyed_after_load`` (the audit index) is created without its key too."""
        with self.connection.begin():
            for table in tables:
                self.connection.execute(sa.schema.CreateTable(_as_loaded(table)))

    def index(self, tables: Sequence[sa.Table]) -> None:
        """Build the shadow tables' keys and indexes after the load (one sort each), outside
        the write lock. PostgreSQL's move with the tables; SQLite's are copied with them
        (see ``swap_in``), so the shadow's must match the live ones index for index."""
        quote = self.connection.dialect.identifier_preparer.quote
        postgresql = self.connection.dialect.name == "postgresql"
        with self.connection.begin():
            for table in tables:
                if _keyed_after_load(table):
                    key = table.primary_key
                    columns = ", ".join(quote(c.name) for c in key.columns)
                    if postgresql:
                        self.connection.exec_driver_sql(
                            f"ALTER TABLE {quote(self.name)}.{quote(table.name)} "
                            f"ADD CONSTRAINT {quote(str(key.name))} PRIMARY KEY ({columns})"
                        )
                    else:
                        self._key_sqlite(table)
                for index in table.indexes:
                    self.connection.execute(sa.schema.CreateIndex(index))

    def _key_sqlite(self, table: sa.Table) -> None:
        """SQLite cannot add a key to a table: copy the loaded rows, in key order, into a table
        declared as the live one is, and put it in the keyless one's place."""
        quote = self.connection.dialect.identifier_preparer.quote
        keyed = f"{table.name}_keyed"
        loaded, shadow = quote(table.name), quote(self.name)
        self.connection.execute(sa.schema.CreateTable(_renamed(table, keyed)))
        key = ", ".join(quote(c.name) for c in table.primary_key.columns)
        run = self.connection.exec_driver_sql  # raw SQL: schemas named, not translated
        run(f"INSERT INTO {shadow}.{quote(keyed)} SELECT * FROM {shadow}.{loaded} ORDER BY {key}")
        run(f"DROP TABLE {shadow}.{loaded}")
        run(f"ALTER TABLE {shadow}.{quote(keyed)} RENAME TO {loaded}")

    def analyze(self, tables: Sequence[sa.Table]) -> None:
        """PostgreSQL: gather the new tables' planner statistics before they go live (they
        move with the tables), outside the write lock. Fresh tables have none, and until
        autovacuum comes by the planner would guess, e.g. sort a whole correlation's rows
        to return its latest 50."""
        if self.connection.dialect.name != "postgresql":
            return
        quote = self.connection.dialect.identifier_preparer.quote
        names = ", ".join(f"{quote(self.name)}.{quote(t.name)}" for t in tables)
        with self.connection.begin():
            self.connection.exec_driver_sql(f"ANALYZE {names}")

    def swap_in(self, tables: Sequence[sa.Table]) -> None:
        run = self.connection.exec_driver_sql
        quote = self.connection.dialect.identifier_preparer.quote
        shadow = quote(self.name)
        if self.connection.dialect.name == "postgresql":
            live, old = quote(self.live_schema or "public"), quote(self.name + "_old")
            run(f"DROP SCHEMA IF EXISTS {old} CASCADE")
            run(f"CREATE SCHEMA {old}")
            for table in tables:
                name = quote(table.name)
                run(f"ALTER TABLE {live}.{name} SET SCHEMA {old}")
                run(f"ALTER TABLE {shadow}.{name} SET SCHEMA {live}")
            run(f"DROP SCHEMA {old} CASCADE")
            return
        # SQLite cannot move a table between database files: copy each one. Into an empty
        # table with the same columns and indexes, INSERT ... SELECT * copies the table's and
        # each index's records as they are, in order (SQLite's transfer optimisation: no row
        # decoded, no key compared, no sort). ``SELECT *`` needs the columns in the same
        # order: a table whose columns differ (a live table altered since) is copied by name.
        for table in tables:
            name = quote(table.name)
            run(f"DELETE FROM main.{name}")
            if _same_columns(self.connection, "main", self.name, table.name):
                run(f"INSERT INTO main.{name} SELECT * FROM {shadow}.{name}")
            else:
                columns = ", ".join(quote(c.name) for c in table.columns)
                run(f"INSERT INTO main.{name} ({columns}) SELECT {columns} FROM {shadow}.{name}")

    def compare(
        self, live: Connection, tables: Sequence[sa.Table], limit: int
    ) -> tuple[list[Difference], bool]:
        differences: list[Difference] = []
        for table in tables:
            query = sa.select(table).order_by(*table.primary_key.columns)
            rows = _merge_differences(table, live.execute(query), self.connection.execute(query))
            for difference in rows:
                if len(differences) >= limit:
                    return differences, True
                differences.append(difference)
        return differences, False


def _keyed_after_load(table: sa.Table) -> bool:
    return bool(table.info.get("keyed_after_load"))


def _as_loaded(table: sa.Table) -> sa.Table:
    """The shadow's form of ``table``: itself, or for a table keyed after the load the same
    columns without the key (a copy on a metadata of its own; same name, so the statements
    written against ``table`` address it)."""
    if not _keyed_after_load(table):
        return table
    return sa.Table(table.name, sa.MetaData(), *_copied_columns(table))


def _renamed(table: sa.Table, name: str) -> sa.Table:
    """``table``'s columns and key under another name (a copy on a metadata of its own)."""
    key = table.primary_key
    return sa.Table(
        name,
        sa.MetaData(),
        *_copied_columns(table),
        sa.PrimaryKeyConstraint(*(c.name for c in key.columns), name=str(key.name)),
    )


def _copied_columns(table: sa.Table) -> list[sa.Column[Any]]:
    return [sa.Column(c.name, c.type, nullable=c.nullable) for c in table.columns]


def _same_columns(connection: Connection, first: str, second: str, table: str) -> bool:
    """Whether ``table`` has the same column names, in the same order, in two SQLite schemas."""

    def names(schema: str) -> list[str]:
        return [
            row[1] for row in connection.exec_driver_sql(f'PRAGMA "{schema}".table_info("{table}")')
        ]

    return names(first) == names(second)


def _merge_differences(
    table: sa.Table, live: Iterator[Any], rebuilt: Iterator[Any]
) -> Iterator[Difference]:
    """Walk two key-ordered row streams together, yielding the rows not alike in both."""
    columns = list(table.columns)
    key_index = [columns.index(c) for c in table.primary_key.columns]

    def key_of(row: Any) -> tuple[Any, ...]:
        return tuple(row[i] for i in key_index)

    left, right = next(live, None), next(rebuilt, None)
    while left is not None or right is not None:
        if right is None or (left is not None and key_of(left) < key_of(right)):
            assert left is not None
            yield Difference(str(table.name), key_of(left), tuple(left), None)
            left = next(live, None)
        elif left is None or key_of(right) < key_of(left):
            yield Difference(str(table.name), key_of(right), None, tuple(right))
            right = next(rebuilt, None)
        else:
            if tuple(left) != tuple(right):
                yield Difference(str(table.name), key_of(left), tuple(left), tuple(right))
            left, right = next(live, None), next(rebuilt, None)


@contextmanager
def _shadow(store: EventStore) -> Iterator[_Shadow]:
    """A connection writing to an empty shadow location; the shadow is removed afterwards.

    One rebuild at a time: a second one would discard the first one's shadow.
    """
    engine = store.engine
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            with _one_rebuild_postgresql(connection), _postgresql_shadow(connection) as shadow:
                yield shadow
        else:
            path = _sqlite_shadow_path(engine.url.database)
            with _one_rebuild_sqlite(path), _sqlite_shadow(connection, path) as shadow:
                yield shadow


_ALREADY_RUNNING = "another rebuild or check of these projections is running"


@contextmanager
def _one_rebuild_postgresql(connection: Connection) -> Iterator[None]:
    # A session-level advisory lock, keyed by the live events table: released
    # when the rebuild ends or its connection dies.
    key = "7236713, 'events'::regclass::oid::int4"
    with connection.begin():
        taken = connection.exec_driver_sql(f"SELECT pg_try_advisory_lock({key})").scalar_one()
    if not taken:
        raise Conflict(_ALREADY_RUNNING)
    try:
        yield
    finally:
        if connection.in_transaction():
            connection.rollback()
        with connection.begin():
            connection.exec_driver_sql(f"SELECT pg_advisory_unlock({key})")


@contextmanager
def _one_rebuild_sqlite(path: Path | None) -> Iterator[None]:
    if path is None:  # an in-memory ledger lives in one process
        yield
        return
    # An OS file lock: released when the rebuild ends or its process dies.
    with Path(f"{path}.lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict(_ALREADY_RUNNING) from None
        yield


@contextmanager
def _postgresql_shadow(connection: Connection) -> Iterator[_Shadow]:
    with connection.begin():
        live = str(connection.exec_driver_sql("SELECT current_schema()").scalar_one())
    name = f"{live}_{SHADOW}"
    quoted = connection.dialect.identifier_preparer.quote(name)

    def drop() -> None:
        if connection.in_transaction():
            connection.rollback()
        with connection.begin():
            connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {quoted} CASCADE")

    drop()  # what an interrupted run left behind
    with connection.begin():
        connection.exec_driver_sql(f"CREATE SCHEMA {quoted}")
    try:
        shadow = _Shadow(connection, live, name)
        shadow.create(projection_tables())
        yield shadow
    finally:
        drop()


@contextmanager
def _sqlite_shadow(connection: Connection, path: Path | None) -> Iterator[_Shadow]:
    if path is not None:  # what an interrupted run left behind
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    # ATTACH and DETACH are refused inside a transaction: run them on the driver
    # connection, which is in autocommit mode (see store/engine.py).
    raw = connection.connection.driver_connection
    assert raw is not None
    raw.execute(f"ATTACH DATABASE ? AS {SHADOW}", (str(path) if path else ":memory:",))
    try:
        # The shadow is disposable until swapped in: no journal, no fsync.
        raw.execute(f"PRAGMA {SHADOW}.journal_mode=OFF")
        raw.execute(f"PRAGMA {SHADOW}.synchronous=OFF")
        # A fixed 64 MiB page cache: the shadow's random-key B-trees (token ids, secret
        # hashes, audit subjects) miss the default 2 MiB at once; memory stays bounded.
        raw.execute(f"PRAGMA {SHADOW}.cache_size=-65536")
        shadow = _Shadow(connection, None, SHADOW)
        shadow.create(projection_tables())
        yield shadow
    finally:
        if connection.in_transaction():
            connection.rollback()
        raw.execute(f"DETACH DATABASE {SHADOW}")
        if path is not None:
            path.unlink(missing_ok=True)


def _sqlite_shadow_path(database: str | None) -> Path | None:
    if database in (None, "", ":memory:"):
        return None
    return Path(f"{database}.rebuild")


@contextmanager
def _locked(connection: Connection) -> Iterator[None]:
    """One transaction holding the ledger's write lock (no event can be appended meanwhile)."""
    connection.execution_options(**{WRITE_OPTION: True})  # SQLite: BEGIN IMMEDIATE
    try:
        with connection.begin():
            acquire_write_lock(connection)
            yield
    finally:
        connection.execution_options(**{WRITE_OPTION: False})


def _chain_verifier() -> ChainVerifier:
    # The payloads are not decoded twice: ``decode_event`` reads each one and reports one
    # that is not an event (``CorruptEvent``, an integrity violation too).
    return ChainVerifier(check_payload=False)


def _fold_into_shadow(
    store: EventStore,
    shadow: _Shadow,
    batch_size: int,
    progress: Progress | None,
    projections: Sequence[Projection],
    chain: ChainVerifier,
) -> int:
    total = store.head().position
    folded = 0
    projector = Projector(projections)
    for page in _pages(store.read_verified(chain, batch_size=batch_size), batch_size):
        with gc_paused(), shadow.connection.begin():
            pairs = [(r, decode_event(r)) for r in page]
            projector.apply_in_bulk(shadow.connection, pairs)
        folded += len(page)
        if progress:
            progress(folded, max(total, folded))
    return folded


def _catch_up(
    store: EventStore, shadow: _Shadow, projections: Sequence[Projection], chain: ChainVerifier
) -> int:
    """Fold what was appended since the first pass (called under the write lock). That pass
    folded exactly the events ``chain`` verified, so reading on from where the chain stands
    both continues the fold and keeps the chain checked up to the head."""
    projector = Projector(projections)
    records = list(store.read_verified(chain))
    projector.apply(shadow.connection, [(r, decode_event(r)) for r in records])
    return len(records)


def _pages(records: Iterator[RecordedEvent], size: int) -> Iterator[list[RecordedEvent]]:
    page: list[RecordedEvent] = []
    for record in records:
        page.append(record)
        if len(page) >= size:
            yield page
            page = []
    if page:
        yield page
