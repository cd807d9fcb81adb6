"""The audit index: one row per (event, subject) for fast audit queries.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _identifier() -> sa.types.TypeEngine[str]:
    # Bytewise comparison, as the other projection tables use.
    return sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql")


def upgrade() -> None:
    position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "audit_index",
        sa.Column("subject", _identifier(), nullable=False),
        sa.Column("position", position, nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("actor", sa.String(320), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("correlation_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("subject", "position", name="pk_audit_index"),
    )
    op.create_index("ix_audit_index_position", "audit_index", ["position"])
    op.create_index("ix_audit_index_actor", "audit_index", ["actor", "position"])
    op.create_index("ix_audit_index_type", "audit_index", ["event_type", "position"])
    op.create_index("ix_audit_index_recorded_at", "audit_index", ["recorded_at"])


def downgrade() -> None:
    op.drop_table("audit_index")
