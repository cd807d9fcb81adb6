"""The deliverer's own tables: the outbox of webhook deliveries and how far it has read the
log. Operational state, not a projection: it is made by the deliverer (sends, attempts),
not by events alone, so it lives on its own ``MetaData`` and no rebuild touches it. The
Alembic revision ``0014`` creates it (written out by hand there, as every revision is).

No secret is kept here: a delivery's body is the CloudEvent sent, its signature is made
again at each attempt from the webhook's secret, which is derived, never stored.
"""

from __future__ import annotations

import sqlalchemy as sa

from tokenledger.store.schema import UTCDateTime

__all__ = ["outbox_metadata", "webhook_checkpoints", "webhook_deliveries"]

outbox_metadata = sa.MetaData()

#: One row per (webhook, event) or (webhook, token, expiry warning). ``delivery_id`` is
#: the ``webhook-id`` header, made from what the row delivers, so enqueuing it again is a
#: no-op and every attempt carries the same id.
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    outbox_metadata,
    sa.Column("delivery_id", sa.String(40), primary_key=True),
    sa.Column("webhook_id", sa.String(40), nullable=False),
    sa.Column("event_type", sa.String(50), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=True),
    sa.Column("delivered_at", UTCDateTime, nullable=True),
    sa.Column("last_error", sa.String(300), nullable=True),
)
sa.Index("ix_webhook_deliveries_due", webhook_deliveries.c.next_attempt_at)
sa.Index(
    "ix_webhook_deliveries_webhook",
    webhook_deliveries.c.webhook_id,
    webhook_deliveries.c.created_at,
)

#: The last log position whose deliveries are in the outbox (one row, ``name`` "webhooks").
webhook_checkpoints = sa.Table(
    "webhook_checkpoints",
    outbox_metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)
