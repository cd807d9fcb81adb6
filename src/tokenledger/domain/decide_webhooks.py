"""Decisions on an org's webhooks: creating and deleting them.

Registered on ``decide`` (``domain.decide`` imports this module). Who may is
``authority.authorise_webhook_management``: a person with admin on the org, or an operator.
The URL and the event types are checked when the command is built (``domain.webhooks``).
"""

from __future__ import annotations

from tokenledger.domain import commands as c
from tokenledger.domain.authority import authorise_webhook_management, require_remote_receiver
from tokenledger.domain.decide import Context, decide
from tokenledger.domain.events import (
    Event,
    WebhookCreated,
    WebhookDeleted,
    WebhookSecretRotated,
)
from tokenledger.domain.model import LedgerView
from tokenledger.domain.webhooks import WebhookView, webhook_id_for
from tokenledger.errors import NotFound

__all__ = ["find_webhook"]


@decide.register
def _create_webhook(cmd: c.CreateWebhook, view: LedgerView, ctx: Context) -> list[Event]:
    authorise_webhook_management(view, ctx.actor, cmd.org, ctx.now)
    require_remote_receiver(ctx.actor, cmd.url)
    if not view.org_exists(cmd.org):
        raise NotFound(f"no org {cmd.org}")
    attempt = 0
    while view.webhook(webhook_id_for(cmd.org, cmd.url, ctx.now, attempt)) is not None:
        attempt += 1
    webhook_id = webhook_id_for(cmd.org, cmd.url, ctx.now, attempt)
    return [WebhookCreated(webhook_id=webhook_id, org=cmd.org, url=cmd.url, events=cmd.events)]


@decide.register
def _delete_webhook(cmd: c.DeleteWebhook, view: LedgerView, ctx: Context) -> list[Event]:
    webhook = find_webhook(view, cmd.webhook_id)
    authorise_webhook_management(view, ctx.actor, webhook.org, ctx.now)
    return [WebhookDeleted(webhook_id=webhook.webhook_id, org=webhook.org)]


@decide.register
def _rotate_webhook_secret(
    cmd: c.RotateWebhookSecret, view: LedgerView, ctx: Context
) -> list[Event]:
    webhook = find_webhook(view, cmd.webhook_id)
    authorise_webhook_management(view, ctx.actor, webhook.org, ctx.now)
    return [
        WebhookSecretRotated(
            webhook_id=webhook.webhook_id,
            org=webhook.org,
            generation=webhook.secret_generation + 1,
        )
    ]


def find_webhook(view: LedgerView, webhook_id: str) -> WebhookView:
    """The webhook (not deleted) with this id; ``NotFound`` otherwise."""
    found = view.webhook(webhook_id)
    if found is None or found.deleted:
        raise NotFound(f"no webhook {webhook_id}")
    return found
