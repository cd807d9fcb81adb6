"""How projection handlers write: row operations, executed at once or batched.

Handlers never read; they state row operations (insert if absent, upsert,
update, delete, each keyed by column equality). ``Writes`` runs each at once,
on the caller's connection: that is the inline projection inside a command's
transaction. ``BufferedWrites`` queues them per table and, at ``flush``, runs
each run of same-shaped operations on a table as one ``executemany``: that is
how a rebuild folds a page of thousands of events in a few statements.

Batching preserves meaning because every operation on a table keeps its
place relative to the other operations on that table, and no handler's
operation on one table depends on another table's rows.

Statements are built once per (backend, table, shape) with bind parameters,
compiled once per dialect and run on the driver's cursor (``store.driver``), so
the per-row cost is binding values, not building SQL or SQLAlchemy's execution
machinery. What differs per database (``INSERT ... ON CONFLICT``, how a run of
updates is sent) is the backend's (``store.backend``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tokenledger.store.backend import SET, WHERE, Backend, update_statement
from tokenledger.store.backends import backend_for
from tokenledger.store.driver import DriverStatement

__all__ = ["BufferedWrites", "Writes"]

Row = Mapping[str, Any]
# (operation, table name, where columns, value columns, columns that must still be NULL)
Shape = tuple[str, str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]


class Writes:
    """Row operations executed at once on ``connection``."""

    def __init__(self, connection: Connection, backend: Backend | None = None) -> None:
        self.connection = connection
        self.backend = backend or backend_for(connection)

    def insert_if_absent(self, table: sa.Table, rows: Iterable[Row]) -> None:
        """Insert each row unless a row with its primary key exists (then leave that one)."""
        for row in rows:
            self._run(("insert", table.name, (), tuple(row), ()), table, dict(row))

    def upsert(self, table: sa.Table, row: Row) -> None:
        """Insert ``row``, or overwrite the non-key columns of the row with its key."""
        self._run(("upsert", table.name, (), tuple(row), ()), table, dict(row))

    def update(
        self,
        table: sa.Table,
        where: Row,
        values: Row,
        *,
        only_if_null: Sequence[str] = (),
    ) -> None:
        """Set ``values`` on the rows equal to ``where`` (and whose ``only_if_null`` are NULL)."""
        params = {
            **{WHERE + k: v for k, v in where.items()},
            **{SET + k: v for k, v in values.items()},
        }
        shape = ("update", table.name, tuple(where), tuple(values), tuple(only_if_null))
        self._run(shape, table, params)

    def delete(self, table: sa.Table, where: Row) -> None:
        params = {WHERE + k: v for k, v in where.items()}
        self._run(("delete", table.name, tuple(where), (), ()), table, params)

    def close_interval(self, table: sa.Table, key: Row, ended: Row) -> None:
        """End the open interval of the fact ``key`` names in a table of intervals (one with
        ``interval_key``, ``projections.schema``): set ``ended`` (``to_position``,
        ``to_time`` and any other column) on its row whose ``to_position`` is NULL and whose
        ``from_position`` lies before the new end, so that re-applying the event that opened
        it leaves it open. No open row: nothing happens."""
        params = {
            **{WHERE + k: v for k, v in key.items()},
            **{SET + k: v for k, v in ended.items()},
        }
        self._run(("close", table.name, tuple(key), tuple(ended), ()), table, params)

    def _run(self, shape: Shape, table: sa.Table, params: dict[str, Any]) -> None:
        _statement(self.backend, table, shape).execute(self.connection, params).close()


class BufferedWrites(Writes):
    """Row operations queued per table and run in batches at ``flush``.

    An operation joins the latest earlier run of the same shape on its table
    when no operation queued since then touches the same row (by primary key),
    so e.g. a page of token issues interleaved with revocations becomes one
    INSERT batch and one UPDATE batch, while two operations on one row always
    run in the order they were stated. An operation whose row cannot be told
    (a WHERE without the whole primary key) ends every earlier run.
    """

    def __init__(self, connection: Connection, backend: Backend | None = None) -> None:
        super().__init__(connection, backend)
        self._tables: dict[str, _TableQueue] = {}

    def _run(self, shape: Shape, table: sa.Table, params: dict[str, Any]) -> None:
        queue = self._tables.get(table.name)
        if queue is None:
            queue = self._tables[table.name] = _TableQueue(table)
        queue.add(shape, params)

    def flush(self) -> None:
        """Run everything queued, table by table, each table's runs in order."""
        for queue in self._tables.values():
            for shape, rows in queue.runs:
                operation, _, where, values, only_if_null = shape
                if operation == "update":
                    # The backend may send a run of updates in fewer statements.
                    self.backend.update_many(
                        self.connection, queue.table, where, values, only_if_null, rows
                    )
                    continue
                # Every row of a run binds every name of its shape: taken out in C.
                statement = _statement(self.backend, queue.table, shape)
                statement.executemany_rows(self.connection, rows)
        self._tables.clear()


