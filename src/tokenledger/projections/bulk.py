"""A rebuild's pages folded in memory, their new rows loaded in bulk.

Folding the log from its start mostly creates rows (token issues, audit
entries) and changes rows created shortly before (a revocation of a token
issued a few thousand events earlier). ``PageFold`` is a ``Writes`` that keeps
the rows a page creates in memory, applies the page's later operations on
those rows there, and at ``flush`` loads each table's new rows with one plain
INSERT batch (COPY on PostgreSQL: ``Backend.load_rows``); operations on rows from earlier pages run
after that, batched as ``BufferedWrites`` does. A page of 10,000 events is a
handful of statements instead of one per row operation, and a token issued and
revoked in one page is written once.

Folding in memory is exact when a row the page creates did not exist before
the page: ``insert_if_absent`` would then have inserted it, and every later
operation of the page would have found the row as it is in memory. When it did
exist (a log that creates one row twice, which handlers tolerate), the plain
INSERT fails on the primary key and the caller replays the page with
``BufferedWrites``, one exact row operation after another (``Projector``
does, inside a savepoint). A row created and then deleted within the page is
also deleted in SQL, in case an older row with its key exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cache
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tokenledger.projections.writes import BufferedWrites, Row, Writes
from tokenledger.store.backend import Backend

__all__ = ["NotFoldable", "PageFold"]


class NotFoldable(Exception):
    """An operation ``PageFold`` cannot fold exactly: replay the page row by row."""


class PageFold(Writes):
    """Row operations of one page: new rows kept in memory, the rest batched."""

    def __init__(self, connection: Connection, backend: Backend | None = None) -> None:
        super().__init__(connection, backend)
        # Per table: the rows this page created, by primary key, in creation order.
        self._created: dict[sa.Table, dict[Any, Mapping[str, Any]]] = {}
        # Per table: keys whose operations go to SQL (their row may predate the page).
        self._elsewhere: dict[sa.Table, set[Any]] = {}
        self._rest = BufferedWrites(connection, self.backend)
        # Per table of intervals: the open row this page created for each fact, by its key;
        # and the closes of rows from earlier pages, run before the new rows are loaded so
        # that they reach only those.
        self._open: dict[sa.Table, dict[Any, Any]] = {}
        self._closes = BufferedWrites(connection, self.backend)

    def insert_if_absent(self, table: sa.Table, rows: Iterable[Row]) -> None:
        created = self._created.setdefault(table, {})
        elsewhere = self._elsewhere.get(table)
        key_of = _key_of(table)
        for row in rows:
            key = key_of(row)
            if elsewhere is not None and key in elsewhere:
                self._rest.insert_if_absent(table, [row])
            elif key not in created:
                created[key] = row
                fact_of = _fact_of(table)
                if fact_of is not None and row.get("to_position") is None:
                    self._open.setdefault(table, {})[fact_of(row)] = key

    def upsert(self, table: sa.Table, row: Row) -> None:
        key = _key_of(table)(row)
        created = self._created.get(table)
        if created is not None and key in created:
            created[key] = {**created[key], **row}
        else:
            self._send_elsewhere(table, key)
            self._rest.upsert(table, row)

    def update(
        self,
        table: sa.Table,
        where: Row,
        values: Row,
        *,
        only_if_null: Sequence[str] = (),
    ) -> None:
        key = _key_in(table, where)
        created = self._created.get(table)
        row = None if created is None else created.get(key)
        if row is None:
            self._send_elsewhere(table, key)
            self._rest.update(table, where, values, only_if_null=only_if_null)
            return
        assert created is not None
        if _matches(row, where) and all(row.get(name) is None for name in only_if_null):
            created[key] = {**row, **values}

    def delete(self, table: sa.Table, where: Row) -> None:
        key = _key_in(table, where)
        if len(where) != len(table.primary_key.columns):
            # A condition beyond the key would have to be tested against a row
            # that may predate the page: not folded.
            raise NotFoldable(f"a delete from {table.name} by more than its key")
        created = self._created.get(table)
        if created is not None:
            created.pop(key, None)
        self._send_elsewhere(table, key)
        self._rest.delete(table, where)

    def close_interval(self, table: sa.Table, key: Row, ended: Row) -> None:
        fact_of = _fact_of(table)
        assert fact_of is not None  # only tables of intervals have intervals to close
        fact = fact_of(key)
        opened = self._open.get(table, {})
        created_key = opened.get(fact)
        if created_key is None:
            self._closes.close_interval(table, key, ended)
            return
        created = self._created[table]
        row = created[created_key]
        if row["from_position"] < ended["to_position"]:
            created[created_key] = {**row, **ended}
            del opened[fact]

    def flush(self) -> None:
        """Close the older intervals, load the new rows, then run the operations on older
        rows."""
        self._closes.flush()
        for table, created in self._created.items():
            if created:
                _load(self.connection, self.backend, table, created.values())
        self._rest.flush()
        self._created.clear()
        self._elsewhere.clear()
        self._open.clear()

    def _send_elsewhere(self, table: sa.Table, key: Any) -> None:
        self._elsewhere.setdefault(table, set()).add(key)


def _matches(row: Mapping[str, Any], where: Row) -> bool:
    # A column the row was created without is NULL, which equals nothing (handlers never
    # compare with NULL).
    return all(value is not None and row.get(name) == value for name, value in where.items())


@cache
def _key_of(table: sa.Table) -> Callable[[Mapping[str, Any]], Any]:
    """The primary key of a row given as a mapping (a value, or a tuple for several columns)."""
    return itemgetter(*(c.name for c in table.primary_key.columns))


@cache
def _fact_of(table: sa.Table) -> Callable[[Mapping[str, Any]], Any] | None:
    """In a table of intervals, the fact a row is about (its ``interval_key``'s values);
    None for any other table."""
    interval_key = table.info.get("interval_key")
    return None if interval_key is None else itemgetter(*interval_key)


def _key_in(table: sa.Table, where: Row) -> Any:
    try:
        return _key_of(table)(where)
    except KeyError:
        raise NotFoldable(f"an operation on {table.name} not by its primary key") from None


def _load(
    connection: Connection,
    backend: Backend,
    table: sa.Table,
    rows: Iterable[Mapping[str, Any]],
) -> None:
    """Insert rows that must not exist yet (a duplicate key raises ``IntegrityError``)."""
    by_shape: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        by_shape.setdefault(tuple(row), []).append(row)
    for columns, same in by_shape.items():
        backend.load_rows(connection, table, columns, same)
