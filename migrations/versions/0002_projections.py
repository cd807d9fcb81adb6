"""The inline projection tables and their checkpoints.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Identifier columns are ``COLLATE "C"`` on PostgreSQL (bytewise, like SQLite's
default), so that "on a path or below it" can be an index range scan and
listings sort the same on both backends; see ``tokenledger.projections.schema``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def identifier() -> sa.types.TypeEngine[str]:
    return sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql")


def timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "orgs",
        sa.Column("org", identifier(), primary_key=True),
        sa.Column("created_at", timestamp(), nullable=False),
    )
    op.create_table(
        "users",
        sa.Column("email", identifier(), primary_key=True),
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("disabled_at", timestamp(), nullable=True),
        sa.Column("created_at", timestamp(), nullable=False),
    )
    op.create_table(
        "memberships",
        sa.Column("org", identifier(), primary_key=True),
        sa.Column("email", identifier(), primary_key=True),
        sa.Column("role", identifier(), nullable=False),
    )
    op.create_index("ix_memberships_email", "memberships", ["email"])
    op.create_table(
        "resources",
        sa.Column("path", identifier(), primary_key=True),
        sa.Column("org", identifier(), nullable=False),
        sa.Column("parent", identifier(), nullable=True),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("depth", sa.Integer, nullable=False),
        sa.Column("created_at", timestamp(), nullable=False),
    )
    op.create_index("ix_resources_parent", "resources", ["parent"])
    op.create_index("ix_resources_org", "resources", ["org"])
    op.create_table(
        "roles",
        sa.Column("org", identifier(), primary_key=True),
        sa.Column("role", identifier(), primary_key=True),
        sa.Column("grants", sa.Text, nullable=False),
    )
    op.create_table(
        "user_grants",
        sa.Column("email", identifier(), primary_key=True),
        sa.Column("resource", identifier(), primary_key=True),
        sa.Column("level", sa.String(20), nullable=False),
    )
    op.create_index("ix_user_grants_resource", "user_grants", ["resource"])
    op.create_table(
        "service_accounts",
        sa.Column("account_id", identifier(), primary_key=True),
        sa.Column("org", identifier(), nullable=False),
        sa.Column("name", identifier(), nullable=False),
        sa.Column("resource", identifier(), nullable=False),
        sa.Column("level", sa.String(20), nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("created_at", timestamp(), nullable=False),
    )
    op.create_index("ix_service_accounts_resource", "service_accounts", ["resource"])
    op.create_index("ix_service_accounts_org", "service_accounts", ["org"])
    op.create_table(
        "tokens",
        sa.Column("token_id", identifier(), primary_key=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("principal", identifier(), nullable=False),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("grants", sa.Text, nullable=False),
        sa.Column("issued_at", timestamp(), nullable=False),
        sa.Column("expires_at", timestamp(), nullable=True),
        sa.Column("parent_id", identifier(), nullable=True),
        sa.Column("revoked_at", timestamp(), nullable=True),
        sa.Column("revoked_reason", sa.String(100), nullable=True),
        sa.UniqueConstraint("secret_hash", name="uq_tokens_secret_hash"),
    )
    op.create_index("ix_tokens_principal", "tokens", ["principal"])
    op.create_index("ix_tokens_parent_id", "tokens", ["parent_id"])
    op.create_table(
        "token_grants",
        sa.Column("token_id", identifier(), primary_key=True),
        sa.Column("resource", identifier(), primary_key=True),
        sa.Column("level", sa.String(20), primary_key=True),
    )
    op.create_index("ix_token_grants_resource", "token_grants", ["resource"])
    op.create_table(
        "projection_checkpoints",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "projection_checkpoints",
        "token_grants",
        "tokens",
        "service_accounts",
        "user_grants",
        "roles",
        "resources",
        "memberships",
        "users",
        "orgs",
    ):
        op.drop_table(table)
