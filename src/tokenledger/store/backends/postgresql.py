"""The PostgreSQL backend: the production store, through psycopg 3.

Everything the ledger does differently on PostgreSQL is here (see ``store.backend``):
the write lock is a transaction-level advisory lock; stream versions and runs of updates
bind their keys as one array; a bulk load is ``COPY``; a pipeline is psycopg's pipeline
mode; a rebuild's shadow is a sibling schema whose tables change schema to go live; a
read snapshot is each statement's own (autocommit, as READ COMMITTED gives anyway).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL, Connection, Engine

from tokenledger.errors import Conflict
from tokenledger.store.backend import SET, WHERE, Row, update_statement
from tokenledger.store.backends.common import (
    EVENT_KEYS,
    INSERT_EVENTS,
    ShadowTables,
    upsert_statement,
)
from tokenledger.store.driver import Converter, DriverStatement, run_on_cursor, wrapped_error
from tokenledger.store.notify import CHANNEL_SQL, PostgresListener
from tokenledger.store.records import RecordedEvent
from tokenledger.store.schema import UTCDateTime, events

__all__ = ["BACKEND", "PostgreSQLBackend"]

# The write lock: a transaction-level advisory lock keyed by this ledger's ``events``
# table, which serialises writers without blocking readers (unlike ``LOCK TABLE``, it
# does not queue behind autovacuum either).
_WRITE_LOCK = DriverStatement(
    sa.text("SELECT pg_advisory_xact_lock(7236712, 'events'::regclass::oid::int4)")
)
# The new head, to every process listening on this ledger's channel (``store.notify``).
_ANNOUNCE_HEAD = DriverStatement(
    sa.text(f"SELECT pg_notify({CHANNEL_SQL}, :head)").bindparams(
        sa.bindparam("head", type_=sa.String())
    )
)
# One rebuild at a time: a session-level advisory lock, keyed by the live events table,
# released when the rebuild ends or its connection dies.
_REBUILD_KEY = "7236713, 'events'::regclass::oid::int4"
_ALREADY_RUNNING = "another rebuild or check of these projections is running"
_SHADOW_SUFFIX = "tl_rebuild"

# The latest version of each stream in the array ``ids``, one statement whatever the
# number of streams. Not prepared: a plan made generic while the log was small (a
# sequential scan) would be kept as the log grows, each call then reading it all.
_STREAM_VERSIONS = DriverStatement(
    sa.select(events.c.stream_id, sa.func.max(events.c.stream_version))
    .where(events.c.stream_id == sa.any_(sa.bindparam("ids", type_=postgresql.ARRAY(sa.String()))))
    .group_by(events.c.stream_id),
    prepare=False,
)

#: From how many updates in a run they are sent as updates of arrays of keys.
_KEY_ARRAY_UPDATES = 50
_KEYS = "keys"


def _datetime_in(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("naive datetimes are not stored; give a UTC time")
    return value


def _datetime_out(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _execute_unprepared(cursor: Any, sql: str, params: Any) -> None:
    cursor.execute(sql, params, prepare=False)  # psycopg


class PostgreSQLBackend:
    name = "postgresql"
    pipelines = True
    migrates_on_open = False
    snapshots_span_statements = False
    serves_many_processes = True

    def database_file(self, url: URL) -> Path | None:
        return None

    # -- engines -------------------------------------------------------------------------

    def normalise_url(self, url: URL) -> URL:
        return url.set(drivername="postgresql+psycopg")

    def create_engine(self, url: URL, **kwargs: Any) -> Engine:
        return sa.create_engine(url, pool_recycle=3600, **kwargs)

    # -- the write lock and the log ------------------------------------------------------

    def write_lock(self, connection: Connection) -> None:
        _WRITE_LOCK.execute(connection).close()

    def migration_lock(self, connection: Connection) -> None:
        # Its own key: the events table may not exist yet. Released at commit.
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7236711, 0)")

    def stream_versions(self, connection: Connection, stream_ids: Sequence[str]) -> dict[str, int]:
        if not stream_ids:
            return {}
        return dict(_STREAM_VERSIONS.all(connection, {"ids": list(stream_ids)}))

    def insert_events(
        self, connection: Connection, records: Sequence[RecordedEvent], *, bulk: bool
    ) -> None:
        if bulk:
            # The server's bulk path (a cascade, a copied log) rather than an INSERT per row.
            rows = [msgspec.structs.astuple(r) for r in records]
            _copy_rows(connection, events, EVENT_KEYS, rows)
        else:
            INSERT_EVENTS.executemany_rows(connection, [msgspec.structs.asdict(r) for r in records])

    def announce_head(self, connection: Connection, position: int) -> None:
        # NOTIFY is transactional: listeners hear it at commit, never after a rollback.
        _ANNOUNCE_HEAD.execute(connection, {"head": str(position)}).close()

    def commit_watcher(self, url: URL) -> PostgresListener:
        # libpq takes the URL itself (search_path and all), without SQLAlchemy's driver name.
        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return PostgresListener(conninfo)

    def stored_time(self, value: Any) -> Any:
        # timestamptz comes back aware; anything else (a column whose type was changed) is
        # not a time the ledger wrote.
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.astimezone(UTC)
        return value

    # -- projection rows -----------------------------------------------------------------

    def insert_on_conflict(
        self,
        table: sa.Table,
        columns: Sequence[str],
        update: Callable[[Any], Mapping[str, Any]] | None = None,
    ) -> DriverStatement:
        return upsert_statement(postgresql.insert(table), table, columns, update)

    def load_rows(
        self, connection: Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[Row]
    ) -> None:
        _copy_rows(connection, table, columns, [tuple(row.values()) for row in rows])

    def update_many(
        self,
        connection: Connection,
        table: sa.Table,
        where: Sequence[str],
        values: Sequence[str],
        only_if_null: Sequence[str],
        rows: Sequence[Row],
    ) -> None:
        shape = (tuple(where), tuple(values), tuple(only_if_null))
        if not _update_by_key_arrays(connection, table, shape, rows):
            update_statement(table, *shape).executemany_rows(connection, rows)

    @contextmanager
    def pipeline(self, connection: Connection) -> Iterator[None]:
        # psycopg's pipeline mode: a run of writes costs one round trip instead of one each.
        # COPY is refused inside one (see ``write_strategy``).
        if self.in_pipeline(connection):
            # Inside another block: its end sends them all (psycopg would sync here instead).
            yield
            return
        dbapi_connection = connection.connection.dbapi_connection
        assert dbapi_connection is not None
        try:
            with dbapi_connection.pipeline():  # psycopg
                yield
        except connection.dialect.loaded_dbapi.Error as error:
            raise wrapped_error(connection, dbapi_connection, "(pipeline)", error) from error

    def in_pipeline(self, connection: Connection) -> bool:
        dbapi_connection = connection.connection.dbapi_connection
        assert dbapi_connection is not None
        return bool(dbapi_connection.pgconn.pipeline_status)  # psycopg's PipelineStatus: OFF is 0

    # -- rebuilds ------------------------------------------------------------------------

    @contextmanager
    def shadow(self, connection: Connection, tables: Sequence[sa.Table]) -> Iterator[_Shadow]:
        with _one_rebuild(connection):
            with connection.begin():
                live = str(connection.exec_driver_sql("SELECT current_schema()").scalar_one())
            name = f"{live}_{_SHADOW_SUFFIX}"
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
                shadow = _Shadow(connection, name, live)
                shadow.create(tables)
                yield shadow
            finally:
                drop()

    # -- reads ---------------------------------------------------------------------------

    def prepare_reader(self, connection: Connection) -> None:
        dbapi = connection.connection.dbapi_connection
        assert dbapi is not None
        dbapi.rollback()  # whatever connecting began
        dbapi.autocommit = True

    def read_snapshot(self, connection: Connection) -> AbstractContextManager[Connection]:
        # Autocommit: each lookup reads its own statement snapshot, as a READ COMMITTED
        # transaction would, without the round trips of BEGIN and COMMIT.
        return nullcontext(connection)

    # -- the driver ----------------------------------------------------------------------

    def bind_converter(self, type_: sa.types.TypeEngine[Any]) -> Converter | None:
        return _datetime_in if isinstance(type_, UTCDateTime) else None

    def result_converter(self, type_: sa.types.TypeEngine[Any]) -> Converter | None:
        return _datetime_out if isinstance(type_, UTCDateTime) else None

    def unprepared(self) -> Callable[[Any, str, Any], None]:
        return _execute_unprepared


BACKEND = PostgreSQLBackend()


def _copy_rows(
    connection: Connection, table: sa.Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Load ``rows`` (values in ``columns`` order) into ``table`` with COPY, in the
    connection's transaction and schema translation."""
    translate = connection.get_execution_options().get("schema_translate_map") or {}
    schema = translate.get(table.schema, table.schema)
    quote = connection.dialect.identifier_preparer.quote
    name = quote(table.name) if schema is None else f"{quote(schema)}.{quote(table.name)}"
    sql = f"COPY {name} ({', '.join(quote(c) for c in columns)}) FROM STDIN"

    def copy_in(cursor: Any, sql: str, _params: Any) -> None:
        with cursor.copy(sql) as copy:  # psycopg
            for row in rows:
                copy.write_row(row)

    run_on_cursor(connection, sql, (), True, copy_in).close()


