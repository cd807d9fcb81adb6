"""Running the projections: each folds events into its own tables and keeps a checkpoint.

Inline use: a command appends its events, then calls :meth:`Projector.apply`
on the write transaction's connection, so the events, every projection's rows
and their checkpoints commit (or vanish) together and readers see their own
writes. A rebuild (``projections.rebuild``) drives the same projections over the
whole log into fresh tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from tokenledger.domain.events import Event
from tokenledger.projections.audit import AuditProjection
from tokenledger.projections.bulk import NotFoldable, PageFold
from tokenledger.projections.handlers import apply_event
from tokenledger.projections.schema import audit_index, checkpoints, metadata
from tokenledger.projections.writes import BufferedWrites, Writes
from tokenledger.store.driver import DriverStatement, in_pipeline, pipelined
from tokenledger.store.records import RecordedEvent
from tokenledger.store.schema import events

__all__ = [
    "DEFAULT_PROJECTION",
    "PROJECTIONS",
    "LedgerProjection",
    "Projection",
    "Projector",
    "projection_tables",
]

#: From how many events a command's row operations are folded and loaded in bulk.
BULK_EVENTS = 100

#: The checkpoint name of the ledger's state projection.
DEFAULT_PROJECTION = "ledger"


class Projection(Protocol):
    """A named fold of the log into tables of its own.

    ``apply`` must be idempotent: re-applying an event already folded in leaves
    the tables as they were, so a replay may overlap what is there.
    """

    @property
    def name(self) -> str: ...

    @property
    def tables(self) -> Sequence[sa.Table]: ...

    def apply(self, writes: Writes, record: RecordedEvent, event: Event) -> None: ...


class LedgerProjection:
    """The current state that decisions and lookups read (``SqlLedgerView``)."""

    name = DEFAULT_PROJECTION

    @property
    def tables(self) -> Sequence[sa.Table]:
        # Every table of the schema but the log itself and the other projections'.
        others = {events.name, checkpoints.name, audit_index.name}
        return tuple(t for t in metadata.sorted_tables if t.name not in others)

    def apply(self, writes: Writes, record: RecordedEvent, event: Event) -> None:
        apply_event(writes, record, event)


PROJECTIONS: tuple[Projection, ...] = (LedgerProjection(), AuditProjection())


def projection_tables(projections: Sequence[Projection] = PROJECTIONS) -> tuple[sa.Table, ...]:
    """Every table the projections write, the checkpoints included, in dependency order."""
    wanted = {t.name for p in projections for t in p.tables} | {checkpoints.name}
    return tuple(t for t in metadata.sorted_tables if t.name in wanted)


class Projector:
    """Applies events to every projection, then moves each one's checkpoint."""

    def __init__(self, projections: Sequence[Projection] = PROJECTIONS) -> None:
        self.projections = tuple(projections)

    def apply(
        self,
        connection: Connection,
        pairs: Sequence[tuple[RecordedEvent, Event]],
        *,
        batched: bool | None = None,
    ) -> None:
        """Apply each (record, event) in order, then move the checkpoints to the last position.

        ``batched`` queues the row operations and runs them as a few
        ``executemany`` statements at the end (a rebuild's pages, a cascade, any
        command of several events: on PostgreSQL each statement is a round trip);
        otherwise each runs at once. By default a single event's operations run
        at once on SQLite; several events', and on PostgreSQL every command's, are
        batched, the batches sent in one pipeline; from ``BULK_EVENTS`` events on
        (a cascade) they go through ``apply_in_bulk``. A checkpoint never moves
        backwards (the upsert keeps the larger position): re-applying events already
        folded in (handlers are idempotent) leaves it where it was.
        """
        if not pairs:
            return
        if batched is None:
            if len(pairs) >= BULK_EVENTS:
                # A cascade's thousands of events: their new rows (the audit entries) are
                # loaded in bulk, as a rebuild's are.
                self.apply_in_bulk(connection, pairs)
                return
            # On PostgreSQL every statement is a round trip: batch, and pipeline the batches.
            batched = len(pairs) > 1 or connection.dialect.name == "postgresql"
        writes = BufferedWrites(connection) if batched else Writes(connection)
        self._fold(writes, pairs)
        with pipelined(connection):
            if isinstance(writes, BufferedWrites):
                writes.flush()
            self._advance(connection, pairs[-1][0].position)

    def apply_in_bulk(
        self, connection: Connection, pairs: Sequence[tuple[RecordedEvent, Event]]
    ) -> None:
        """Like ``apply(batched=True)``, for a rebuild's pages: the rows the events create
        are folded in memory and loaded in bulk (``projections.bulk``). A page that cannot
        be folded exactly (a log creating one row twice) is rolled back to a savepoint and
        applied one row operation after another instead."""
        if not pairs:
            return
        # Inside a pipeline an error is reported only at its end, too late for the fallback
        # below: exact row operations from the start (they need none).
        exact = in_pipeline(connection)
        if not exact:
            fold = PageFold(connection)
            try:
                self._fold(fold, pairs)
                with connection.begin_nested():
                    fold.flush()
            except (NotFoldable, sa.exc.IntegrityError):
                exact = True
        if exact:
            writes = BufferedWrites(connection)
            self._fold(writes, pairs)
            writes.flush()
        self._advance(connection, pairs[-1][0].position)

    def _fold(self, writes: Writes, pairs: Sequence[tuple[RecordedEvent, Event]]) -> None:
        for projection in self.projections:
            for record, event in pairs:
                projection.apply(writes, record, event)

    def _advance(self, connection: Connection, position: int) -> None:
        _ADVANCE_CHECKPOINT[connection.dialect.name].executemany(
            connection, [{"name": p.name, "position": position} for p in self.projections]
        )

    @staticmethod
    def checkpoint(connection: Connection, name: str = DEFAULT_PROJECTION) -> int:
        """The position of the last event a projection folded in; 0 before the first."""
        position = _READ_CHECKPOINT.scalar(connection, {"name": name})
        return 0 if position is None else int(position)


def _advance_checkpoint(insert: Any) -> DriverStatement:
    """Set a checkpoint to ``position`` unless it is already further along."""
    statement = insert(checkpoints)
    further = sa.case(
        (statement.excluded.position > checkpoints.c.position, statement.excluded.position),
        else_=checkpoints.c.position,
    )
    return DriverStatement(
        statement.on_conflict_do_update(index_elements=["name"], set_={"position": further}),
        column_keys=["name", "position"],
    )


_ADVANCE_CHECKPOINT = {
    "sqlite": _advance_checkpoint(sqlite.insert),
    "postgresql": _advance_checkpoint(postgresql.insert),
}
_READ_CHECKPOINT = DriverStatement(
    sa.select(checkpoints.c.position).where(checkpoints.c.name == sa.bindparam("name"))
)
