"""Projection handlers for rotation (a token's or a client credential's expiry brought
forward) and for orgs' token policies, registered on the handlers' dispatch when
``projections.handlers`` loads."""

from __future__ import annotations

import msgspec

from tokenledger.domain.events import (
    ClientCredentialExpiryShortened,
    ClientCredentialRotated,
    OrgPolicyCleared,
    OrgPolicySet,
    TokenExpiryShortened,
    TokenRotated,
)
from tokenledger.projections.handlers import _handle
from tokenledger.projections.schema import client_credentials, org_policies, rotations, tokens
from tokenledger.projections.writes import Writes
from tokenledger.store.records import RecordedEvent

__all__: list[str] = []


@_handle.register
def _token_rotated(event: TokenRotated, writes: Writes, record: RecordedEvent) -> None:
    # A "set" event: the decision only ever brings an expiry forward, so the last one wins.
    writes.update(tokens, {"token_id": event.token_id}, {"expires_at": event.expires_at})
    _rotated(writes, event.token_id, event.successor_id, record)


@_handle.register
def _token_expiry_shortened(
    event: TokenExpiryShortened, writes: Writes, record: RecordedEvent
) -> None:
    writes.update(tokens, {"token_id": event.token_id}, {"expires_at": event.expires_at})


@_handle.register
def _client_credential_rotated(
    event: ClientCredentialRotated, writes: Writes, record: RecordedEvent
) -> None:
    writes.update(
        client_credentials, {"client_id": event.client_id}, {"expires_at": event.expires_at}
    )
    _rotated(writes, event.client_id, event.successor_id, record)


@_handle.register
def _client_credential_expiry_shortened(
    event: ClientCredentialExpiryShortened, writes: Writes, record: RecordedEvent
) -> None:
    writes.update(
        client_credentials, {"client_id": event.client_id}, {"expires_at": event.expires_at}
    )


def _rotated(writes: Writes, rotated_id: str, successor_id: str, record: RecordedEvent) -> None:
    # A token or credential is rotated once (a second rotation is refused): the first stays.
    row = {"rotated_id": rotated_id, "successor_id": successor_id, "rotated_at": record.recorded_at}
    writes.insert_if_absent(rotations, [row])


@_handle.register
def _org_policy_set(event: OrgPolicySet, writes: Writes, record: RecordedEvent) -> None:
    row = {
        "org": event.org,
        "max_lifetime": msgspec.json.encode(dict(sorted(event.max_lifetime.items()))).decode(),
        "require_expiry": event.require_expiry,
        "max_admin_lifetime": event.max_admin_lifetime,
        "max_live_tokens": event.max_live_tokens,
        "set_at": record.recorded_at,
    }
    writes.upsert(org_policies, row)


@_handle.register
def _org_policy_cleared(event: OrgPolicyCleared, writes: Writes, record: RecordedEvent) -> None:
    writes.delete(org_policies, {"org": event.org})
