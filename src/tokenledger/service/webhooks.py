"""Orgs' webhooks: creating one (its secret shown once), listing, reading and deleting
them, and the state of their deliveries.

Who may is decided in ``domain`` (``authority.authorise_webhook_management``, through
``decide_webhooks`` for the commands); the secret is made from the webhook's id with the
key file's webhook key (``domain.webhooks.webhook_secret``), so it is stored nowhere and
recorded in no event. The deliverer is ``service.notify``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from tokenledger.domain.authority import authorise_webhook_management, webhook_orgs
from tokenledger.domain.decide_webhooks import find_webhook
from tokenledger.domain.events import WebhookCreated
from tokenledger.domain.model import Actor
from tokenledger.domain.webhooks import WebhookView, check_webhook_id, webhook_secret
from tokenledger.errors import ValidationError
from tokenledger.service.commands import CommandResult, preview_first
from tokenledger.service.reading import Reader, valid, valid_org
from tokenledger.service.webhook_tables import webhook_deliveries

if TYPE_CHECKING:
    from tokenledger.service.keys import KeyStore

__all__ = [
    "CreatedWebhook",
    "DeliveryView",
    "create_webhook",
    "deliveries_of",
    "get_webhook",
    "rotate_webhook_secret",
    "webhooks",
]


@dataclass(frozen=True, slots=True)
class CreatedWebhook:
    """What the caller is shown, once: the secret is made again by no one but the ledger."""

    result: CommandResult
    webhook: WebhookView
    secret: str


@dataclass(frozen=True, slots=True)
class DeliveryView:
    """One delivery to a webhook and where it stands."""

    delivery_id: str
    webhook_id: str
    event_type: str
    position: int | None
    created_at: datetime
    attempts: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None

    @property
    def state(self) -> str:
        if self.delivered_at is not None:
            return "delivered"
        return "pending" if self.attempts == 0 else "retrying"


def no_webhook_key() -> ValidationError:
    return ValidationError("this server keeps no signing keys, so no webhook secrets")


def create_webhook(
    reader: Reader,
    execute: Callable[..., CommandResult],
    keys: KeyStore | None,
    actor: Actor,
    *,
    org: str,
    url: str,
    events: tuple[str, ...],
) -> CreatedWebhook:
    """Record ``WebhookCreated`` and make its secret."""
    from tokenledger.domain import commands as c  # pydantic loads with the first command

    if keys is None:
        raise no_webhook_key()
    command = c.build(c.CreateWebhook, org=org, url=url, events=events)
    preview_first(execute, command, actor)  # a dry run derives no secret, writes no key
    # Made before the event is recorded, so that a recorded webhook always has its secret.
    key = keys.webhook_key()
    result = execute(command, actor)
    created = result.events[0]
    assert isinstance(created, WebhookCreated)
    with reader.view() as view:
        webhook = view.webhook(created.webhook_id)
    assert webhook is not None
    return CreatedWebhook(
        result=result, webhook=webhook, secret=webhook_secret(key, webhook.webhook_id)
    )


def rotate_webhook_secret(
    reader: Reader,
    execute: Callable[..., CommandResult],
    keys: KeyStore | None,
    actor: Actor,
    webhook_id: str,
) -> CreatedWebhook:
    """Record ``WebhookSecretRotated`` and make the new secret (shown once, as at creation)."""
    from tokenledger.domain import commands as c  # pydantic loads with the first command

    if keys is None:
        raise no_webhook_key()
    command = c.build(c.RotateWebhookSecret, webhook_id=webhook_id)
    preview_first(execute, command, actor)  # a dry run derives no secret, writes no key
    key = keys.webhook_key()
    result = execute(command, actor)
    with reader.view() as view:
        webhook = view.webhook(webhook_id)
    assert webhook is not None
    secret = webhook_secret(key, webhook.webhook_id, webhook.secret_generation)
    return CreatedWebhook(result=result, webhook=webhook, secret=secret)


def webhooks(reader: Reader, actor: Actor, org: str | None = None) -> list[WebhookView]:
    """The org's webhooks; without ``org``, those of every org the actor manages webhooks
    of (every org, for an operator)."""
    now = reader.now()
    with reader.view() as view:
        if org is not None:
            org = valid_org(org)
            authorise_webhook_management(view, actor, org, now)
            return list(view.webhooks_of(org))
        managed = webhook_orgs(view, actor, now)
        if managed is None:
            return view.all_webhooks()
        return [webhook for each in managed for webhook in view.webhooks_of(each)]


def get_webhook(reader: Reader, actor: Actor, webhook_id: str) -> WebhookView:
    webhook_id = valid(check_webhook_id, webhook_id)
    with reader.view() as view:
        webhook = find_webhook(view, webhook_id)
        authorise_webhook_management(view, actor, webhook.org, reader.now())
        return webhook


def deliveries_of(
    reader: Reader, actor: Actor, webhook_id: str, *, limit: int = 50
) -> list[DeliveryView]:
    """The webhook's latest deliveries, newest first."""
    get_webhook(reader, actor, webhook_id)
    if not 1 <= limit <= 1000:
        raise ValidationError("--limit takes 1 to 1000")
    table = webhook_deliveries
    query = (
        sa.select(
            table.c.delivery_id,
            table.c.webhook_id,
            table.c.event_type,
            table.c.position,
            table.c.created_at,
            table.c.attempts,
            table.c.next_attempt_at,
            table.c.delivered_at,
            table.c.last_error,
        )
        .where(table.c.webhook_id == webhook_id)
        .order_by(table.c.created_at.desc(), table.c.position.desc(), table.c.delivery_id)
        .limit(limit)
    )
    with reader.view() as view:
        return [DeliveryView(*row) for row in view.connection.execute(query)]
