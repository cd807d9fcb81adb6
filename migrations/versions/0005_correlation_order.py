"""Index events by (correlation id, position), so a correlation's newest events come first.

A correlation id can cover thousands of events (a cascade); "the latest 50 of them"
is then an index range read backwards instead of fetching and sorting all of them
(PostgreSQL; SQLite's index already ends in the rowid, which is the position).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_events_correlation_id", table_name="events")
    op.create_index("ix_events_correlation_id", "events", ["correlation_id", "position"])


def downgrade() -> None:
    op.drop_index("ix_events_correlation_id", table_name="events")
    op.create_index("ix_events_correlation_id", "events", ["correlation_id"])