class _TableQueue:
    def __init__(self, table: sa.Table) -> None:
        self.table = table
        # A table of intervals tells its rows apart by the fact they are about: an interval
        # is opened and closed by the same key, whatever its ``from_position``.
        self.key = table.info.get("interval_key") or tuple(
            c.name for c in table.primary_key.columns
        )
        self.runs: list[tuple[Shape, list[dict[str, Any]]]] = []
        self._last_run_of_shape: dict[Shape, int] = {}
        self._last_run_of_row: dict[Any, int] = {}
        self._barrier = 0  # runs before this index take no more operations

    def add(self, shape: Shape, params: dict[str, Any]) -> None:
        row = self._row_of(shape, params)
        target = self._last_run_of_shape.get(shape)
        joinable = (
            target is not None
            and target >= self._barrier
            and row is not None
            and self._last_run_of_row.get(row, -1) <= target
        )
        if joinable:
            assert target is not None
            self.runs[target][1].append(params)
        else:
            target = len(self.runs)
            self.runs.append((shape, [params]))
            self._last_run_of_shape[shape] = target
        if row is None:
            self._barrier = target + 1
        else:
            self._last_run_of_row[row] = target

    def _row_of(self, shape: Shape, params: dict[str, Any]) -> Any:
        take = _row_key(shape, self.key)
        return None if take is None else take(params)


@cache
def _row_key(shape: Shape, key: tuple[str, ...]) -> Callable[[dict[str, Any]], Any] | None:
    """What tells an operation's row among its table's rows: its primary key's values (a
    tuple, or the one value of a one-column key), or None when its WHERE leaves it open.
    Worked out once per shape: a cascade queues thousands of operations of one shape."""
    operation, _, where, _, _ = shape
    if operation in ("insert", "upsert"):
        return itemgetter(*key)
    if operation == "close":
        return itemgetter(*(WHERE + name for name in key))
    if set(key) <= set(where):
        return itemgetter(*(WHERE + name for name in key))
    return None


def _close_statement(
    table: sa.Table, key: tuple[str, ...], ended: tuple[str, ...]
) -> DriverStatement:
    conditions = [table.c[name] == sa.bindparam(WHERE + name) for name in key]
    conditions += [
        table.c.to_position.is_(None),
        table.c.from_position < sa.bindparam(SET + "to_position", type_=sa.BigInteger()),
    ]
    return DriverStatement(
        sa.update(table)
        .where(*conditions)
        .values({name: sa.bindparam(SET + name, type_=table.c[name].type) for name in ended})
    )


@cache
def _statement(backend: Backend, table: sa.Table, shape: Shape) -> DriverStatement:
    operation, _, where, values, only_if_null = shape
    if operation == "insert":
        return backend.insert_on_conflict(table, values)
    if operation == "upsert":
        keys = {c.name for c in table.primary_key.columns}

        def overwrite(excluded: Any) -> dict[str, Any]:
            return {name: excluded[name] for name in values if name not in keys}

        return backend.insert_on_conflict(table, values, overwrite)
    if operation == "update":
        return update_statement(table, where, values, only_if_null)
    if operation == "close":
        return _close_statement(table, where, values)
    conditions = [table.c[name] == sa.bindparam(WHERE + name) for name in where]
    conditions += [table.c[name].is_(None) for name in only_if_null]
    return DriverStatement(sa.delete(table).where(*conditions))
