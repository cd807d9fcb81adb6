"""An org's webhooks over HTTP (``/v2/webhooks``): create one (its secret in the answer,
once), list, read and delete them, and list a webhook's deliveries. Who may is decided in
``domain`` (admins of the org, and the operator on the command line); the deliverer is
``tokenledger notify``."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from tokenledger.api.deps import ERRORS, Correlation, State, command_fields, command_out, run
from tokenledger.api.dry_run import dry_run_requested
from tokenledger.api.schemas import CommandOut
from tokenledger.api.security import CurrentActor
from tokenledger.domain import commands as c
from tokenledger.domain.webhooks import WebhookView
from tokenledger.service.webhooks import DeliveryView

__all__ = ["router"]

router = APIRouter(prefix="/v2", tags=["webhooks"], responses=ERRORS)

_WEBHOOK = Path(max_length=40, description="The webhook's id (wh_...).")


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    org: str = Field(max_length=100)
    url: str = Field(max_length=600, description="Where deliveries are POSTed (http or https).")
    events: list[str] = Field(
        max_length=50, description="Event types, e.g. token.revoked, token.expiring."
    )


class WebhookOut(BaseModel):
    id: str
    org: str
    url: str
    events: list[str]
    created_at: datetime


class CreatedWebhookOut(CommandOut):
    """The webhook, its secret, and the command's receipt (``events``: what it appended)."""

    webhook: WebhookOut
    secret: str = Field(description="The signing secret (whsec_...), shown this once.")


class DeliveryOut(BaseModel):
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


def _webhook_out(webhook: WebhookView) -> WebhookOut:
    return WebhookOut(
        id=webhook.webhook_id,
        org=webhook.org,
        url=webhook.url,
        events=list(webhook.events),
        created_at=webhook.created_at,
    )


def _delivery_out(delivery: DeliveryView) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.delivery_id,
        webhook_id=delivery.webhook_id,
        type=delivery.event_type,
        position=delivery.position,
        state=delivery.state,
        attempts=delivery.attempts,
        created_at=delivery.created_at,
        next_attempt_at=delivery.next_attempt_at,
        delivered_at=delivery.delivered_at,
        last_error=delivery.last_error,
    )


@router.post("/webhooks", status_code=201, response_model=CreatedWebhookOut)
def create_webhook(
    body: WebhookIn,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
) -> CreatedWebhookOut:
    """A webhook delivering the org's events of the given types; its secret is in this
    answer only."""
    created = state.ledger.create_webhook(
        actor,
        state.settings.keys,
        org=body.org,
        url=body.url,
        events=tuple(body.events),
        correlation_id=correlation,
        dry_run=dry_run_requested(),
    )
    response.headers["X-Correlation-ID"] = created.result.correlation_id
    response.headers["Cache-Control"] = "no-store"
    return CreatedWebhookOut(
        webhook=_webhook_out(created.webhook),
        secret=created.secret,
        **command_fields(created.result),
    )


@router.get("/webhooks", response_model=list[WebhookOut])
def list_webhooks(
    actor: CurrentActor,
    state: State,
    org: str | None = Query(None, max_length=100),
) -> list[WebhookOut]:
    """The org's webhooks, or those of every org the caller administers."""
    return [_webhook_out(webhook) for webhook in state.ledger.webhooks(actor, org)]


@router.get("/webhooks/{webhook_id}", response_model=WebhookOut)
def get_webhook(actor: CurrentActor, state: State, webhook_id: str = _WEBHOOK) -> WebhookOut:
    return _webhook_out(state.ledger.get_webhook(actor, webhook_id))


@router.delete("/webhooks/{webhook_id}", response_model=CommandOut)
def delete_webhook(
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
    webhook_id: str = _WEBHOOK,
) -> CommandOut:
    """Delete the webhook: nothing more is sent to it, pending deliveries included."""
    command = c.build(c.DeleteWebhook, webhook_id=webhook_id)
    return command_out(run(state, command, actor, correlation, response))


@router.post("/webhooks/{webhook_id}/secret", response_model=CreatedWebhookOut)
def rotate_secret(
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
    webhook_id: str = _WEBHOOK,
) -> CreatedWebhookOut:
    """A new signing secret, in this answer only; the previous one also signs deliveries
    for a day."""
    rotated = state.ledger.rotate_webhook_secret(
        actor,
        state.settings.keys,
        webhook_id,
        correlation_id=correlation,
        dry_run=dry_run_requested(),
    )
    response.headers["X-Correlation-ID"] = rotated.result.correlation_id
    response.headers["Cache-Control"] = "no-store"
    return CreatedWebhookOut(
        webhook=_webhook_out(rotated.webhook),
        secret=rotated.secret,
        **command_fields(rotated.result),
    )


@router.get("/webhooks/{webhook_id}/deliveries", response_model=list[DeliveryOut])
def list_deliveries(
    actor: CurrentActor,
    state: State,
    webhook_id: str = _WEBHOOK,
    limit: int = Query(50, ge=1, le=1000),
) -> list[DeliveryOut]:
    """The webhook's latest deliveries, newest first, and where each stands."""
    found = state.ledger.webhook_deliveries(actor, webhook_id, limit=limit)
    return [_delivery_out(delivery) for delivery in found]
