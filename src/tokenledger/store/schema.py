"""The event log's table, in SQLAlchemy Core.

Migrations (``migrations/``) create what is declared here; the declaration is
what queries are written against.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

__all__ = ["UTCDateTime", "events", "metadata"]

metadata = sa.MetaData()


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp that always comes back as an aware UTC ``datetime``.

    PostgreSQL keeps it as ``timestamptz``; SQLite has no time zones, so the
    value is stored as naive UTC and made aware again on the way out.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; give a UTC time")
        # In UTC: SQLite's DATETIME stores the wall-clock fields and drops the zone, so
        # both databases then hold the same instant.
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# SQLite only makes an INTEGER PRIMARY KEY the rowid alias; BIGINT would not be.
Position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

events = sa.Table(
    "events",
    metadata,
    sa.Column("position", Position, primary_key=True, autoincrement=False),
    sa.Column("stream_id", sa.String(200), nullable=False),
    sa.Column("stream_version", sa.Integer, nullable=False),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("event_type", sa.String(100), nullable=False),
    sa.Column("schema_version", sa.SmallInteger, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(320), nullable=False),
    sa.Column("command_id", sa.String(64), nullable=False),
    sa.Column("correlation_id", sa.String(64), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    # What the command acted through: a token id, client id or session id (never a
    # secret); NULL for the operator and for events recorded before it was kept.
    sa.Column("via", sa.String(200), nullable=True),
    sa.UniqueConstraint("stream_id", "stream_version", name="uq_events_stream_version"),
    sa.UniqueConstraint("event_id", name="uq_events_event_id"),
    sa.CheckConstraint("position > 0", name="ck_events_position_positive"),
    sa.CheckConstraint("stream_version > 0", name="ck_events_stream_version_positive"),
)
sa.Index("ix_events_recorded_at", events.c.recorded_at)
sa.Index("ix_events_correlation_id", events.c.correlation_id, events.c.position)
sa.Index("ix_events_via", events.c.via, events.c.position)
