"""The SQLite backend: the embedded default, one file (or memory), one writer at a time.

Everything the ledger does differently on SQLite is here (see ``store.backend``): the
write lock is SQLite's own, taken by ``BEGIN IMMEDIATE``; times are stored as naive UTC
text and booleans as 0/1; a rebuild's shadow is an attached database file, swapped in by
copying; a read snapshot is ``BEGIN`` ... ``COMMIT``. SQLite has no pipelines and no COPY:
a bulk load is one INSERT batch, which costs SQLite no round trips anyway.
"""

from __future__ import annotations

import fcntl
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.pool import StaticPool

from tokenledger.errors import Conflict, ValidationError
from tokenledger.store.backend import WRITE_OPTION, Row, update_statement
from tokenledger.store.backends.common import (
    INSERT_EVENTS,
    ShadowTables,
    copied_columns,
    insert_statement,
    upsert_statement,
)
from tokenledger.store.driver import Converter, DriverStatement
from tokenledger.store.notify import SQLiteWatcher
from tokenledger.store.records import RecordedEvent
from tokenledger.store.schema import UTCDateTime, events

__all__ = ["BACKEND", "SQLiteBackend"]

# How long a writer waits for another writer's lock before giving up (seconds).
SQLITE_BUSY_TIMEOUT = 30.0
# Bound on the number of parameters in one "stream IN (...)" query.
_STREAM_QUERY_CHUNK = 500
#: The attached shadow database of a rebuild.
SHADOW = "tl_rebuild"
_ALREADY_RUNNING = "another rebuild or check of these projections is running"


def _sqlite_datetime_in(value: datetime | None) -> str | None:
    if value is None:
        return None
    # The events of one transaction share a timestamp, a rebuild meets each timestamp
    # again in every row of every table its event writes, and rows alternate between a
    # few (issued, expires): convert each once. Aware datetimes are equal (and hash alike)
    # exactly when they are the same instant, which is all the text depends on; a naive
    # one equals no key, so it still fails below.
    text = _datetime_texts.get(value)
    if text is not None:
        return text
    if value.tzinfo is None:
        raise ValueError("naive datetimes are not stored; give a UTC time")
    # SQLAlchemy's SQLite DATETIME storage format (always six fractional digits),
    # so that text comparisons order the same whichever path wrote the row.
    utc = value if value.tzinfo is UTC else value.astimezone(UTC)
    text = utc.isoformat(" ", "microseconds")[:-6]  # without the "+00:00"
    if len(_datetime_texts) >= _DATETIME_TEXTS_KEPT:
        _datetime_texts.clear()  # (threads may race here: at worst a text is made twice)
    _datetime_texts[value] = text
    return text


def _sqlite_datetime_out(value: str | None) -> datetime | None:
    if value is None:
        return None
    # A page of the log holds a few timestamps many times over (a transaction's events
    # share one); datetimes are immutable, so one object serves them all.
    found = _datetimes.get(value)
    if found is None:
        found = datetime.fromisoformat(value).replace(tzinfo=UTC)
        if len(_datetimes) >= _DATETIME_TEXTS_KEPT:
            _datetimes.clear()
        _datetimes[value] = found
    return found


# Recently converted datetimes and their text both ways, a bounded few.
_datetime_texts: dict[datetime, str] = {}
_datetimes: dict[str, datetime] = {}
_DATETIME_TEXTS_KEPT = 256


def _sqlite_bool_out(value: int | None) -> bool | None:
    return None if value is None else bool(value)


# Recently read timestamp texts and the times they are: a transaction's events share one.
_stored_times: dict[str, datetime] = {}


@cache
def _stream_versions_query(count: int) -> DriverStatement:
    """The latest version of each of ``count`` streams (bound as ``s0``, ``s1``, ...)."""
    names = [sa.bindparam(f"s{i}", type_=sa.String()) for i in range(count)]
    return DriverStatement(
        sa.select(events.c.stream_id, sa.func.max(events.c.stream_version))
        .where(events.c.stream_id.in_(names))
        .group_by(events.c.stream_id),
        prepare=False,
    )


