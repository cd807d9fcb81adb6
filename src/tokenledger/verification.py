"""The answer to "is this token valid, and may it do this?", for any view of the ledger.

The same function answers for the live projections (``Ledger.verify``) and for a
past state folded from the log (``tokens verify --at``), so both explain a "no"
the same way.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from tokenledger.domain.authority import principal_active, principal_grants
from tokenledger.domain.model import LedgerView, TokenView
from tokenledger.domain.permissions import Grant, Level, level_at

__all__ = [
    "Verification",
    "effective_grants",
    "inactive_reason",
    "verify_service_token",
    "verify_token",
]


class Verification(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The answer in RFC 7662 vocabulary, plus ``allowed`` and a ``reason`` for a no."""

    active: bool
    allowed: bool
    reason: str | None = None
    token_id: str | None = None
    sub: str | None = None
    token_type: str | None = None
    iat: int | None = None
    exp: int | None = None
    scope: str | None = None
    grants: tuple[Grant, ...] = ()
    resource: str | None = None
    level: str | None = None


def inactive_reason(view: LedgerView, token: TokenView, now: datetime) -> str | None:
    """Why ``token`` cannot be used at ``now``, or None when it can."""
    lapsed = _lapsed(token, now)
    if lapsed is not None:
        return lapsed
    if not principal_active(view, token.principal):
        return "principal_disabled"
    return None


def _lapsed(token: TokenView, now: datetime) -> str | None:
    """Why the token itself can no longer be used at ``now`` (whatever its principal), or None."""
    if token.revoked:
        return "revoked"
    if token.expired(now):
        return "expired"
    return None


def effective_grants(grants: tuple[Grant, ...], current: tuple[Grant, ...]) -> tuple[Grant, ...]:
    """Each grant lowered to what the principal may do there now; those left at none dropped."""
    effective = []
    for grant in grants:
        level = min(grant.rank, level_at(current, grant.resource))
        if level is not Level.NONE:
            effective.append(Grant(grant.resource, level.label))
    return tuple(effective)


def verify_token(
    view: LedgerView,
    token: TokenView | None,
    now: datetime,
    *,
    resource: str | None = None,
    level: Level = Level.READ,
) -> Verification:
    """Answer for a token already looked up by its secret's hash (None: no such token)."""
    if token is None:
        return Verification(active=False, allowed=False, reason="unknown")
    inactive = inactive_reason(view, token, now)
    if inactive is not None:
        return _inactive(token, inactive)
    return _active(token, principal_grants(view, token.principal), resource, level)


def verify_service_token(
    token: TokenView,
    permission: Grant | None,
    now: datetime,
    *,
    resource: str | None = None,
    level: Level = Level.READ,
) -> Verification:
    """``verify_token``'s answer for a service account's token, given the account's permission
    (None when the account is missing or deleted) rather than a view to look it up in.

    A verification that finds no answer cached runs this on what one statement read (the
    token joined with its account): the rules are ``verify_token``'s, and the tests check that
    the two agree for every state of such a token and its account, resource and level.
    """
    lapsed = _lapsed(token, now)
    if lapsed is not None:
        return _inactive(token, lapsed)
    if permission is None:
        return _inactive(token, "principal_disabled")
    return _active(token, (permission,), resource, level)


def _inactive(token: TokenView, reason: str) -> Verification:
    return Verification(active=False, allowed=False, reason=reason, token_id=token.token_id)


def _active(
    token: TokenView, current: tuple[Grant, ...], resource: str | None, level: Level
) -> Verification:
    """The answer for a live token of an active principal who may do ``current`` now."""
    effective = effective_grants(token.grants, current)
    # ``token_level`` for a live token: what its grants give there, at most what its
    # principal may do there.
    allowed = (
        resource is None
        or min(level_at(token.grants, resource), level_at(current, resource)) >= level
    )
    return Verification(
        active=True,
        allowed=allowed,
        reason=None if allowed else "not_allowed",
        token_id=token.token_id,
        sub=token.principal,
        token_type=token.kind,
        iat=int(token.issued_at.timestamp()),
        exp=int(token.expires_at.timestamp()) if token.expires_at else None,
        scope=" ".join([str(grant) for grant in effective]),
        grants=effective,
        resource=resource,
        level=level.label if resource is not None else None,
    )
