"""Keep the log as an RFC 9162 Merkle tree: the ``merkle_nodes`` table of stored strata.

Every complete aligned subtree at levels 4, 8, 12 ... (16, 256, 4096 ... events) has its
hash stored; the rest of the tree is folded from those and from the events when a proof
asks (``tokenledger.store.logtree``). The table is filled from the existing log, a page of
events at a time.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PAGE = 10_000


def upgrade() -> None:
    op.create_table(
        "merkle_nodes",
        sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("index", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
    )
    _fill_from_the_log()


def _fill_from_the_log() -> None:
    from tokenledger.logproof import leaf_hash
    from tokenledger.store.logtree import TreeBuilder, entry_bytes, merkle_nodes
    from tokenledger.store.records import RecordedEvent
    from tokenledger.store.schema import events

    connection = op.get_bind()
    # The columns this revision knows, in RecordedEvent's order (``via`` is the last): named
    # here, so that a column a later revision adds is not asked of this one's table.
    names = (
        "position", "stream_id", "stream_version", "event_id", "event_type", "schema_version",
        "data", "recorded_at", "actor", "command_id", "correlation_id", "prev_hash", "hash",
        "via",
    )  # fmt: skip
    columns = [events.c[name] for name in names]
    builder = TreeBuilder()
    position = 0
    while True:
        rows = connection.execute(
            sa.select(*columns)
            .where(events.c.position > position)
            .order_by(events.c.position)
            .limit(_PAGE)
        ).all()
        if not rows:
            break
        nodes = builder.extend(leaf_hash(entry_bytes(RecordedEvent(*row))) for row in rows)
        if nodes:
            connection.execute(
                merkle_nodes.insert(),
                [{"level": lv, "index": ix, "hash": h} for lv, ix, h in nodes],
            )
        position = rows[-1].position


def downgrade() -> None:
    op.drop_table("merkle_nodes")
