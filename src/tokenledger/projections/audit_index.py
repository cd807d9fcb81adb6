"""The audit index projection: which ids each event concerns, for fast audit queries."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from tokenledger.domain.events import Event
from tokenledger.domain.subjects import subjects
from tokenledger.projections.schema import audit_index
from tokenledger.projections.writes import Writes
from tokenledger.store.records import RecordedEvent

__all__ = ["AuditProjection"]


class AuditProjection:
    """One ``audit_index`` row per (event, subject); re-applying an event adds nothing."""

    name = "audit"

    @property
    def tables(self) -> Sequence[sa.Table]:
        return (audit_index,)

    def apply(self, writes: Writes, record: RecordedEvent, event: Event) -> None:
        rows = [
            {
                "subject": subject,
                "position": record.position,
                "event_type": record.event_type,
                "actor": record.actor,
                "correlation_id": record.correlation_id,
            }
            for subject in subjects(event) or (record.stream_id,)
        ]
        writes.insert_if_absent(audit_index, rows)
