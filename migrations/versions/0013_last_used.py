"""The last recorded use of tokens, client credentials and sessions.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("tokens", "client_credentials", "sessions")


def upgrade() -> None:
    # Nullable, at the end of each table: a credential never used has none, and a rebuild
    # from the log (its TokenUsed events) gives every row the same.
    for table in _TABLES:
        op.add_column(table, sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # SQLite drops a column by copying the table: Alembic's batch mode does that.
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("last_used_at")
