"""Running the projections: each folds events into its own tables and keeps a checkpoint.

Inline use: a command appends its events, then calls :meth:`Projector.apply`
on the write transaction's connection, so the events, every projection's rows
and their checkpoints commit (or vanish) together and readers see their own
writes. A rebuild (``projections.rebuild``) drives the same projections over the
whole log into fresh tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tokenledger.domain.events import Event
from tokenledger.projections.audit_index import AuditProjection
from tokenledger.projections.bulk import NotFoldable, PageFold
from tokenledger.projections.handlers import apply_event
from tokenledger.projections.schema import TEMPORAL_TABLES, audit_index, checkpoints, metadata
from tokenledger.projections.temporal_handlers import TemporalProjection
from tokenledger.projections.writes import BufferedWrites, Writes
from tokenledger.store.backend import BULK_EVENTS, Backend, WriteStrategy, write_strategy
from tokenledger.store.backends import backend_for
from tokenledger.store.driver import DriverStatement
from tokenledger.store.records import RecordedEvent
from tokenledger.store.schema import events

__all__ = [
    "BULK_EVENTS",
    "DEFAULT_PROJECTION",
    "PROJECTIONS",
    "LedgerProjection",
    "Projection",
    "Projector",
    "projection_tables",
]

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
        others |= {t.name for t in TEMPORAL_TABLES}
        return tuple(t for t in metadata.sorted_tables if t.name not in others)

    def apply(self, writes: Writes, record: RecordedEvent, event: Event) -> None:
        apply_event(writes, record, event)


PROJECTIONS: tuple[Projection, ...] = (
    LedgerProjection(),
    AuditProjection(),
    TemporalProjection(),
)


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
        strategy: WriteStrategy | None = None,
        batched: bool | None = None,
    ) -> None:
        """Apply each (record, event) in order, then move the checkpoints to the last position.

        The row operations are written as ``write_strategy`` decides for this many events,
        or as ``strategy`` says (the write's, chosen by the caller; ``batched``: batched or
        row by row): at once, one after another (``ROW_BY_ROW``); queued and run as a few
        ``executemany`` statements at the end (``BATCHED``, ``PIPELINED``), the batches
        sent in one pipeline where the backend has pipelines; or folded in memory with the
        rows they create loaded in bulk (``BULK``, see ``apply_in_bulk``). A checkpoint
        never moves backwards (the upsert keeps the larger position): re-applying events
        already folded in (handlers are idempotent) leaves it where it was.
        """
        if not pairs:
            return
        backend = backend_for(connection)
        if strategy is None and batched is not None:
            strategy = WriteStrategy.BATCHED if batched else WriteStrategy.ROW_BY_ROW
        strategy = write_strategy(backend, connection, len(pairs), wanted=strategy)
        if strategy is WriteStrategy.BULK:
            self._apply_in_bulk(connection, backend, pairs)
            return
        writes = (
            Writes(connection, backend)
            if strategy is WriteStrategy.ROW_BY_ROW
            else BufferedWrites(connection, backend)
        )
        self._fold(writes, pairs)
        # Nothing here needs an answer before the end: one round trip where pipelines exist.
        with backend.pipeline(connection):
            if isinstance(writes, BufferedWrites):
                writes.flush()
            self._advance(connection, backend, pairs[-1][0].position)

    def apply_in_bulk(
        self, connection: Connection, pairs: Sequence[tuple[RecordedEvent, Event]]
    ) -> None:
        """``apply`` with the ``BULK`` strategy, for a rebuild's pages: the rows the events
        create are folded in memory and loaded in bulk (``projections.bulk``). A page that
        cannot be folded exactly (a log creating one row twice) is rolled back to a
        savepoint and applied one row operation after another instead."""
        self.apply(connection, pairs, strategy=WriteStrategy.BULK)

    def _apply_in_bulk(
        self,
        connection: Connection,
        backend: Backend,
        pairs: Sequence[tuple[RecordedEvent, Event]],
    ) -> None:
        fold = PageFold(connection, backend)
        try:
            self._fold(fold, pairs)
            with connection.begin_nested():
                fold.flush()
        except (NotFoldable, sa.exc.IntegrityError):
            writes = BufferedWrites(connection, backend)
            self._fold(writes, pairs)
            writes.flush()
        self._advance(connection, backend, pairs[-1][0].position)

    def _fold(self, writes: Writes, pairs: Sequence[tuple[RecordedEvent, Event]]) -> None:
        for projection in self.projections:
            for record, event in pairs:
                projection.apply(writes, record, event)

    def _advance(self, connection: Connection, backend: Backend, position: int) -> None:
        _advance_checkpoint(backend).executemany(
            connection, [{"name": p.name, "position": position} for p in self.projections]
        )

    @staticmethod
    def checkpoint(connection: Connection, name: str = DEFAULT_PROJECTION) -> int:
        """The position of the last event a projection folded in; 0 before the first."""
        position = _READ_CHECKPOINT.scalar(connection, {"name": name})
        return 0 if position is None else int(position)


@cache
def _advance_checkpoint(backend: Backend) -> DriverStatement:
    """Set a checkpoint to ``position`` unless it is already further along."""

    def further(excluded: Any) -> dict[str, Any]:
        position = sa.case(
            (excluded.position > checkpoints.c.position, excluded.position),
            else_=checkpoints.c.position,
        )
        return {"position": position}

    return backend.insert_on_conflict(checkpoints, ("name", "position"), further)


_READ_CHECKPOINT = DriverStatement(
    sa.select(checkpoints.c.position).where(checkpoints.c.name == sa.bindparam("name"))
)
