"""What a command did, read once from the events it recorded.

``Ledger.execute`` returns this beside the events, so that the command line and the HTTP API
print a command's result without each searching the events for the ones they need.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import msgspec

from tokenledger.domain.events import (
    ClientCredentialIssued,
    ClientCredentialRevoked,
    Event,
    GrantRemoved,
    MemberRoleChanged,
    ResourceCreated,
    ResourceDeleted,
    S3CredentialRevoked,
    ServiceAccountCreated,
    ServiceAccountPermissionLevelChanged,
    ServiceAccountPermissionMoved,
    TokenDisabled,
    TokenEnabled,
    TokenIssued,
    TokenRevoked,
)
from tokenledger.domain.permissions import Grant, Level

__all__ = ["Outcome", "PermissionChange", "outcome_of"]


class PermissionChange(msgspec.Struct, frozen=True, kw_only=True):
    """A service account's permission before and after; ``moved`` when it changed project
    (which revokes the account's tokens and credentials)."""

    account_id: str
    previous: Grant
    permission: Grant
    moved: bool


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """The facts a caller shows after a command, each named for what it is."""

    issued: TokenIssued | None = None
    revoked: tuple[str, ...] = ()
    """Token ids revoked, the cascade included, in log order."""
    credential_issued: ClientCredentialIssued | None = None
    revoked_client_ids: tuple[str, ...] = ()
    revoked_access_key_ids: tuple[str, ...] = ()
    """S3 credentials revoked, by access key id, in log order."""
    resource_created: ResourceCreated | None = None
    resources_deleted: tuple[str, ...] = ()
    """Paths deleted, deepest first."""
    grants_removed: tuple[GrantRemoved, ...] = ()
    account_created: ServiceAccountCreated | None = None
    permission_change: PermissionChange | None = None
    role_change: MemberRoleChanged | None = None
    disabled: tuple[str, ...] = ()
    """Token ids disabled (the tokens derived from them included), in log order."""
    enabled: tuple[str, ...] = ()
    """Token ids enabled (those disabled with them included), in log order."""

    @property
    def warning(self) -> str | None:
        """What the caller should hear about what was done: an issued token that is both
        highly privileged and long-lived (Dyff's documentation warns against those)."""
        return long_lived_admin(self.issued) if self.issued is not None else None


#: Longer than this, a token with an admin grant is worth a warning.
LONG_LIVED_ADMIN = timedelta(days=7)


def long_lived_admin(issued: TokenIssued) -> str | None:
    """A one-line warning for a token with an admin grant that lives longer than 7 days."""
    admin = [g for g in issued.grants if g.rank is Level.ADMIN]
    if not admin or issued.expires_at is None:  # never expiring: refused for admin grants
        return None
    lifetime = issued.expires_at - issued.issued_at
    if lifetime <= LONG_LIVED_ADMIN:
        return None
    days = lifetime.total_seconds() / 86400
    return (
        f"token {issued.token_id} has admin on {admin[0].resource} and lives {days:.0f} days: "
        "a highly privileged token should be short-lived (--expires-in 7d or less)"
    )


def outcome_of(events: Iterable[Event]) -> Outcome:
    issued = credential = resource = account = None
    change: PermissionChange | None = None
    role_change: MemberRoleChanged | None = None
    revoked: list[str] = []
    revoked_clients: list[str] = []
    revoked_s3: list[str] = []
    deleted: list[str] = []
    removed: list[GrantRemoved] = []
    disabled: list[str] = []
    enabled: list[str] = []
    for event in events:
        match event:
            case TokenIssued() if issued is None:
                issued = event
            case TokenRevoked():
                revoked.append(event.token_id)
            case ClientCredentialIssued():
                credential = event
            case ClientCredentialRevoked():
                revoked_clients.append(event.client_id)
            case S3CredentialRevoked():
                revoked_s3.append(event.access_key_id)
            case ResourceCreated():
                resource = event
            case ResourceDeleted():
                deleted.append(event.path)
            case GrantRemoved():
                removed.append(event)
            case ServiceAccountCreated():
                account = event
            case ServiceAccountPermissionMoved() | ServiceAccountPermissionLevelChanged():
                change = PermissionChange(
                    account_id=event.account_id,
                    previous=event.previous,
                    permission=event.permission,
                    moved=isinstance(event, ServiceAccountPermissionMoved),
                )
            case MemberRoleChanged():
                role_change = event
            case TokenDisabled():
                disabled.append(event.token_id)
            case TokenEnabled():
                enabled.append(event.token_id)
    return Outcome(
        issued=issued,
        revoked=tuple(revoked),
        credential_issued=credential,
        revoked_client_ids=tuple(revoked_clients),
        revoked_access_key_ids=tuple(revoked_s3),
        resource_created=resource,
        resources_deleted=tuple(deleted),
        grants_removed=tuple(removed),
        account_created=account,
        permission_change=change,
        role_change=role_change,
        disabled=tuple(disabled),
        enabled=tuple(enabled),
    )