Shape = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]


def _update_by_key_arrays(
    connection: Connection, table: sa.Table, shape: Shape, rows: Sequence[Row]
) -> bool:
    """Run a run of updates by one key column, setting the same few values on many distinct
    rows (a cascade's thousands of revocations), as one ``UPDATE ... WHERE key = ANY(keys)``
    per distinct set of values instead of one statement per row; False, having done
    nothing, for a run that is not like that. The rows being distinct, the order in which
    they are updated cannot matter."""
    where, values, _ = shape
    if len(where) != 1 or len(rows) < _KEY_ARRAY_UPDATES:
        return False
    key = WHERE + where[0]
    if len({row[key] for row in rows}) != len(rows):
        return False  # a row updated twice: the order counts, row by row
    groups: dict[tuple[Any, ...], list[Any]] = {}
    try:
        for row in rows:
            groups.setdefault(tuple(row[SET + name] for name in values), []).append(row[key])
    except TypeError:  # a value that cannot be told apart by hashing
        return False
    if len(groups) * 10 > len(rows):
        return False  # mostly different values: row by row
    statement = _key_array_update(table, shape)
    for assigned, keys in groups.items():
        params = {SET + name: value for name, value in zip(values, assigned, strict=True)}
        params[_KEYS] = keys
        statement.execute(connection, params).close()
    return True


