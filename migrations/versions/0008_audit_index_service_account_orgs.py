"""A service account's events are indexed under its org too.

An event naming a service account (its tokens issued and revoked, its client
credentials) concerns the account's org, which the account's id names
(``ci@acme.service.tokenledger``: ``acme``), so that the org's admins and
auditors find the org's cascades with ``audit --subject acme``. New events are
indexed so as they are folded; this adds the org rows of the events already in
the log, exactly those a rebuild from the log would write.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql, sqlite

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SUFFIX = ".service.tokenledger"
_BATCH = 10_000

_audit_index = sa.table(
    "audit_index",
    sa.column("subject", sa.String),
    sa.column("position", sa.BigInteger),
    sa.column("event_type", sa.String),
    sa.column("actor", sa.String),
    sa.column("correlation_id", sa.String),
)


def upgrade() -> None:
    bind = op.get_bind()
    insert = (postgresql.insert if bind.dialect.name == "postgresql" else sqlite.insert)(
        _audit_index
    ).on_conflict_do_nothing()
    index = _audit_index.c
    after: tuple[str, int] = ("", 0)
    while True:
        # Walked in key order, a batch at a time: constant memory on any size of log.
        rows = bind.execute(
            sa.select(
                index.subject, index.position, index.event_type, index.actor, index.correlation_id
            )
            .where(index.subject.like(f"%@%{_SUFFIX}"))
            .where(sa.tuple_(index.subject, index.position) > sa.tuple_(*after))
            .order_by(index.subject, index.position)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        bind.execute(
            insert,
            [
                {
                    "subject": row.subject.rpartition("@")[2].removesuffix(_SUFFIX),
                    "position": row.position,
                    "event_type": row.event_type,
                    "actor": row.actor,
                    "correlation_id": row.correlation_id,
                }
                for row in rows
            ],
        )
        after = (rows[-1].subject, rows[-1].position)


def downgrade() -> None:
    # The org rows cannot be told from those an event names directly (an org's own events):
    # they stay, harmless to the previous code's queries.
    pass
