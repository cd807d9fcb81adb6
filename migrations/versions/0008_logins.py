"""Logging in: orgs' identity providers, sessions and their refresh tokens, and service
accounts' trust in external issuers.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _identifier() -> sa.types.TypeEngine[str]:
    # Bytewise comparison, as the other projection tables use.
    return sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "identity_providers",
        sa.Column("org", _identifier(), primary_key=True),
        sa.Column("issuer", sa.String(500), nullable=False),
        sa.Column("oidc_client_id", sa.String(200), nullable=False),
        sa.Column("client_secret", sa.Boolean, nullable=False),
        sa.Column("session_lifetime", sa.Integer, nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "sessions",
        sa.Column("session_id", _identifier(), primary_key=True),
        sa.Column("principal", _identifier(), nullable=False),
        sa.Column("org", _identifier(), nullable=False),
        sa.Column("issuer", sa.String(500), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("refresh_hash", sa.String(64), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(100), nullable=True),
    )
    op.create_index("ix_sessions_principal", "sessions", ["principal"])
    op.create_index("ix_sessions_org", "sessions", ["org"])
    op.create_table(
        "session_refresh_tokens",
        sa.Column("refresh_hash", sa.String(64), primary_key=True),
        sa.Column("session_id", _identifier(), nullable=False),
    )
    op.create_table(
        "issuer_trusts",
        sa.Column("trust_id", _identifier(), primary_key=True),
        sa.Column("account_id", _identifier(), nullable=False),
        sa.Column("issuer", sa.String(500), nullable=False),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("audience", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(100), nullable=True),
    )
    op.create_index("ix_issuer_trusts_account_id", "issuer_trusts", ["account_id"])


def downgrade() -> None:
    op.drop_table("issuer_trusts")
    op.drop_table("session_refresh_tokens")
    op.drop_table("sessions")
    op.drop_table("identity_providers")
