"""A resource's license and data class.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, at the end of the table: existing rows have neither until an admin sets them,
    # and a rebuild from the log gives every row the same.
    op.add_column("resources", sa.Column("license", sa.String(100), nullable=True))
    op.add_column("resources", sa.Column("data_class", sa.String(20), nullable=True))


def downgrade() -> None:
    # SQLite drops a column by copying the table: Alembic's batch mode does that.
    with op.batch_alter_table("resources") as batch:
        batch.drop_column("data_class")
        batch.drop_column("license")
