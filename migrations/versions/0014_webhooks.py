"""Webhooks: the projection of orgs' webhooks, and the deliverer's outbox and checkpoint.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _identifier() -> sa.types.TypeEngine[str]:
    # Bytewise comparison, as the other projection tables use.
    return sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("webhook_id", _identifier(), primary_key=True),
        sa.Column("org", _identifier(), nullable=False),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("events", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_position", sa.BigInteger, nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("secret_generation", sa.Integer, nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_webhooks_org", "webhooks", ["org"])
    # The deliverer's state: not a projection (no rebuild touches it).
    op.create_table(
        "webhook_deliveries",
        sa.Column("delivery_id", sa.String(40), primary_key=True),
        sa.Column("webhook_id", sa.String(40), nullable=False),
        sa.Column("event_type", sa.String(50), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(300), nullable=True),
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["next_attempt_at"])
    op.create_index(
        "ix_webhook_deliveries_webhook", "webhook_deliveries", ["webhook_id", "created_at"]
    )
    op.create_table(
        "webhook_checkpoints",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("webhook_checkpoints")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
