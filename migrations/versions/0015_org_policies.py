"""Orgs' token policies, and rotations (which token or client credential succeeded which).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _identifier() -> sa.types.TypeEngine[str]:
    # Bytewise comparison, as the other projection tables use.
    return sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql")


def upgrade() -> None:
    # One row per org with a policy; lifetimes in seconds (a hundred years passes 2**31).
    op.create_table(
        "org_policies",
        sa.Column("org", _identifier(), primary_key=True),
        sa.Column("max_lifetime", sa.Text(), nullable=False),
        sa.Column("require_expiry", sa.Boolean(), nullable=False),
        sa.Column("max_admin_lifetime", sa.BigInteger(), nullable=True),
        sa.Column("max_live_tokens", sa.Integer(), nullable=True),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
    )
    # One row per rotated token or client credential (their ids never collide: tok_, cid_).
    op.create_table(
        "rotations",
        sa.Column("rotated_id", _identifier(), primary_key=True),
        sa.Column("successor_id", _identifier(), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_rotations_successor_id", "rotations", ["successor_id"])


def downgrade() -> None:
    op.drop_table("rotations")
    op.drop_table("org_policies")
