"""The ledger as it was: the state at a past moment, folded from the log.

Because ``recorded_at`` never goes backwards along the log, "the state at T" is
the fold of the log's prefix up to the last event recorded at or before T.
The fold is the domain's reference fold (``domain.state``), read in pages.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from tokenledger.clock import ensure_utc
from tokenledger.domain.state import LedgerState, evolve
from tokenledger.store import EventStore
from tokenledger.store.mapper import decode_event
from tokenledger.store.schema import events

__all__ = ["position_at", "state_at"]


def position_at(store: EventStore, moment: datetime) -> int:
    """The last position recorded at or before ``moment`` (0 when the log starts later)."""
    with store.engine.connect() as connection:
        value = connection.execute(
            sa.select(sa.func.max(events.c.position)).where(
                events.c.recorded_at <= ensure_utc(moment)
            )
        ).scalar_one_or_none()
    return int(value) if value is not None else 0


def state_at(store: EventStore, moment: datetime) -> tuple[LedgerState, int]:
    """The ledger's state at ``moment`` and the position it reflects."""
    position = position_at(store, moment)
    state = LedgerState()
    if position:
        for record in store.read_all(until_position=position):
            evolve(decode_event(record), state, record.recorded_at)
    return state, position
