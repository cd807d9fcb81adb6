"""Projection handlers for the data plane's events (endpoints, trusted endpoints, S3
credentials), registered on the handlers' dispatch when ``projections.handlers`` loads."""

from __future__ import annotations

from tokenledger.domain.events import (
    EndpointCreated,
    EndpointDeleted,
    EndpointTrusted,
    EndpointUntrusted,
    S3CredentialIssued,
    S3CredentialRevoked,
)
from tokenledger.projections.handlers import _handle
from tokenledger.projections.schema import endpoints, s3_credentials, trusted_endpoints
from tokenledger.projections.writes import Writes
from tokenledger.store.records import RecordedEvent

__all__: list[str] = []


@_handle.register
def _endpoint_created(event: EndpointCreated, writes: Writes, record: RecordedEvent) -> None:
    row = {
        "endpoint_id": event.endpoint_id,
        "name": event.name,
        "url": event.url,
        "created_at": record.recorded_at,
        "deleted_at": None,
    }
    writes.insert_if_absent(endpoints, [row])


@_handle.register
def _endpoint_deleted(event: EndpointDeleted, writes: Writes, record: RecordedEvent) -> None:
    writes.update(
        endpoints,
        {"endpoint_id": event.endpoint_id},
        {"deleted_at": record.recorded_at},
        only_if_null=("deleted_at",),
    )


@_handle.register
def _endpoint_trusted(event: EndpointTrusted, writes: Writes, record: RecordedEvent) -> None:
    row = {
        "account_id": event.account_id,
        "endpoint_id": event.endpoint_id,
        "trusted_at": record.recorded_at,
    }
    writes.insert_if_absent(trusted_endpoints, [row])


@_handle.register
def _endpoint_untrusted(event: EndpointUntrusted, writes: Writes, record: RecordedEvent) -> None:
    writes.delete(
        trusted_endpoints, {"account_id": event.account_id, "endpoint_id": event.endpoint_id}
    )


@_handle.register
def _s3_credential_issued(event: S3CredentialIssued, writes: Writes, record: RecordedEvent) -> None:
    row = {
        "access_key_id": event.access_key_id,
        "account_id": event.account_id,
        "endpoint_id": event.endpoint_id,
        "issued_at": event.issued_at,
        "revoked_at": None,
        "revoked_reason": None,
    }
    writes.insert_if_absent(s3_credentials, [row])


@_handle.register
def _s3_credential_revoked(
    event: S3CredentialRevoked, writes: Writes, record: RecordedEvent
) -> None:
    writes.update(
        s3_credentials,
        {"access_key_id": event.access_key_id},
        {"revoked_at": record.recorded_at, "revoked_reason": event.reason},
        only_if_null=("revoked_at",),
    )
