"""Suspension: disabling and enabling tokens, client credentials and service accounts.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _identifier() -> sa.types.TypeEngine[str]:
    # Bytewise comparison, as the other projection tables use.
    return sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql")


def upgrade() -> None:
    # Nullable, at the end of each table: nothing is suspended until someone says so, and a
    # rebuild from the log gives every row the same.
    for table in ("tokens", "client_credentials", "service_accounts"):
        op.add_column(table, sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
        op.add_column(table, sa.Column("disabled_by", sa.String(320), nullable=True))
    op.add_column("tokens", sa.Column("disabled_cause", _identifier(), nullable=True))


def downgrade() -> None:
    # SQLite drops a column by copying the table: Alembic's batch mode does that.
    for table in ("service_accounts", "client_credentials", "tokens"):
        with op.batch_alter_table(table) as batch:
            if table == "tokens":
                batch.drop_column("disabled_cause")
            batch.drop_column("disabled_by")
            batch.drop_column("disabled_at")
