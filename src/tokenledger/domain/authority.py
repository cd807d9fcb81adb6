"""Who may do what: a principal's current permissions and a token's effective ones.

A token's effective level on a resource is the lower of what its grants give
there and what its principal may do there *now*: lowering a user's grant
narrows their tokens at once, without revoking them (Element's scopes, GitHub's
fine-grained tokens).
"""

from __future__ import annotations

from datetime import datetime

from tokenledger.domain.model import Actor, ActorKind, LedgerView, TokenView, is_service_account_id
from tokenledger.domain.permissions import Grant, Level, level_at
from tokenledger.errors import PermissionDenied

__all__ = [
    "acting_token",
    "actor_level",
    "forbid_service_accounts",
    "principal_active",
    "principal_grants",
    "require_level",
    "require_operator",
    "token_level",
]


def principal_grants(view: LedgerView, principal: str) -> tuple[Grant, ...]:
    """Everything the principal may do now: none at all once disabled or deleted."""
    if is_service_account_id(principal):
        account = view.service_account(principal)
        if account is None or account.deleted:
            return ()
        return (account.permission,)
    user = view.user(principal)
    if user is None or user.disabled:
        return ()
    grants = list(view.direct_grants(principal))
    for org, role in view.memberships(principal).items():
        grants.extend(view.role(org, role) or ())
    return tuple(grants)


def principal_active(view: LedgerView, principal: str) -> bool:
    if is_service_account_id(principal):
        account = view.service_account(principal)
        return account is not None and not account.deleted
    user = view.user(principal)
    return user is not None and not user.disabled


def token_level(
    view: LedgerView,
    token: TokenView,
    path: str,
    now: datetime,
) -> Level:
    """What ``token`` allows on ``path`` at ``now``: NONE unless live."""
    if not token.live(now):
        return Level.NONE
    by_token = level_at(token.grants, path)
    if by_token is Level.NONE:
        return Level.NONE
    return min(by_token, level_at(principal_grants(view, token.principal), path))


def acting_token(view: LedgerView, actor: Actor, now: datetime) -> TokenView | None:
    """The live token a principal acts through: None for the operator, and None when the token
    is unknown, someone else's, revoked or expired, or its principal is disabled or deleted.

    Decisions call this under the write lock, so a token revoked after the caller was
    authenticated acts no more.
    """
    if actor.kind is ActorKind.OPERATOR or actor.token_id is None:
        return None
    token = view.token(actor.token_id)
    if token is None or token.principal != actor.principal or not token.live(now):
        return None
    return token if principal_active(view, token.principal) else None


def actor_level(view: LedgerView, actor: Actor, path: str, now: datetime) -> Level:
    """The operator may do anything; anyone else as much as the token they act through."""
    if actor.kind is ActorKind.OPERATOR:
        return Level.ADMIN
    if actor.token_id is None:
        return Level.NONE
    token = view.token(actor.token_id)
    if token is None or token.principal != actor.principal:
        return Level.NONE
    return token_level(view, token, path, now)


def require_level(
    view: LedgerView, actor: Actor, path: str, level: Level, now: datetime, action: str
) -> None:
    if actor_level(view, actor, path, now) < level:
        raise PermissionDenied(f"{actor.label} may not {action}: it needs {level.label} on {path}")


def require_operator(actor: Actor, action: str) -> None:
    if actor.kind is not ActorKind.OPERATOR:
        raise PermissionDenied(f"only an operator may {action}")


def forbid_service_accounts(actor: Actor, action: str) -> None:
    if actor.kind is ActorKind.SERVICE_ACCOUNT:
        raise PermissionDenied(f"a service account may not {action}")
