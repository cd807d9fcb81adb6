"""The ``LedgerView`` questions about webhooks, over their projection table;
``SqlLedgerView`` answers them through this mixin. Also the reads the deliverer makes of
the same table and of tokens near their expiry."""

from __future__ import annotations

from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tokenledger.domain.webhooks import WebhookView
from tokenledger.projections.schema import webhooks

__all__ = ["LiveWebhook", "WebhookViews", "live_webhooks"]

_events_decoder = msgspec.json.Decoder(tuple[str, ...])


def _webhook(row: Any) -> WebhookView:
    return WebhookView(
        webhook_id=row.webhook_id,
        org=row.org,
        url=row.url,
        events=_events_decoder.decode(row.events),
        created_at=row.created_at,
        deleted_at=row.deleted_at,
        secret_generation=row.secret_generation,
        rotated_at=row.rotated_at,
    )


class WebhookViews:
    connection: Connection

    def webhook(self, webhook_id: str) -> WebhookView | None:
        query = sa.select(webhooks).where(webhooks.c.webhook_id == webhook_id)
        row = self.connection.execute(query).first()
        return None if row is None else _webhook(row)

    def webhooks_of(self, org: str) -> list[WebhookView]:
        query = (
            sa.select(webhooks)
            .where(webhooks.c.org == org, webhooks.c.deleted_at.is_(None))
            .order_by(webhooks.c.webhook_id)
        )
        return [_webhook(row) for row in self.connection.execute(query)]

    def all_webhooks(self) -> list[WebhookView]:
        """Every webhook not deleted, by org and id (the operator's listing)."""
        query = (
            sa.select(webhooks)
            .where(webhooks.c.deleted_at.is_(None))
            .order_by(webhooks.c.org, webhooks.c.webhook_id)
        )
        return [_webhook(row) for row in self.connection.execute(query)]


class LiveWebhook(msgspec.Struct, frozen=True, kw_only=True):
    """A webhook not deleted, and the log position it was created at."""

    webhook: WebhookView
    created_position: int


def live_webhooks(connection: Connection) -> list[LiveWebhook]:
    query = (
        sa.select(webhooks).where(webhooks.c.deleted_at.is_(None)).order_by(webhooks.c.webhook_id)
    )
    return [
        LiveWebhook(webhook=_webhook(row), created_position=row.created_position)
        for row in connection.execute(query)
    ]
