"""Applying recorded events to the projections, with the checkpoint, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tokenledger.domain.events import Event
from tokenledger.projections.handlers import apply_event, upsert
from tokenledger.projections.schema import checkpoints
from tokenledger.store.records import RecordedEvent

__all__ = ["DEFAULT_PROJECTION", "Projector"]

#: The checkpoint name of the ledger's inline projections.
DEFAULT_PROJECTION = "ledger"


class Projector:
    """Folds events into the projection tables and records how far the log has been folded.

    Inline use: a command appends its events, then calls :meth:`apply` on the
    write transaction's connection, so the events, the tables and the
    checkpoint commit (or vanish) together and readers see their own writes.
    """

    def __init__(self, name: str = DEFAULT_PROJECTION) -> None:
        self.name = name

    def apply(self, connection: Connection, pairs: Sequence[tuple[RecordedEvent, Event]]) -> None:
        """Apply each (record, event) in order, then move the checkpoint to the last position.

        The checkpoint never moves backwards: re-applying events that are
        already folded in (handlers are idempotent) leaves it where it was.
        """
        if not pairs:
            return
        for record, event in pairs:
            apply_event(connection, record, event)
        position = max(self.checkpoint(connection), pairs[-1][0].position)
        self._save_checkpoint(connection, position)

    def checkpoint(self, connection: Connection) -> int:
        """The position of the last event folded in; 0 before the first."""
        position = connection.execute(
            sa.select(checkpoints.c.position).where(checkpoints.c.name == self.name)
        ).scalar_one_or_none()
        return 0 if position is None else int(position)

    def _save_checkpoint(self, connection: Connection, position: int) -> None:
        upsert(connection, checkpoints, {"name": self.name, "position": position})
