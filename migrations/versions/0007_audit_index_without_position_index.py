"""The audit index keeps no index on the position alone.

Every audit query filters on a subject, an actor or an event type and reads
positions off that filter's (filter, position) key; none reads the audit index
by position alone. The index only cost every audit row (2 to 3 per event) one
more B-tree to write, and every rebuild one more sort.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_audit_index_position", table_name="audit_index")


def downgrade() -> None:
    op.create_index("ix_audit_index_position", "audit_index", ["position"])
