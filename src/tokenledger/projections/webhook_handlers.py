"""Projection handlers for webhooks, registered on the handlers' dispatch when
``projections.handlers`` loads."""

from __future__ import annotations

import msgspec

from tokenledger.domain.events import WebhookCreated, WebhookDeleted, WebhookSecretRotated
from tokenledger.projections.handlers import _handle
from tokenledger.projections.schema import webhooks
from tokenledger.projections.writes import Writes
from tokenledger.store.records import RecordedEvent

__all__: list[str] = []


@_handle.register
def _webhook_created(event: WebhookCreated, writes: Writes, record: RecordedEvent) -> None:
    row = {
        "webhook_id": event.webhook_id,
        "org": event.org,
        "url": event.url,
        "events": msgspec.json.encode(event.events).decode(),
        "created_at": record.recorded_at,
        "created_position": record.position,
        "deleted_at": None,
        "secret_generation": 0,
        "rotated_at": None,
    }
    writes.insert_if_absent(webhooks, [row])


@_handle.register
def _webhook_secret_rotated(
    event: WebhookSecretRotated, writes: Writes, record: RecordedEvent
) -> None:
    writes.update(
        webhooks,
        {"webhook_id": event.webhook_id},
        {"secret_generation": event.generation, "rotated_at": record.recorded_at},
    )


@_handle.register
def _webhook_deleted(event: WebhookDeleted, writes: Writes, record: RecordedEvent) -> None:
    writes.update(
        webhooks,
        {"webhook_id": event.webhook_id},
        {"deleted_at": record.recorded_at},
        only_if_null=("deleted_at",),
    )
