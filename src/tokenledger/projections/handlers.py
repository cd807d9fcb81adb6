"""Folding one event into the projection tables.

Each handler is a small function of ``(event, writes, record)`` that states
the row operations the event implies (``projections.writes``), and nothing
else: cascades are events of their own (design decision 6), so no handler
infers one. Timestamps of the ledger's
own doing (``created_at``, ``disabled_at``, ``revoked_at``) are the record's
``recorded_at``; a token's ``issued_at`` and ``expires_at`` are the event's.

Handlers are idempotent, so a replay can safely re-apply events that are
already folded in:

* creations insert only when the row is absent (re-applying ``TokenIssued``
  does not bring a revoked token back);
* "set" events overwrite with the event's values;
* first-time facts (a revocation, a user's disabling) are written only if not
  yet recorded, so the first one keeps its time and reason;
* deletions of absent rows do nothing.

Re-applying a run of events in log order therefore leaves the tables as they
were.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import singledispatch

import msgspec

from tokenledger.domain.events import (
    ClientCredentialIssued,
    ClientCredentialRevoked,
    Event,
    GrantRemoved,
    GrantSet,
    IdentityProviderSet,
    IssuerTrusted,
    IssuerUntrusted,
    MemberAdded,
    MemberRemoved,
    MemberRoleChanged,
    OrgCreated,
    ResourceCreated,
    ResourceDataClassSet,
    ResourceDeleted,
    ResourceLicenseSet,
    RoleCreated,
    RoleDeleted,
    RolePolicyAdded,
    RolePolicyRemoved,
    ServiceAccountCreated,
    ServiceAccountDeleted,
    ServiceAccountPermissionLevelChanged,
    ServiceAccountPermissionMoved,
    SessionEnded,
    SessionRefreshed,
    SessionStarted,
    TokenIssued,
    TokenRevoked,
    UserCreated,
    UserDisabled,
)
from tokenledger.domain.permissions import Grant, Level, parent_of
from tokenledger.projections.schema import (
    client_credentials,
    identity_providers,
    issuer_trusts,
    memberships,
    orgs,
    resources,
    roles,
    service_accounts,
    session_refresh_tokens,
    sessions,
    token_grants,
    tokens,
    user_grants,
    users,
)
from tokenledger.projections.writes import Writes
from tokenledger.store.records import RecordedEvent

__all__ = [
    "ORG_RESOURCE_KIND",
    "apply_event",
    "encode_grants",
    "handled_event_types",
]

#: The kind of the root resource every org has (its path is the org's name).
ORG_RESOURCE_KIND = "org"

_encoder = msgspec.json.Encoder()


def encode_grants(grants: Sequence[Grant]) -> str:
    """The stored form of a grant list: msgspec JSON text of ``tuple[Grant, ...]``."""
    return _encoder.encode(tuple(grants)).decode("utf-8")


def apply_event(writes: Writes, record: RecordedEvent, event: Event) -> None:
    """Fold ``event`` (stored as ``record``) into the projection tables through ``writes``.

    Takes any ``Event`` so that callers holding ``list[Event]`` need no cast;
    an event class outside the handled union raises ``TypeError``.
    """
    _handle(event, writes, record)


def handled_event_types() -> frozenset[type[Event]]:
    """Every event class with a handler (a test checks this covers the whole union)."""
    return frozenset(cls for cls in _handle.registry if cls is not object)


# -- the handlers -----------------------------------------------------------------


@singledispatch
def _handle(event: Event, writes: Writes, record: RecordedEvent) -> None:
    # A new event type without a handler would silently leave the projections
    # behind the log; fail the command's transaction instead.
    raise TypeError(f"no projection handler for {type(event).__name__}")


@_handle.register
def _org_created(event: OrgCreated, writes: Writes, record: RecordedEvent) -> None:
    writes.insert_if_absent(orgs, [{"org": event.org, "created_at": record.recorded_at}])
    _insert_resource(writes, event.org, ORG_RESOURCE_KIND, record)


@_handle.register
def _user_created(event: UserCreated, writes: Writes, record: RecordedEvent) -> None:
    row = {
        "email": event.email,
        "name": event.name,
        "disabled": False,
        "disabled_at": None,
        "created_at": record.recorded_at,
        "account_id": event.account_id,
    }
    writes.insert_if_absent(users, [row])


@_handle.register
def _user_disabled(event: UserDisabled, writes: Writes, record: RecordedEvent) -> None:
    # Only the first disabling counts: its time stays.
    writes.update(
        users,
        {"email": event.email, "disabled": False},
        {"disabled": True, "disabled_at": record.recorded_at},
    )


@_handle.register
def _member_added(event: MemberAdded, writes: Writes, record: RecordedEvent) -> None:
    row = {"org": event.org, "email": event.email, "role": event.role}
    writes.insert_if_absent(memberships, [row])


@_handle.register
def _member_role_changed(event: MemberRoleChanged, writes: Writes, record: RecordedEvent) -> None:
    writes.update(memberships, {"org": event.org, "email": event.email}, {"role": event.role})


@_handle.register
def _member_removed(event: MemberRemoved, writes: Writes, record: RecordedEvent) -> None:
    writes.delete(memberships, {"org": event.org, "email": event.email})


@_handle.register
def _resource_created(event: ResourceCreated, writes: Writes, record: RecordedEvent) -> None:
    _insert_resource(writes, event.path, event.kind, record)


def _insert_resource(writes: Writes, path: str, kind: str, record: RecordedEvent) -> None:
    segments = path.split("/")
    row = {
        "path": path,
        "org": segments[0],
        "parent": parent_of(path),
        "kind": kind,
        "depth": len(segments),
        "created_at": record.recorded_at,
    }
    writes.insert_if_absent(resources, [row])


@_handle.register
def _resource_deleted(event: ResourceDeleted, writes: Writes, record: RecordedEvent) -> None:
    writes.delete(resources, {"path": event.path})


@_handle.register
def _grant_set(event: GrantSet, writes: Writes, record: RecordedEvent) -> None:
    grant = event.grant
    if grant.rank is Level.NONE:
        # Setting "none" is how a grant is taken away; no row means no grant.
        _delete_user_grant(writes, event.principal, grant.resource)
        return
    row = {"email": event.principal, "resource": grant.resource, "level": grant.level}
    writes.upsert(user_grants, row)


@_handle.register
def _grant_removed(event: GrantRemoved, writes: Writes, record: RecordedEvent) -> None:
    _delete_user_grant(writes, event.principal, event.resource)


def _delete_user_grant(writes: Writes, email: str, resource: str) -> None:
    writes.delete(user_grants, {"email": email, "resource": resource})


@_handle.register
def _role_created(event: RoleCreated, writes: Writes, record: RecordedEvent) -> None:
    row = {"org": event.org, "role": event.role, "grants": encode_grants(event.grants)}
    writes.insert_if_absent(roles, [row])


@_handle.register(RolePolicyAdded)
@_handle.register(RolePolicyRemoved)
def _role_policy_changed(
    event: RolePolicyAdded | RolePolicyRemoved, writes: Writes, record: RecordedEvent
) -> None:
    # The event carries the role's whole set after the change: a handler never reads.
    writes.update(
        roles, {"org": event.org, "role": event.role}, {"grants": encode_grants(event.grants)}
    )


@_handle.register
def _role_deleted(event: RoleDeleted, writes: Writes, record: RecordedEvent) -> None:
    writes.delete(roles, {"org": event.org, "role": event.role})


@_handle.register
def _service_account_created(
    event: ServiceAccountCreated, writes: Writes, record: RecordedEvent
) -> None:
    row = {
        "account_id": event.account_id,
        "org": event.org,
        "name": event.name,
        "resource": event.permission.resource,
        "level": event.permission.level,
        "deleted": False,
        "created_at": record.recorded_at,
    }
    writes.insert_if_absent(service_accounts, [row])


@_handle.register
def _service_account_moved(
    event: ServiceAccountPermissionMoved, writes: Writes, record: RecordedEvent
) -> None:
    _set_service_account_permission(writes, event.account_id, event.permission)


@_handle.register
def _service_account_level_changed(
    event: ServiceAccountPermissionLevelChanged, writes: Writes, record: RecordedEvent
) -> None:
    _set_service_account_permission(writes, event.account_id, event.permission)


def _set_service_account_permission(writes: Writes, account_id: str, grant: Grant) -> None:
    writes.update(
        service_accounts,
        {"account_id": account_id},
        {"resource": grant.resource, "level": grant.level},
    )


@_handle.register
def _service_account_deleted(
    event: ServiceAccountDeleted, writes: Writes, record: RecordedEvent
) -> None:
    writes.update(service_accounts, {"account_id": event.account_id}, {"deleted": True})


@_handle.register
def _token_issued(event: TokenIssued, writes: Writes, record: RecordedEvent) -> None:
    row = {
        "token_id": event.token_id,
        "secret_hash": event.secret_hash,
        "principal": event.principal,
        "kind": event.kind,
        "name": event.name,
        "grants": encode_grants(event.grants),
        "issued_at": event.issued_at,
        "expires_at": event.expires_at,
        "parent_id": event.parent_id,
        "revoked_at": None,
        "revoked_reason": None,
        "issued_position": record.position,
        "revoked_position": None,
        "issued_expires_at": event.expires_at,
    }
    writes.insert_if_absent(tokens, [row])
    # A set: the same grant listed twice is one row (the key is the whole row).
    grant_rows = [
        {"token_id": event.token_id, "resource": grant.resource, "level": grant.level}
        for grant in sorted(set(event.grants))
    ]
    writes.insert_if_absent(token_grants, grant_rows)


@_handle.register
def _token_revoked(event: TokenRevoked, writes: Writes, record: RecordedEvent) -> None:
    # The first revocation is the one that counts: its time and reason stay.
    writes.update(
        tokens,
        {"token_id": event.token_id},
        {
            "revoked_at": record.recorded_at,
            "revoked_reason": event.reason,
            "revoked_position": record.position,
        },
        only_if_null=("revoked_at",),
    )


@_handle.register
def _client_credential_issued(
    event: ClientCredentialIssued, writes: Writes, record: RecordedEvent
) -> None:
    row = {
        "client_id": event.client_id,
        "account_id": event.account_id,
        "secret_hash": event.secret_hash,
        "name": event.name,
        "issued_at": event.issued_at,
        "expires_at": event.expires_at,
        "revoked_at": None,
        "revoked_reason": None,
    }
    writes.insert_if_absent(client_credentials, [row])


@_handle.register
def _client_credential_revoked(
    event: ClientCredentialRevoked, writes: Writes, record: RecordedEvent
) -> None:
    # The first revocation is the one that counts, as for tokens.
    writes.update(
        client_credentials,
        {"client_id": event.client_id},
        {"revoked_at": record.recorded_at, "revoked_reason": event.reason},
        only_if_null=("revoked_at",),
    )


@_handle.register
def _identity_provider_set(
    event: IdentityProviderSet, writes: Writes, record: RecordedEvent
) -> None:
    writes.upsert(
        identity_providers,
        {
            "org": event.org,
            "issuer": event.issuer,
            "oidc_client_id": event.oidc_client_id,
            "client_secret": event.client_secret,
            "session_lifetime": event.session_lifetime,
            "set_at": record.recorded_at,
        },
    )


@_handle.register
def _session_started(event: SessionStarted, writes: Writes, record: RecordedEvent) -> None:
    row = {
        "session_id": event.session_id,
        "principal": event.principal,
        "org": event.org,
        "issuer": event.issuer,
        "subject": event.subject,
        "started_at": event.started_at,
        "expires_at": event.expires_at,
        "refresh_hash": event.refresh_hash,
        "generation": 0,
        "refreshed_at": None,
        "revoked_at": None,
        "revoked_reason": None,
    }
    writes.insert_if_absent(sessions, [row])
    writes.insert_if_absent(
        session_refresh_tokens,
        [{"refresh_hash": event.refresh_hash, "session_id": event.session_id}],
    )


@_handle.register
def _session_refreshed(event: SessionRefreshed, writes: Writes, record: RecordedEvent) -> None:
    writes.update(
        sessions,
        {"session_id": event.session_id},
        {
            "refresh_hash": event.refresh_hash,
            "generation": event.generation,
            "refreshed_at": record.recorded_at,
        },
    )
    writes.insert_if_absent(
        session_refresh_tokens,
        [{"refresh_hash": event.refresh_hash, "session_id": event.session_id}],
    )


@_handle.register
def _session_ended(event: SessionEnded, writes: Writes, record: RecordedEvent) -> None:
    # The first end is the one that counts, as for a token's revocation.
    writes.update(
        sessions,
        {"session_id": event.session_id},
        {"revoked_at": record.recorded_at, "revoked_reason": event.reason},
        only_if_null=("revoked_at",),
    )


@_handle.register
def _issuer_trusted(event: IssuerTrusted, writes: Writes, record: RecordedEvent) -> None:
    row = {
        "trust_id": event.trust_id,
        "account_id": event.account_id,
        "issuer": event.issuer,
        "subject": event.subject,
        "audience": event.audience,
        "created_at": record.recorded_at,
        "revoked_at": None,
        "revoked_reason": None,
    }
    writes.insert_if_absent(issuer_trusts, [row])


@_handle.register
def _issuer_untrusted(event: IssuerUntrusted, writes: Writes, record: RecordedEvent) -> None:
    writes.update(
        issuer_trusts,
        {"trust_id": event.trust_id},
        {"revoked_at": record.recorded_at, "revoked_reason": event.reason},
        only_if_null=("revoked_at",),
    )


# -- a resource's license and data class ------------------------------------------------------


@_handle.register
def _resource_license_set(event: ResourceLicenseSet, writes: Writes, record: RecordedEvent) -> None:
    writes.update(resources, {"path": event.path}, {"license": event.license})


@_handle.register
def _resource_data_class_set(
    event: ResourceDataClassSet, writes: Writes, record: RecordedEvent
) -> None:
    writes.update(resources, {"path": event.path}, {"data_class": event.data_class})


# The data plane's, suspension's, rotation's and orgs' policies', the webhooks' and the
# recorded uses' (last used) handlers live in their own modules, which register them here.
from tokenledger.projections import (  # noqa: E402, F401
    endpoint_handlers,
    policy_handlers,
    suspension_handlers,
    usage_handlers,
    webhook_handlers,
)
