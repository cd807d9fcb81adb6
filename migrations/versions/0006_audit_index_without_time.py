"""The audit index keeps no time: a time window is a window of positions.

``recorded_at`` never decreases along the log, so the events recorded in a time
window are the events in a window of positions, whose ends are the first events
at or after each bound on the log's ``recorded_at`` index. The audit index's
copy of the time, and its index, only cost every command a wider row and one
more B-tree to write.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_audit_index_recorded_at", table_name="audit_index")
    if op.get_bind().dialect.name == "sqlite" and sqlite3.sqlite_version_info >= (3, 35):
        # SQLite 3.35 and later drop a column themselves (rewriting each row once);
        # Alembic's batch mode below copies the whole table into a new one instead.
        op.execute("ALTER TABLE audit_index DROP COLUMN recorded_at")
    else:
        with op.batch_alter_table("audit_index") as batch:
            batch.drop_column("recorded_at")


def downgrade() -> None:
    # The times come back from the log. The column stays nullable: a column added to a
    # table that has rows must be, on SQLite.
    op.add_column("audit_index", sa.Column("recorded_at", sa.DateTime(timezone=True)))
    op.execute(
        "UPDATE audit_index SET recorded_at ="
        " (SELECT events.recorded_at FROM events WHERE events.position = audit_index.position)"
    )
    op.create_index("ix_audit_index_recorded_at", "audit_index", ["recorded_at"])