class SQLiteBackend:
    name = "sqlite"
    pipelines = False
    migrates_on_open = True
    snapshots_span_statements = True
    serves_many_processes = False

    def database_file(self, url: URL) -> Path | None:
        if url.database in (None, "", ":memory:"):
            return None
        return Path(url.database).expanduser()

    # -- engines -------------------------------------------------------------------------

    def normalise_url(self, url: URL) -> URL:
        if url.get_driver_name() not in ("pysqlite", ""):
            raise ValidationError("SQLite is supported through the standard sqlite3 driver only")
        return url.set(drivername="sqlite")

    def create_engine(self, url: URL, **kwargs: Any) -> Engine:
        in_memory = url.database in (None, "", ":memory:")
        if in_memory:
            # One connection shared by everyone, or each would see its own empty database.
            kwargs.setdefault("poolclass", StaticPool)
        else:
            Path(url.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {})
        kwargs["connect_args"].setdefault("timeout", SQLITE_BUSY_TIMEOUT)
        kwargs["connect_args"].setdefault("check_same_thread", False)
        engine = sa.create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _configure(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
            # Let SQLAlchemy's "begin" hook below issue BEGIN itself, so that writers
            # can ask for BEGIN IMMEDIATE (the pysqlite driver would defer it).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit that returned survives a power loss, also in WAL mode.
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # BEGIN IMMEDIATE takes SQLite's single write lock at once: the ledger's
            # writers are serialised and each decides on everything committed before it.
            if conn.get_execution_options().get(WRITE_OPTION):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("BEGIN")

        return engine

    # -- the write lock and the log ------------------------------------------------------

    def write_lock(self, connection: Connection) -> None:
        # Already held: a writer's transaction began with BEGIN IMMEDIATE (WRITE_OPTION),
        # SQLite's one write lock; waiting writers retry for up to SQLITE_BUSY_TIMEOUT.
        pass

    def migration_lock(self, connection: Connection) -> None:
        pass  # the same BEGIN IMMEDIATE

    def stream_versions(self, connection: Connection, stream_ids: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(stream_ids), _STREAM_QUERY_CHUNK):
            chunk = stream_ids[start : start + _STREAM_QUERY_CHUNK]
            params = {f"s{i}": stream_id for i, stream_id in enumerate(chunk)}
            found.update(_stream_versions_query(len(chunk)).all(connection, params))
        return found

    def insert_events(
        self, connection: Connection, records: Sequence[RecordedEvent], *, bulk: bool
    ) -> None:
        # One executemany whatever the size: no round trips to save.
        INSERT_EVENTS.executemany_rows(connection, [msgspec.structs.asdict(r) for r in records])

    def announce_head(self, connection: Connection, position: int) -> None:
        pass  # readers watch the file's change counter (``store.notify``)

    def commit_watcher(self, url: URL) -> SQLiteWatcher | None:
        path = self.database_file(url)
        return None if path is None else SQLiteWatcher(str(path))

    def stored_time(self, value: Any) -> Any:
        # SQLite keeps a time as the text ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC, the one
        # form both write paths store (and that time ranges compare as text): only that
        # text is a time.
        if type(value) is not str:
            return value
        found = _stored_times.get(value)
        if found is not None:
            return found
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
        if moment.tzinfo is not None or moment.isoformat(" ", "microseconds") != value:
            return value
        moment = moment.replace(tzinfo=UTC)
        if len(_stored_times) >= _DATETIME_TEXTS_KEPT:
            _stored_times.clear()
        _stored_times[value] = moment
        return moment

    # -- projection rows -----------------------------------------------------------------

    def insert_on_conflict(
        self,
        table: sa.Table,
        columns: Sequence[str],
        update: Callable[[Any], Mapping[str, Any]] | None = None,
    ) -> DriverStatement:
        return upsert_statement(sqlite.insert(table), table, columns, update)

    def load_rows(
        self, connection: Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[Row]
    ) -> None:
        insert_statement(table, tuple(columns)).executemany_rows(connection, rows)

    def update_many(
        self,
        connection: Connection,
        table: sa.Table,
        where: Sequence[str],
        values: Sequence[str],
        only_if_null: Sequence[str],
        rows: Sequence[Row],
    ) -> None:
        statement = update_statement(table, tuple(where), tuple(values), tuple(only_if_null))
        statement.executemany_rows(connection, rows)

    def pipeline(self, connection: Connection) -> AbstractContextManager[None]:
        return nullcontext()

    def in_pipeline(self, connection: Connection) -> bool:
        return False

    # -- rebuilds ------------------------------------------------------------------------

    @contextmanager
    def shadow(self, connection: Connection, tables: Sequence[sa.Table]) -> Iterator[_Shadow]:
        path = _shadow_path(connection.engine.url.database)
        with _one_rebuild(path), _attached(connection, path) as shadow:
            shadow.create(tables)
            yield shadow

    # -- reads ---------------------------------------------------------------------------

    def prepare_reader(self, connection: Connection) -> None:
        pass  # the driver connection is in autocommit mode (see create_engine)

    def read_snapshot(self, connection: Connection) -> AbstractContextManager[Connection]:
        return _Snapshot(connection)

    # -- the driver ----------------------------------------------------------------------

    def bind_converter(self, type_: sa.types.TypeEngine[Any]) -> Converter | None:
        return _sqlite_datetime_in if isinstance(type_, UTCDateTime) else None

    def result_converter(self, type_: sa.types.TypeEngine[Any]) -> Converter | None:
        if isinstance(type_, UTCDateTime):
            return _sqlite_datetime_out
        if isinstance(type_, sa.Boolean):
            return _sqlite_bool_out
        return None

    def unprepared(self) -> None:
        return None  # sqlite3 keeps no plans across parameters


BACKEND = SQLiteBackend()


class _Snapshot:
    """``BEGIN`` ... ``COMMIT`` on the connection's driver connection: the lookups read one
    snapshot of the database (WAL mode: readers never block the writer, nor it them)."""

    __slots__ = ("_connection", "_dbapi")

    def __init__(self, connection: Connection) -> None:
        dbapi = connection.connection.dbapi_connection
        assert dbapi is not None
        self._connection = connection
        self._dbapi = dbapi

    def __enter__(self) -> Connection:
        self._dbapi.execute("BEGIN")
        return self._connection

    def __exit__(self, *_: object) -> None:
        if not self._connection.invalidated:
            self._dbapi.execute("COMMIT")


class _Shadow(ShadowTables):
    """An attached database file: keys added by copying, swapped in by copying."""

    def add_key(self, table: sa.Table) -> None:
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

    def swap_in(self, tables: Sequence[sa.Table]) -> None:
        # SQLite cannot move a table between database files: copy each one. Into an empty
        # table with the same columns and indexes, INSERT ... SELECT * copies the table's and
        # each index's records as they are, in order (SQLite's transfer optimisation: no row
        # decoded, no key compared, no sort). ``SELECT *`` needs the columns in the same
        # order: a table whose columns differ (a live table altered since) is copied by name.
        # The caller's transaction makes the copies one change.
        run = self.connection.exec_driver_sql
        quote = self.connection.dialect.identifier_preparer.quote
        shadow = quote(self.name)
        for table in tables:
            name = quote(table.name)
            run(f"DELETE FROM main.{name}")
            if _same_columns(self.connection, "main", self.name, table.name):
                run(f"INSERT INTO main.{name} SELECT * FROM {shadow}.{name}")
            else:
                columns = ", ".join(quote(c.name) for c in table.columns)
                run(f"INSERT INTO main.{name} ({columns}) SELECT {columns} FROM {shadow}.{name}")


def _renamed(table: sa.Table, name: str) -> sa.Table:
    """``table``'s columns and key under another name (a copy on a metadata of its own)."""
    key = table.primary_key
    return sa.Table(
        name,
        sa.MetaData(),
        *copied_columns(table),
        sa.PrimaryKeyConstraint(*(c.name for c in key.columns), name=str(key.name)),
    )


def _same_columns(connection: Connection, first: str, second: str, table: str) -> bool:
    """Whether ``table`` has the same column names, in the same order, in two schemas."""

    def names(schema: str) -> list[str]:
        return [
            row[1] for row in connection.exec_driver_sql(f'PRAGMA "{schema}".table_info("{table}")')
        ]

    return names(first) == names(second)


@contextmanager
def _one_rebuild(path: Path | None) -> Iterator[None]:
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
def _attached(connection: Connection, path: Path | None) -> Iterator[_Shadow]:
    if path is not None:  # what an interrupted run left behind
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    # ATTACH and DETACH are refused inside a transaction: run them on the driver
    # connection, which is in autocommit mode (see create_engine).
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
        yield _Shadow(connection, SHADOW)
    finally:
        if connection.in_transaction():
            connection.rollback()
        raw.execute(f"DETACH DATABASE {SHADOW}")
        if path is not None:
            path.unlink(missing_ok=True)


def _shadow_path(database: str | None) -> Path | None:
    if database in (None, "", ":memory:"):
        return None
    return Path(f"{database}.rebuild")
