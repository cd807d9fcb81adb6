"""Hot-path statements, compiled once and run on the database driver's own cursor.

SQLAlchemy Core builds a cache key, an execution context and a result object
around every ``Connection.execute``, which costs more than a small indexed
statement takes the database to run. The statements that run
on every command and every verification (the head, stream versions, the
projection row writes, key lookups) are therefore declared once as Core
statements with named ``bindparam``s, compiled once per dialect and schema
translation, and executed with ``cursor.execute``/``executemany`` inside the
transaction SQLAlchemy manages. Everything else goes through SQLAlchemy as
usual. The engine's ``before_cursor_execute``/``after_cursor_execute`` listeners
(tracing, statement counters) still see each statement.

The one type the driver does not convert the way SQLAlchemy would is
``UTCDateTime`` (SQLite stores naive UTC text, PostgreSQL ``timestamptz``), and
booleans on SQLite (stored as 0/1); each backend (``store.backend``) says how, the same
way the SQLAlchemy types do, so rows written by either path read back the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = ["Converter", "DriverStatement", "run_on_cursor", "wrapped_error"]

Converter = Callable[[Any], Any]
#: Runs (cursor, sql, params) on a driver cursor in a way of its own.
Action = Callable[[Any, str, Any], None]


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
    # How the backend runs a statement planned for its parameters (None: as usual).
    unprepared: Action | None


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
        self._compiled: dict[tuple[type, Any], _Compiled] = {}

    def execute(self, connection: Connection, params: Mapping[str, Any] | None = None) -> Any:
        """Run once; the driver cursor (rows not yet converted: use ``all``/``first``)."""
        return self._execute(connection, self._compile(connection), params)

    def _execute(
        self, connection: Connection, compiled: _Compiled, params: Mapping[str, Any] | None
    ) -> Any:
        bound = _bind(compiled, params or {})
        action = None if self.prepare else compiled.unprepared
        return run_on_cursor(connection, compiled.sql, bound, False, action)

    def executemany(self, connection: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        compiled = self._compile(connection)
        batch = [_bind(compiled, row) for row in rows]
        if batch:
            run_on_cursor(connection, compiled.sql, batch, True, None).close()

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
            run_on_cursor(connection, compiled.sql, batch, True, None).close()

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

    def all_later(
        self, connection: Connection, params: Mapping[str, Any] | None = None
    ) -> Callable[[], list[tuple[Any, ...]]]:
        """Send the statement now and read its rows when the returned function is called:
        inside a pipeline, statements sent one after another are answered in one round
        trip."""
        compiled = self._compile(connection)
        cursor = self._execute(connection, compiled, params)

        def rows() -> list[tuple[Any, ...]]:
            try:
                fetched = cursor.fetchall()
            finally:
                cursor.close()
            return [_read(compiled, row) for row in fetched]

        return rows

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
        translate = connection.get_execution_options().get("schema_translate_map")
        # Compiled once per kind of dialect (not per engine: tests and tools open many).
        mapped = tuple(sorted(translate.items(), key=str)) if translate else None
        key = (type(connection.dialect), mapped)
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
    # Imported here: the backends build their statements with this module.
    from tokenledger.store.backends import backend_for

    backend = backend_for(connection)
    dialect = connection.dialect
    compiled = statement.compile(  # type: ignore[attr-defined]
        dialect=dialect,
        column_keys=list(column_keys) or None,
        schema_translate_map=translate,
        render_schema_translate=bool(translate),
    )
    binders = {
        key: converter
        for key, bind in compiled.binds.items()
        if (converter := backend.bind_converter(bind.type)) is not None
    }
    # INSERT values bind under the column's key; their types are the columns'.
    if isinstance(statement, sa.Insert):
        for column in statement.table.columns:
            converter = backend.bind_converter(column.type)
            if converter is not None:
                binders[column.key] = converter
    readers: tuple[tuple[int, Converter], ...] = ()
    if isinstance(statement, sa.Select):
        readers = tuple(
            (index, converter)
            for index, column in enumerate(statement.selected_columns)
            if (converter := backend.result_converter(column.type)) is not None
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
        unprepared=backend.unprepared(),
    )


def run_on_cursor(
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
        raise wrapped_error(connection, dbapi_connection, sql, error) from error
    if dispatch.after_cursor_execute:
        dispatch.after_cursor_execute(connection, cursor, sql, params, None, many)
    return cursor


def wrapped_error(
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
