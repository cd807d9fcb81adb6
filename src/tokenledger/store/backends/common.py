"""What the backends share: the same Core statements, and the generic half of a shadow."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tokenledger.store.driver import DriverStatement
from tokenledger.store.records import RecordedEvent
from tokenledger.store.schema import events

__all__ = [
    "EVENT_KEYS",
    "INSERT_EVENTS",
    "ShadowTables",
    "insert_statement",
    "keyed_after_load",
    "upsert_statement",
]


def upsert_statement(
    insert: Any,
    table: sa.Table,
    columns: Sequence[str],
    update: Callable[[Any], Mapping[str, Any]] | None,
) -> DriverStatement:
    """``insert`` (a dialect's INSERT with ON CONFLICT) into ``table`` keyed by its primary key:
    the conflicting row is left alone, or updated with ``update(excluded)``. Both backends
    spell it alike; each passes its own dialect's insert."""
    keys = [c.name for c in table.primary_key.columns]
    if update is None:
        statement = insert.on_conflict_do_nothing(index_elements=keys)
    else:
        statement = insert.on_conflict_do_update(
            index_elements=keys, set_=dict(update(insert.excluded))
        )
    return DriverStatement(statement, column_keys=columns)


#: RecordedEvent's fields are the log's columns, in order.
EVENT_KEYS: tuple[str, ...] = RecordedEvent.__struct_fields__
INSERT_EVENTS = DriverStatement(events.insert(), column_keys=EVENT_KEYS)


@cache
def insert_statement(table: sa.Table, columns: tuple[str, ...]) -> DriverStatement:
    """A plain INSERT of ``columns`` (a row whose key exists raises ``IntegrityError``)."""
    return DriverStatement(sa.insert(table), column_keys=columns)


def keyed_after_load(table: sa.Table) -> bool:
    """Whether a shadow table gets even its primary key only after the load (the audit
    index: its rows carry their event's position, which only grows along the fold)."""
    return bool(table.info.get("keyed_after_load"))


class ShadowTables:
    """A shadow's tables, created and finished alike on every backend; the key added after
    the load, the statistics and the swap are each backend's own."""

    def __init__(self, connection: Connection, name: str) -> None:
        self.connection = connection.execution_options(schema_translate_map={None: name})
        self.name = name

    def create(self, tables: Sequence[sa.Table]) -> None:
        """The tables with their keys and unique constraints, but no other index yet: loading
        rows and then building an index (one sort) is far cheaper than updating it per row.
        A table keyed after the load is created without its key too."""
        with self.connection.begin():
            for table in tables:
                self.connection.execute(sa.schema.CreateTable(_as_loaded(table)))

    def finish(self, tables: Sequence[sa.Table]) -> None:
        with self.connection.begin():
            for table in tables:
                if keyed_after_load(table):
                    self.add_key(table)
                for index in table.indexes:
                    self.connection.execute(sa.schema.CreateIndex(index))
        self.analyze(tables)

    def add_key(self, table: sa.Table) -> None:
        raise NotImplementedError

    def analyze(self, tables: Sequence[sa.Table]) -> None:
        """Gather planner statistics, where the database keeps them per table."""


def _as_loaded(table: sa.Table) -> sa.Table:
    """The shadow's form of ``table``: itself, or for a table keyed after the load the same
    columns without the key (a copy on a metadata of its own; same name, so the statements
    written against ``table`` address it)."""
    if not keyed_after_load(table):
        return table
    return sa.Table(table.name, sa.MetaData(), *copied_columns(table))


def copied_columns(table: sa.Table) -> list[sa.Column[Any]]:
    return [sa.Column(c.name, c.type, nullable=c.nullable) for c in table.columns]
