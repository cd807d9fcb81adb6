"""The data plane: endpoints (data proxies), service accounts' trusted endpoints, and their
S3 credentials.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _identifier() -> sa.types.TypeEngine[str]:
    # Bytewise comparison, as the other projection tables use.
    return sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "endpoints",
        sa.Column("endpoint_id", _identifier(), primary_key=True),
        sa.Column("name", _identifier(), nullable=False),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_endpoints_name", "endpoints", ["name"])
    op.create_table(
        "trusted_endpoints",
        sa.Column("account_id", _identifier(), primary_key=True),
        sa.Column("endpoint_id", _identifier(), primary_key=True),
        sa.Column("trusted_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_trusted_endpoints_endpoint_id", "trusted_endpoints", ["endpoint_id"])
    op.create_table(
        "s3_credentials",
        sa.Column("access_key_id", _identifier(), primary_key=True),
        sa.Column("account_id", _identifier(), nullable=False),
        sa.Column("endpoint_id", _identifier(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(100), nullable=True),
    )
    op.create_index("ix_s3_credentials_account_id", "s3_credentials", ["account_id"])
    op.create_index("ix_s3_credentials_endpoint_id", "s3_credentials", ["endpoint_id"])


def downgrade() -> None:
    op.drop_table("s3_credentials")
    op.drop_table("trusted_endpoints")
    op.drop_table("endpoints")
