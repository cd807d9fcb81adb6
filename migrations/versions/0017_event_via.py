"""Record on each event what its command acted through, and index the log by it.

``via`` holds the token id, client id or session id the actor acted through (never a
secret); NULL for the operator and for every event recorded before this revision. The
hash chain covers it only when present (``store.chain``), so existing logs verify
unchanged. The index answers "every command acted through this credential" (the blast
radius of a token) newest or oldest first without reading the log.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Added last, so that the table's columns stay in the order of RecordedEvent's fields.
    op.add_column("events", sa.Column("via", sa.String(200), nullable=True))
    op.create_index("ix_events_via", "events", ["via", "position"])


def downgrade() -> None:
    # The hash chain covers ``via`` wherever an event has one: dropping the column would
    # leave every such event failing verification, a log that can no longer be told from a
    # tampered one. Only a log whose events have none goes back.
    recorded = op.get_bind().execute(
        sa.text("SELECT position FROM events WHERE via IS NOT NULL ORDER BY position LIMIT 1")
    )
    first = recorded.scalar()
    if first is not None:
        raise RuntimeError(
            f"events from position {first} on record what their command acted through (via), "
            "which the hash chain covers: dropping it would break the chain; restore a backup "
            "taken before this revision instead"
        )
    op.drop_index("ix_events_via", table_name="events")
    # SQLite drops an unindexed column in place (3.35 on): no table copy, which would lose
    # the log's triggers.
    op.drop_column("events", "via")
