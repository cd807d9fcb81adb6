"""Dyff-style accounts: the account id ``accounts create`` gives a user.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Bytewise comparison, as the other identifier columns use. Users created before have
    # none (NULL); a unique index allows any number of NULLs on SQLite and PostgreSQL alike.
    column_type = sa.String(32).with_variant(sa.String(32, collation="C"), "postgresql")
    op.add_column("users", sa.Column("account_id", column_type, nullable=True))
    op.create_index("ix_users_account_id", "users", ["account_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_users_account_id", table_name="users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("account_id")
