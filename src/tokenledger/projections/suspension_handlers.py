"""Projection handlers for suspension (disabling and enabling tokens, client credentials and
service accounts), registered on the handlers' dispatch when ``projections.handlers`` loads.

A suspension is a state, not a first-time fact: each event sets it as the event says, so
re-applying a run of them in log order leaves the last one's state, as folding it did."""

from __future__ import annotations

from tokenledger.domain.events import (
    ClientCredentialDisabled,
    ClientCredentialEnabled,
    ServiceAccountDisabled,
    ServiceAccountEnabled,
    TokenDisabled,
    TokenEnabled,
)
from tokenledger.projections.handlers import _handle
from tokenledger.projections.schema import client_credentials, service_accounts, tokens
from tokenledger.projections.writes import Writes
from tokenledger.store.records import RecordedEvent

__all__: list[str] = []


@_handle.register
def _token_disabled(event: TokenDisabled, writes: Writes, record: RecordedEvent) -> None:
    writes.update(
        tokens,
        {"token_id": event.token_id},
        {
            "disabled_at": record.recorded_at,
            "disabled_by": event.disabled_by,
            "disabled_cause": event.cause,
        },
    )


@_handle.register
def _token_enabled(event: TokenEnabled, writes: Writes, record: RecordedEvent) -> None:
    writes.update(
        tokens,
        {"token_id": event.token_id},
        {"disabled_at": None, "disabled_by": None, "disabled_cause": None},
    )


@_handle.register(ServiceAccountDisabled)
@_handle.register(ServiceAccountEnabled)
def _service_account_suspension(
    event: ServiceAccountDisabled | ServiceAccountEnabled, writes: Writes, record: RecordedEvent
) -> None:
    writes.update(service_accounts, {"account_id": event.account_id}, _suspension(event, record))


@_handle.register(ClientCredentialDisabled)
@_handle.register(ClientCredentialEnabled)
def _client_credential_suspension(
    event: ClientCredentialDisabled | ClientCredentialEnabled,
    writes: Writes,
    record: RecordedEvent,
) -> None:
    writes.update(client_credentials, {"client_id": event.client_id}, _suspension(event, record))


def _suspension(
    event: ServiceAccountDisabled
    | ServiceAccountEnabled
    | ClientCredentialDisabled
    | ClientCredentialEnabled,
    record: RecordedEvent,
) -> dict[str, object]:
    if isinstance(event, ServiceAccountDisabled | ClientCredentialDisabled):
        return {"disabled_at": record.recorded_at, "disabled_by": event.disabled_by}
    return {"disabled_at": None, "disabled_by": None}
