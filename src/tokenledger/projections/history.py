"""The ledger as it was: the state at a past moment, folded from the log.

Because ``recorded_at`` never goes backwards along the log, "the state at T" is
the fold of the log's prefix up to the last event recorded at or before T.
The fold is the domain's reference fold (``domain.state``), read in pages.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from tokenledger.clock import ensure_utc
from tokenledger.domain.model import ResourceView
from tokenledger.domain.state import RESOURCE_EVENTS, LedgerState, evolve
from tokenledger.projections.schema import audit_index
from tokenledger.store import EventStore
from tokenledger.store.eventstore import EVENT_COLUMNS, stored_events_read, to_record
from tokenledger.store.mapper import decode_event
from tokenledger.store.schema import events

__all__ = ["position_at", "resource_at", "state_at"]

_RESOURCE_EVENT_TYPES = sorted(str(kind.__struct_config__.tag) for kind in RESOURCE_EVENTS)


def _last_position_at(moment: datetime) -> sa.ScalarSelect[int | None]:
    return (
        sa.select(sa.func.max(events.c.position))
        .where(events.c.recorded_at <= ensure_utc(moment))
        .scalar_subquery()
    )


def position_at(store: EventStore, moment: datetime) -> int:
    """The last position recorded at or before ``moment`` (0 when the log starts later)."""
    with store.engine.connect() as connection:
        value = connection.execute(sa.select(_last_position_at(moment))).scalar_one_or_none()
    return int(value) if value is not None else 0


def state_at(store: EventStore, moment: datetime) -> tuple[LedgerState, int]:
    """The ledger's state at ``moment`` and the position it reflects."""
    position = position_at(store, moment)
    state = LedgerState()
    if position:
        for record in store.read_all(until_position=position):
            evolve(decode_event(record), state, record.recorded_at)
    return state, position


def resource_at(store: EventStore, path: str, moment: datetime) -> ResourceView | None:
    """The resource at ``path`` as it stood at ``moment`` (None: it did not exist then),
    as ``state_at(store, moment)[0].resource(path)`` answers, from the resource's own
    events: the audit index lists the positions of those naming the path, and only those
    that ``LedgerState.resource`` reads (``RESOURCE_EVENTS``) up to the moment are folded,
    however long the log."""
    own = (
        sa.select(audit_index.c.position)
        .where(
            audit_index.c.subject == path,
            audit_index.c.event_type.in_(_RESOURCE_EVENT_TYPES),
            audit_index.c.position <= _last_position_at(moment),
        )
        .scalar_subquery()
    )
    # One statement: the positions and the events come from one snapshot of the log.
    query = sa.select(*EVENT_COLUMNS).where(events.c.position.in_(own)).order_by(events.c.position)
    state = LedgerState()
    with store.engine.connect() as connection, stored_events_read(store.engine):
        records = [to_record(row) for row in connection.execute(query)]
    for record in records:
        evolve(decode_event(record), state, record.recorded_at)
    return state.resource(path)