@cache
def _key_array_update(table: sa.Table, shape: Shape) -> DriverStatement:
    where, values, only_if_null = shape
    column = table.c[where[0]]
    conditions = [column == sa.any_(sa.bindparam(_KEYS, type_=postgresql.ARRAY(column.type)))]
    conditions += [table.c[name].is_(None) for name in only_if_null]
    return DriverStatement(
        sa.update(table)
        .where(*conditions)
        .values({name: sa.bindparam(SET + name, type_=table.c[name].type) for name in values}),
        # Planned for the keys it gets: a handful or thousands.
        prepare=False,
    )


class _Shadow(ShadowTables):
    """A sibling schema: keys added in place, tables moved into the live schema."""

    def __init__(self, connection: Connection, name: str, live_schema: str) -> None:
        super().__init__(connection, name)
        self.live_schema = live_schema

    def add_key(self, table: sa.Table) -> None:
        quote = self.connection.dialect.identifier_preparer.quote
        key = table.primary_key
        columns = ", ".join(quote(c.name) for c in key.columns)
        self.connection.exec_driver_sql(
            f"ALTER TABLE {quote(self.name)}.{quote(table.name)} "
            f"ADD CONSTRAINT {quote(str(key.name))} PRIMARY KEY ({columns})"
        )

    def analyze(self, tables: Sequence[sa.Table]) -> None:
        """Gather the new tables' planner statistics before they go live (they move with the
        tables). Fresh tables have none, and until autovacuum comes by the planner would
        guess, e.g. sort a whole correlation's rows to return its latest 50."""
        quote = self.connection.dialect.identifier_preparer.quote
        names = ", ".join(f"{quote(self.name)}.{quote(t.name)}" for t in tables)
        with self.connection.begin():
            self.connection.exec_driver_sql(f"ANALYZE {names}")

    def swap_in(self, tables: Sequence[sa.Table]) -> None:
        # The tables change schema, their keys and indexes with them; the caller's
        # transaction makes the moves one change. Raw SQL: schemas named, not translated.
        run = self.connection.exec_driver_sql
        quote = self.connection.dialect.identifier_preparer.quote
        shadow = quote(self.name)
        live, old = quote(self.live_schema or "public"), quote(self.name + "_old")
        run(f"DROP SCHEMA IF EXISTS {old} CASCADE")
        run(f"CREATE SCHEMA {old}")
        for table in tables:
            name = quote(table.name)
            run(f"ALTER TABLE {live}.{name} SET SCHEMA {old}")
            run(f"ALTER TABLE {shadow}.{name} SET SCHEMA {live}")
        run(f"DROP SCHEMA {old} CASCADE")


@contextmanager
def _one_rebuild(connection: Connection) -> Iterator[None]:
    with connection.begin():
        taken = connection.exec_driver_sql(
            f"SELECT pg_try_advisory_lock({_REBUILD_KEY})"
        ).scalar_one()
    if not taken:
        raise Conflict(_ALREADY_RUNNING)
    try:
        yield
    finally:
        if connection.in_transaction():
            connection.rollback()
        with connection.begin():
            connection.exec_driver_sql(f"SELECT pg_advisory_unlock({_REBUILD_KEY})")
