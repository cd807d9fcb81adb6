"""Keep a token's life (the positions of its issue and first revocation, its expiry as
issued) on its ``tokens`` row instead of in the ``token_lives`` table of intervals.

A rebuild writes a row per token issue; keeping the life on the token's own row makes that
one row instead of two. The new columns are filled from the log's ``TokenIssued`` and
``TokenRevoked`` events (the first revocation counts, as the projection's handler has it),
then ``token_lives`` goes.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PAGE = 10_000


def _identifier() -> sa.types.TypeEngine[str]:
    return sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql")


def upgrade() -> None:
    op.add_column("tokens", sa.Column("issued_position", sa.BigInteger, nullable=True))
    op.add_column("tokens", sa.Column("revoked_position", sa.BigInteger, nullable=True))
    op.add_column(
        "tokens", sa.Column("issued_expires_at", sa.DateTime(timezone=True), nullable=True)
    )
    _fill_from_the_log()
    # Every row now has its issue's position (a token row exists only from its issue on).
    with op.batch_alter_table("tokens") as batch:
        batch.alter_column("issued_position", existing_type=sa.BigInteger, nullable=False)
    op.drop_table("token_lives")


def _fill_from_the_log() -> None:
    from tokenledger.domain.events import TokenIssued, TokenRevoked
    from tokenledger.store.mapper import decode_event
    from tokenledger.store.records import RecordedEvent
    from tokenledger.store.schema import UTCDateTime, events

    connection = op.get_bind()
    # The envelope without ``via`` (optional, last): enough to decode, whatever columns later
    # revisions add.
    names = [name for name in RecordedEvent.__struct_fields__ if name != "via"]
    columns = [events.c[name] for name in names]
    tokens = sa.table(
        "tokens",
        sa.column("token_id"),
        sa.column("issued_position"),
        sa.column("revoked_position"),
        sa.column("issued_expires_at"),
    )
    issued = (
        tokens.update()
        .where(tokens.c.token_id == sa.bindparam("id"))
        .values(
            issued_position=sa.bindparam("position"),
            # Stored as the projection stores every time (``UTCDateTime``).
            issued_expires_at=sa.bindparam("expires_at", type_=UTCDateTime()),
        )
    )
    revoked = (
        tokens.update()
        .where(tokens.c.token_id == sa.bindparam("id"), tokens.c.revoked_position.is_(None))
        .values(revoked_position=sa.bindparam("position"))
    )
    position = 0
    while True:
        rows = connection.execute(
            sa.select(*columns)
            .where(
                events.c.position > position,
                events.c.event_type.in_(("TokenIssued", "TokenRevoked")),
            )
            .order_by(events.c.position)
            .limit(_PAGE)
        ).all()
        if not rows:
            break
        issues, revocations = [], []
        for row in rows:
            record = RecordedEvent(*row)
            event = decode_event(record)
            if isinstance(event, TokenIssued):
                issues.append(
                    {
                        "id": event.token_id,
                        "position": record.position,
                        "expires_at": event.expires_at,
                    }
                )
            elif isinstance(event, TokenRevoked):
                revocations.append({"id": event.token_id, "position": record.position})
        if issues:
            connection.execute(issued, issues)
        if revocations:
            connection.execute(revoked, revocations)
        position = rows[-1].position


def downgrade() -> None:
    op.create_table(
        "token_lives",
        sa.Column("token_id", _identifier(), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(100), nullable=True),
        sa.Column("from_position", sa.BigInteger, primary_key=True),
        sa.Column("to_position", sa.BigInteger, nullable=True),
        sa.Column("from_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("to_time", sa.DateTime(timezone=True), nullable=True),
    )
    op.execute(
        "INSERT INTO token_lives (token_id, expires_at, revoked_reason, from_position,"
        " to_position, from_time, to_time)"
        " SELECT t.token_id, t.issued_expires_at, t.revoked_reason, t.issued_position,"
        " t.revoked_position, e.recorded_at, t.revoked_at"
        " FROM tokens t JOIN events e ON e.position = t.issued_position"
    )
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("issued_expires_at")
        batch.drop_column("revoked_position")
        batch.drop_column("issued_position")
