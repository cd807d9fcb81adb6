"""Webhooks' calls for ``RemoteLedger`` (the command line's ``--server`` mode), with the
same argument and result types as ``service.Ledger``'s."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from tokenledger.client.client import Client
from tokenledger.client.results import convert, dry_run_call, receipt_of
from tokenledger.client.urls import path_segment
from tokenledger.domain import commands as c
from tokenledger.domain.model import Actor
from tokenledger.domain.webhooks import WebhookView
from tokenledger.service.commands import CommandResult
from tokenledger.service.webhooks import CreatedWebhook, DeliveryView

__all__ = ["WebhookCalls", "webhook_route"]


def webhook_route(command: c.Command) -> tuple[str, str] | None:
    """The call a webhook command makes (creating one is ``create_webhook``), or None."""
    if isinstance(command, c.DeleteWebhook):
        return "DELETE", f"/v2/webhooks/{path_segment(command.webhook_id)}"
    return None


class _Webhook(msgspec.Struct):
    id: str
    org: str
    url: str
    events: list[str]
    created_at: datetime


class _Created(msgspec.Struct):
    webhook: _Webhook
    secret: str


class _Delivery(msgspec.Struct):
    id: str
    webhook_id: str
    type: str
    position: int | None
    state: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None


def _webhook(shown: _Webhook) -> WebhookView:
    return WebhookView(
        webhook_id=shown.id,
        org=shown.org,
        url=shown.url,
        events=tuple(shown.events),
        created_at=shown.created_at,
    )


class WebhookCalls:
    """Creating, listing and reading webhooks, and their deliveries, over HTTP."""

    client: Client

    def create_webhook(
        self,
        actor: Actor,
        keys: object,
        *,
        org: str,
        url: str,
        events: tuple[str, ...],
        correlation_id: str | None = None,
        dry_run: bool = False,
    ) -> CreatedWebhook:
        headers = {"X-Correlation-ID": correlation_id} if correlation_id is not None else None
        body: dict[str, Any] = {"org": org, "url": url, "events": list(events)}
        if dry_run:
            dry_run_call(self.client, "POST", "/v2/webhooks", json=body, headers=headers)
        return self._created(self.client.call("POST", "/v2/webhooks", json=body, headers=headers))

    @staticmethod
    def _created(answer: Any) -> CreatedWebhook:
        shown = convert(answer, _Created, "a webhook")
        receipt = receipt_of(answer)
        result = CommandResult(
            command_id=receipt.command_id or "",
            correlation_id=receipt.correlation_id,
            events=receipt.events,
            records=(),
            outcome=receipt.outcome,
        )
        return CreatedWebhook(result=result, webhook=_webhook(shown.webhook), secret=shown.secret)

    def rotate_webhook_secret(
        self,
        actor: Actor,
        keys: object,
        webhook_id: str,
        *,
        correlation_id: str | None = None,
        dry_run: bool = False,
    ) -> CreatedWebhook:
        headers = {"X-Correlation-ID": correlation_id} if correlation_id is not None else None
        path = f"/v2/webhooks/{path_segment(webhook_id)}/secret"
        if dry_run:
            dry_run_call(self.client, "POST", path, headers=headers)
        return self._created(self.client.call("POST", path, headers=headers))

    def webhooks(self, actor: Actor, org: str | None = None) -> list[WebhookView]:
        params = {"org": org} if org is not None else None
        answer = self.client.call("GET", "/v2/webhooks", params=params)
        return [_webhook(w) for w in convert(answer, list[_Webhook], "webhooks")]

    def get_webhook(self, actor: Actor, webhook_id: str) -> WebhookView:
        answer = self.client.call("GET", f"/v2/webhooks/{path_segment(webhook_id)}")
        return _webhook(convert(answer, _Webhook, "a webhook"))

    def webhook_deliveries(
        self, actor: Actor, webhook_id: str, *, limit: int = 50
    ) -> list[DeliveryView]:
        path = f"/v2/webhooks/{path_segment(webhook_id)}/deliveries"
        answer = self.client.call("GET", path, params={"limit": limit})
        return [
            DeliveryView(
                delivery_id=d.id,
                webhook_id=d.webhook_id,
                event_type=d.type,
                position=d.position,
                created_at=d.created_at,
                attempts=d.attempts,
                next_attempt_at=d.next_attempt_at,
                delivered_at=d.delivered_at,
                last_error=d.last_error,
            )
            for d in convert(answer, list[_Delivery], "deliveries")
        ]
