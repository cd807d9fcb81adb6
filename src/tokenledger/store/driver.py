"""Hot-path statements, compiled once and run on the database driver's own cursor.

SQLAlchemy Core spends tens of microseconds per ``Connection.execute`` on
building a cache key, an execution context and a result object around a
statement that takes the database a few microseconds. The statements that run
on every command and every verification (the head, stream versions, the
projection row writes, key lookups) are therefore declared once as Core
statements with named ``bindparam``s, compiled once per dialect and schema
translation, and executed with ``cursor.execute``/``executemany`` inside the
transaction SQLAlchemy manages. Everything else goes through SQLAlchemy as
usual. The engine's ``before_cursor_execute``/``after_cursor_execute`` listeners
(tracing, statement counters) still see each statement.

The one type the driver does not convert the way SQLAlchemy would is
``UTCDateTime`` (SQLite stores naive UTC text, PostgreSQL ``timestamptz``), and
booleans on SQLite (stored as 0/1); both are converted here the same way the
SQLAlchemy types do, so rows written by either path read back the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tokenledger.store.schema import UTCDateTime

__all__ = ["DriverStatement", "copy_rows", "in_pipeline", "pipelined"]

Converter = Callable[[Any], Any]


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


def _pg_datetime_in(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("naive datetimes are not stored; give a UTC time")
    return value


def _pg_datetime_out(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _sqlite_bool_out(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def _bind_converter(type_: sa.types.TypeEngine[Any], dialect: str) -> Converter | None:
    if isinstance(type_, UTCDateTime):
        return _sqlite_datetime_in if dialect == "sqlite" else _pg_datetime_in
    return None


def _result_converter(type_: sa.types.TypeEngine[Any], dialect: str) -> Converter | None:
    if isinstance(type_, UTCDateTime):
        return _sqlite_datetime_out if dialect == "sqlite" else _pg_datetime_out
    if isinstance(type_, sa.Boolean) and dialect == "sqlite":
        return _sqlite_bool_out
    return None


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    # Bind names in placeholder order (positional paramstyles) or None (named).
    positions: tuple[str, ...] | None
    binders: dict[str, Converter]
    # The same converters by placeholder index (positional paramstyles).
    positional_binders: tuple[tuple[int, Converter], ...]
    defaults: dict[str, Any]
    readers: tuple[tuple[int, Converter], ...]


class DriverStatement:
    """A Core statement run on the driver cursor of a SQLAlchemy ``Connection``.

    Parameters are given by bind name (a column's name for an INSERT's values).
    The connection's ``schema_translate_map`` is honoured, so a rebuild's shadow
    tables are written through the same statements.
    """

    def __init__(
        self,
        statement: sa.Executable,
        *,
        column_keys: Sequence[str] = (),
        prepare: bool = True,
    ) -> None:
        self.statement = statement
        # An INSERT or upsert binds exactly these columns (by name), in every row.
        self.column_keys = tuple(column_keys)
        # PostgreSQL: psycopg prepares a statement run often, and the server may then
        # plan it once for any parameters. Right for key lookups; a statement whose best
        # plan depends on its parameters (an IN list, a range) says prepare=False and is
        # planned for the values it gets each time.
        self.prepare = prepare
        self._compiled: dict[tuple[str, Any], _Compiled] = {}

    def execute(self, connection: Connection, params: Mapping[str, Any] | None = None) -> Any:
        """Run once; the driver cursor (rows not yet converted: use ``all``/``first``)."""
        return self._execute(connection, self._compile(connection), params)

    def _execute(
        self, connection: Connection, compiled: _Compiled, params: Mapping[str, Any] | None
    ) -> Any:
        bound = _bind(compiled, params or {})
        return _run(connection, compiled.sql, bound, many=False, prepare=self.prepare)

    def executemany(self, connection: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        compiled = self._compile(connection)
        batch = [_bind(compiled, row) for row in rows]
        if batch:
            _run(connection, compiled.sql, batch, many=True, prepare=self.prepare).close()

    def executemany_rows(self, connection: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        """``executemany`` for many rows of one shape, each a mapping holding every bind name:
        on a positional driver (SQLite) the values are taken out in C and only the columns
        that need converting are touched in Python."""
        compiled = self._compile(connection)
        if compiled.positions is None or len(compiled.positions) < 2:
            # Named parameters (PostgreSQL), or a tuple ``itemgetter`` would not make.
            self.executemany(connection, rows)
            return
        take = itemgetter(*compiled.positions)
        if not compiled.positional_binders:
            batch: list[Sequence[Any]] = [take(row) for row in rows]
        else:
            batch = []
            append = batch.append
            for row in rows:
                values = list(take(row))
                for index, converter in compiled.positional_binders:
                    values[index] = converter(values[index])
                append(values)
        if batch:
            _run(connection, compiled.sql, batch, many=True, prepare=self.prepare).close()

    def all(
        self, connection: Connection, params: Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        compiled = self._compile(connection)
        cursor = self._execute(connection, compiled, params)
        try:
            rows = cursor.fetchall()
        finally:
            cursor.close()
        if not compiled.readers:
            return [tuple(row) for row in rows]
        return [_read(compiled, row) for row in rows]

    def first(
        self, connection: Connection, params: Mapping[str, Any] | None = None
    ) -> tuple[Any, ...] | None:
        compiled = self._compile(connection)
        cursor = self._execute(connection, compiled, params)
        try:
            row = cursor.fetchone()
        finally:
            cursor.close()
        return None if row is None else _read(compiled, row)

    def scalar(self, connection: Connection, params: Mapping[str, Any] | None = None) -> Any:
        row = self.first(connection, params)
        return None if row is None else row[0]

    def _compile(self, connection: Connection) -> _Compiled:
        dialect = connection.dialect
        translate = connection.get_execution_options().get("schema_translate_map")
        key = (dialect.name, tuple(sorted(translate.items(), key=str)) if translate else None)
        found = self._compiled.get(key)
        if found is None:
            found = self._compiled[key] = _compile(
                self.statement, self.column_keys, connection, translate
            )
        return found


def _compile(
    statement: sa.Executable,
    column_keys: Sequence[str],
    connection: Connection,
    translate: Mapping[Any, Any] | None,
) -> _Compiled:
    dialect = connection.dialect
    compiled = statement.compile(  # type: ignore[attr-defined]
        dialect=dialect,
        column_keys=list(column_keys) or None,
        schema_translate_map=translate,
        render_schema_translate=bool(translate),
    )
    name = dialect.name
    binders = {
        key: converter
        for key, bind in compiled.binds.items()
        if (converter := _bind_converter(bind.type, name)) is not None
    }
    # INSERT values bind under the column's key; their types are the columns'.
    if isinstance(statement, sa.Insert):
        for column in statement.table.columns:
            converter = _bind_converter(column.type, name)
            if converter is not None:
                binders[column.key] = converter
    readers: tuple[tuple[int, Converter], ...] = ()
    if isinstance(statement, sa.Select):
        readers = tuple(
            (index, converter)
            for index, column in enumerate(statement.selected_columns)
            if (converter := _result_converter(column.type, name)) is not None
        )
    positions = tuple(compiled.positiontup) if compiled.positional else None
    defaults = {k: v for k, v in compiled.params.items() if v is not None}
    positional_binders = tuple(
        (index, binders[name]) for index, name in enumerate(positions or ()) if name in binders
    )
    return _Compiled(
        sql=compiled.string,
        positions=positions,
        binders=binders,
        positional_binders=positional_binders,
        defaults=defaults,
        readers=readers,
    )


Action = Callable[[Any, str, Any], None]


def _run(connection: Connection, sql: str, params: Any, *, many: bool, prepare: bool) -> Any:
    unprepared = not (many or prepare) and connection.dialect.name == "postgresql"
    return _on_cursor(connection, sql, params, many, _execute_unprepared if unprepared else None)


def _execute_unprepared(cursor: Any, sql: str, params: Any) -> None:
    cursor.execute(sql, params, prepare=False)  # psycopg


def _on_cursor(
    connection: Connection, sql: str, params: Any, many: bool, action: Action | None
) -> Any:
    """Run ``sql`` with ``params`` (``executemany`` if ``many``), or ``action``, on a new
    driver cursor as SQLAlchemy would run ``sql``: between the engine's cursor-execute
    events, with driver errors raised as SQLAlchemy's. The open cursor is returned for
    its rows."""
    dbapi_connection = connection.connection.dbapi_connection
    assert dbapi_connection is not None
    cursor = dbapi_connection.cursor()
    dispatch = connection.dispatch
    if dispatch.before_cursor_execute:
        dispatch.before_cursor_execute(connection, cursor, sql, params, None, many)
    try:
        # Executed here, not through a closure made per call: every lookup comes this way.
        if action is not None:
            action(cursor, sql, params)
        elif many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params)
    except connection.dialect.loaded_dbapi.Error as error:
        cursor.close()
        raise _wrapped(connection, dbapi_connection, sql, error) from error
    if dispatch.after_cursor_execute:
        dispatch.after_cursor_execute(connection, cursor, sql, params, None, many)
    return cursor


@contextmanager
def pipelined(connection: Connection) -> Iterator[None]:
    """PostgreSQL: send the block's statements without waiting for each one's answer (psycopg's
    pipeline mode), so that a run of writes costs one round trip instead of one each. Only for
    statements whose results are not read inside the block (reading one waits for everything
    sent before it); an error surfaces when the block ends, raised as SQLAlchemy's exception
    classes as elsewhere. A block inside another adds nothing: the outer one sends all. Not
    for COPY, which psycopg refuses in a pipeline. Elsewhere a plain block."""
    if connection.dialect.name != "postgresql":
        yield
        return
    if in_pipeline(connection):
        # Inside another block: its end sends them all (psycopg would sync here instead).
        yield
        return
    dbapi_connection = connection.connection.dbapi_connection
    assert dbapi_connection is not None
    try:
        with dbapi_connection.pipeline():  # psycopg
            yield
    except connection.dialect.loaded_dbapi.Error as error:
        raise _wrapped(connection, dbapi_connection, "(pipeline)", error) from error


def in_pipeline(connection: Connection) -> bool:
    """Whether the connection is inside a ``pipelined`` block (where COPY cannot run)."""
    if connection.dialect.name != "postgresql":
        return False
    dbapi_connection = connection.connection.dbapi_connection
    assert dbapi_connection is not None
    return bool(dbapi_connection.pgconn.pipeline_status)  # psycopg's PipelineStatus: OFF is 0


def copy_rows(
    connection: Connection, table: sa.Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """PostgreSQL: load ``rows`` (values in ``columns`` order) into ``table`` with COPY, the
    server's bulk path, in the connection's transaction and schema translation."""
    translate = connection.get_execution_options().get("schema_translate_map") or {}
    schema = translate.get(table.schema, table.schema)
    quote = connection.dialect.identifier_preparer.quote
    name = quote(table.name) if schema is None else f"{quote(schema)}.{quote(table.name)}"
    sql = f"COPY {name} ({', '.join(quote(c) for c in columns)}) FROM STDIN"

    def copy_in(cursor: Any, sql: str, _params: Any) -> None:
        with cursor.copy(sql) as copy:  # psycopg
            for row in rows:
                copy.write_row(row)

    _on_cursor(connection, sql, (), True, copy_in).close()


def _wrapped(
    connection: Connection, dbapi_connection: Any, sql: str, error: Any
) -> sa.exc.StatementError:
    """The driver's error as SQLAlchemy would raise it (``OperationalError``, ``IntegrityError``,
    ``DataError``, ...), so callers handle one family of errors whichever path ran the
    statement. Parameters are left out: they may hold a secret's hash or personal data. A
    lost connection is invalidated, so that it is not used again."""
    dialect = connection.dialect
    lost = dialect.is_disconnect(error, dbapi_connection, None)
    if lost:
        connection.invalidate(error)
    wrapped: sa.exc.StatementError = sa.exc.DBAPIError.instance(
        sql,
        None,
        error,
        dialect.loaded_dbapi.Error,
        hide_parameters=True,
        connection_invalidated=lost,
        dialect=dialect,
    )
    return wrapped


def _bind(compiled: _Compiled, params: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
    if compiled.positions is not None:
        if compiled.defaults:
            params = {**compiled.defaults, **params}
        values = [params[name] for name in compiled.positions]
        for index, converter in compiled.positional_binders:
            values[index] = converter(values[index])
        return values
    bound = {**compiled.defaults, **params}
    for name, converter in compiled.binders.items():
        if name in bound:
            bound[name] = converter(bound[name])
    return bound


def _read(compiled: _Compiled, row: Sequence[Any]) -> tuple[Any, ...]:
    if not compiled.readers:
        return tuple(row)
    values = list(row)
    for index, converter in compiled.readers:
        values[index] = converter(values[index])
    return tuple(values)
