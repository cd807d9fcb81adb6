"""The events that end a principal's sessions, withdraw a service account's issuer trusts,
take endpoints off its trusted list and revoke its S3 credentials, for every decision whose
cascade reaches them (disabling a user, removing a member, moving or deleting a service
account, changing an org's identity provider, untrusting or deleting an endpoint)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from tokenledger.domain.events import (
    EndpointUntrusted,
    Event,
    IssuerUntrusted,
    S3CredentialRevoked,
    SessionEnded,
)
from tokenledger.domain.model import (
    IssuerTrustView,
    S3CredentialView,
    SessionView,
    TrustedEndpointView,
)

__all__ = ["end_sessions", "revoke_s3_credentials", "untrust_endpoints", "withdraw_trusts"]


def end_sessions(
    sessions: Iterable[SessionView], reason: str, detail: str | None, now: datetime
) -> list[Event]:
    """One ``SessionEnded`` per live session among ``sessions``, by id."""
    live = sorted((s for s in sessions if s.live(now)), key=lambda s: s.session_id)
    return [
        SessionEnded(
            session_id=session.session_id,
            principal=session.principal,
            org=session.org,
            reason=reason,
            detail=detail,
        )
        for session in live
    ]


def withdraw_trusts(
    trusts: Iterable[IssuerTrustView], reason: str, detail: str | None
) -> list[Event]:
    """One ``IssuerUntrusted`` per trust among ``trusts`` still in force, by id."""
    standing = sorted((t for t in trusts if not t.revoked), key=lambda t: t.trust_id)
    return [
        IssuerUntrusted(
            trust_id=trust.trust_id, account_id=trust.account_id, reason=reason, detail=detail
        )
        for trust in standing
    ]


def untrust_endpoints(
    trusted: Iterable[TrustedEndpointView], reason: str, detail: str | None
) -> list[Event]:
    """One ``EndpointUntrusted`` per (account, endpoint) among ``trusted``, in order."""
    ordered = sorted(trusted, key=lambda t: (t.account_id, t.endpoint_id))
    return [
        EndpointUntrusted(
            account_id=t.account_id, endpoint_id=t.endpoint_id, reason=reason, detail=detail
        )
        for t in ordered
    ]


def revoke_s3_credentials(
    credentials: Iterable[S3CredentialView], reason: str, detail: str | None
) -> list[Event]:
    """One ``S3CredentialRevoked`` per unrevoked credential among ``credentials``, by id."""
    standing = sorted((c for c in credentials if not c.revoked), key=lambda c: c.access_key_id)
    return [
        S3CredentialRevoked(
            access_key_id=c.access_key_id,
            account_id=c.account_id,
            endpoint_id=c.endpoint_id,
            reason=reason,
            detail=detail,
        )
        for c in standing
    ]
