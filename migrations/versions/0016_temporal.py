"""The temporal projection: who held which grant, membership, role, permission and token,
from which position to which.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _identifier() -> sa.types.TypeEngine[str]:
    # Bytewise comparison, as the other projection tables use.
    return sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql")


def _interval() -> list[sa.Column[object]]:
    # [from_position, to_position): to_position NULL while the fact still holds.
    return [
        sa.Column("from_position", sa.BigInteger(), primary_key=True),
        sa.Column("to_position", sa.BigInteger(), nullable=True),
        sa.Column("from_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("to_time", sa.DateTime(timezone=True), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "held_grants",
        sa.Column("principal", _identifier(), primary_key=True),
        sa.Column("resource", _identifier(), primary_key=True),
        sa.Column("level", sa.String(20), nullable=False),
        *_interval(),
    )
    op.create_index("ix_held_grants_resource", "held_grants", ["resource", "from_position"])
    op.create_table(
        "held_memberships",
        sa.Column("org", _identifier(), primary_key=True),
        sa.Column("email", _identifier(), primary_key=True),
        sa.Column("role", _identifier(), nullable=False),
        *_interval(),
    )
    op.create_index("ix_held_memberships_email", "held_memberships", ["email", "from_position"])
    op.create_table(
        "held_roles",
        sa.Column("org", _identifier(), primary_key=True),
        sa.Column("role", _identifier(), primary_key=True),
        sa.Column("grants", sa.Text(), nullable=False),
        *_interval(),
    )
    op.create_table("held_users", sa.Column("email", _identifier(), primary_key=True), *_interval())
    op.create_table(
        "held_permissions",
        sa.Column("account_id", _identifier(), primary_key=True),
        sa.Column("resource", _identifier(), nullable=False),
        sa.Column("level", sa.String(20), nullable=False),
        *_interval(),
    )
    op.create_index("ix_held_permissions_resource", "held_permissions", ["resource"])
    op.create_table(
        "account_suspensions",
        sa.Column("account_id", _identifier(), primary_key=True),
        sa.Column("disabled_by", sa.String(320), nullable=False),
        *_interval(),
    )
    op.create_table(
        "token_lives",
        sa.Column("token_id", _identifier(), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(100), nullable=True),
        *_interval(),
    )
    op.create_table(
        "token_expiries",
        sa.Column("token_id", _identifier(), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        *_interval(),
    )
    op.create_table(
        "token_suspensions",
        sa.Column("token_id", _identifier(), primary_key=True),
        sa.Column("disabled_by", sa.String(320), nullable=False),
        sa.Column("disabled_cause", _identifier(), nullable=True),
        *_interval(),
    )
    op.create_table(
        "token_uses",
        sa.Column("token_id", _identifier(), primary_key=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False),
        *_interval(),
    )
    _fold_the_log()


def _fold_the_log() -> None:
    """Fold the log as it stands into the new tables, page by page, as a rebuild would, so
    that questions about the past are answered from the first command on (``replay`` would
    write the same rows)."""
    from tokenledger.projections.schema import checkpoints
    from tokenledger.projections.temporal_handlers import TEMPORAL_PROJECTION, TemporalProjection
    from tokenledger.projections.writes import BufferedWrites
    from tokenledger.store.mapper import decode_event
    from tokenledger.store.records import RecordedEvent
    from tokenledger.store.schema import events

    connection = op.get_bind()
    projection = TemporalProjection()
    # The envelope as this revision has it: ``via`` (the last field) comes with 0017.
    columns = [events.c[name] for name in RecordedEvent.__struct_fields__ if name != "via"]
    position = 0
    while True:
        rows = connection.execute(
            sa.select(*columns)
            .where(events.c.position > position)
            .order_by(events.c.position)
            .limit(10_000)
        ).all()
        if not rows:
            break
        writes = BufferedWrites(connection)
        for row in rows:
            record = RecordedEvent(*row)
            projection.apply(writes, record, decode_event(record))
        writes.flush()
        position = rows[-1].position
    if position:
        connection.execute(checkpoints.insert().values(name=TEMPORAL_PROJECTION, position=position))


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM projection_checkpoints WHERE name = 'temporal'"))
    for table in (
        "token_uses",
        "token_suspensions",
        "token_expiries",
        "token_lives",
        "account_suspensions",
        "held_permissions",
        "held_users",
        "held_roles",
        "held_memberships",
        "held_grants",
    ):
        op.drop_table(table)
