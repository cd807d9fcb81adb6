"""Rotation with overlap: a successor is issued and the old credential's expiry is brought
forward to the overlap's end, so that both work while the new secret is rolled out.

A token's successor is issued exactly as ``tokens create`` would issue it for the same
principal (the issuing decision runs with the token's grants, name and parent, and its
lifetime as an explicit expiry), so every check of issuing applies, the org's policy
included; a role key's successor is issued as ``roles key new`` would. The old token gets
a ``TokenRotated`` naming its successor, and each live token derived from it that would
outlive it a ``TokenExpiryShortened`` (a derived token never outlives its parent). Rotations
chain: the successor may be rotated in its turn, and ``audit explain`` shows the chain both
ways. A token rotated already is not rotated again (its successor is): its expiry is now the
overlap's end, and a second successor would fork the chain. The expiry is never extended.
A client credential rotates the same way (``ClientCredentialRotated``); its access tokens
live while it does, as always.

Registered on ``decide`` (``domain.decide`` imports this module).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from tokenledger.domain import commands as c
from tokenledger.domain.decide import (
    Context,
    _orgs_of,
    decide,
    issue_client_credential,
    issue_token,
    live_descendants,
    managed_credential,
    managed_token,
)
from tokenledger.domain.decide_roles import issue_role_key
from tokenledger.domain.events import (
    ClientCredentialIssued,
    ClientCredentialRotated,
    Event,
    ExpiryReason,
    TokenExpiryShortened,
    TokenIssued,
    TokenRotated,
)
from tokenledger.domain.model import (
    LedgerView,
    TokenView,
    is_role_principal,
    role_of_principal,
)
from tokenledger.domain.secrets import TokenKind
from tokenledger.errors import Conflict, PermissionDenied

__all__ = ["shortened"]


def _require_not_rotated(view: LedgerView, rotated_id: str, what: str) -> None:
    """A chain of rotations goes through the newest link: a token rotated already has a
    successor, and its own lifetime is now the overlap's (a second successor would fork the
    chain and inherit that)."""
    successor = view.successor_of(rotated_id)
    if successor is not None:
        raise Conflict(f"{what} {rotated_id} was rotated already: rotate its successor {successor}")


def _lifetime(issued_at: datetime, expires_at: datetime | None) -> timedelta | None:
    return None if expires_at is None else expires_at - issued_at


def _end_of_overlap(current: datetime | None, now: datetime, overlap: timedelta) -> datetime:
    """The old credential's new expiry: the overlap's end, never later than it was."""
    end = now + overlap
    return end if current is None else min(current, end)


@decide.register
def _rotate_token(cmd: c.RotateToken, view: LedgerView, ctx: Context) -> list[Event]:
    # Whoever may manage the token learns its state; issuing its successor then asks
    # exactly what issuing for its principal asks.
    token = managed_token(view, ctx, cmd.token_id, None)
    if token.revoked:
        raise Conflict(f"token {cmd.token_id} is revoked: issue a new one instead")
    if token.expired(ctx.now):
        raise Conflict(f"token {cmd.token_id} has expired: issue a new one instead")
    if token.disabled:
        # Its successor would be usable while it is suspended.
        raise Conflict(f"token {cmd.token_id} is disabled: enable it before rotating it")
    _require_not_rotated(view, token.token_id, "token")
    ending = {token.token_id, *(t.token_id for t in live_descendants(view, [token], ctx))}
    if ctx.actor.via is None and ctx.actor.token_id in ending:
        # Issued through the rotated token (or one derived from it), the successor would be
        # its child (``decide.issue_token``) and end with it.
        raise PermissionDenied(
            f"{ctx.actor.label} acts through token {ctx.actor.token_id}, which this rotation "
            f"ends: rotate {token.token_id} through another token, or as an admin of its "
            "project"
        )
    issued = _successor(token, view, ctx)
    successor = next(e for e in issued if isinstance(e, TokenIssued))
    expires_at = _end_of_overlap(token.expires_at, ctx.now, cmd.overlap)
    return [
        *issued,
        TokenRotated(
            token_id=token.token_id,
            principal=token.principal,
            successor_id=successor.token_id,
            expires_at=expires_at,
            orgs=_orgs_of(token),
        ),
        *shortened(
            view,
            [token],
            expires_at,
            ExpiryReason.PARENT_SHORTENED,
            f"parent token {token.token_id} rotated",
            ctx,
        ),
    ]


def _successor(token: TokenView, view: LedgerView, ctx: Context) -> list[Event]:
    lifetime = _lifetime(token.issued_at, token.expires_at)
    if token.kind == TokenKind.ROLE.value and is_role_principal(token.principal):
        org, role = role_of_principal(token.principal)
        key = c.IssueRoleKey(org=org, role=role, name=token.name)
        expires_at = None if lifetime is None else ctx.now + lifetime
        return issue_role_key(key, view, ctx, replacing=token.token_id, expires_at=expires_at)
    command = c.IssueToken.model_construct(
        principal=token.principal,
        grants=tuple(
            c.GrantSpec.model_construct(resource=g.resource, level=g.rank) for g in token.grants
        ),
        role=None,
        name=token.name,
        expires_in=lifetime,
        expires_at=None,
        no_expiry=lifetime is None,
        parent_id=token.parent_id,
    )
    return issue_token(command, view, ctx, replacing=token.token_id)


def shortened(
    view: LedgerView,
    roots: Sequence[TokenView],
    expires_at: datetime,
    reason: str,
    detail: str,
    ctx: Context,
) -> list[TokenExpiryShortened]:
    """A ``TokenExpiryShortened`` for each live token derived from ``roots`` (at any depth)
    that would outlive ``expires_at``: a derived token never outlives its parent."""
    return [
        TokenExpiryShortened(
            token_id=child.token_id,
            principal=child.principal,
            expires_at=expires_at,
            reason=reason,
            detail=detail,
            orgs=_orgs_of(child),
        )
        for child in live_descendants(view, roots, ctx)
        if child.expires_at is None or child.expires_at > expires_at
    ]


@decide.register
def _rotate_client_credential(
    cmd: c.RotateClientCredential, view: LedgerView, ctx: Context
) -> list[Event]:
    credential = managed_credential(view, ctx, cmd.client_id, cmd.account_id)
    if credential.revoked:
        raise Conflict(f"client credential {cmd.client_id} is revoked: issue a new one instead")
    if credential.expired(ctx.now):
        raise Conflict(f"client credential {cmd.client_id} has expired: issue a new one instead")
    if credential.disabled:
        raise Conflict(
            f"client credential {cmd.client_id} is disabled: enable it before rotating it"
        )
    _require_not_rotated(view, credential.client_id, "client credential")
    lifetime = _lifetime(credential.issued_at, credential.expires_at)
    # Issuing the successor asks what issuing any client credential asks (an admin of the
    # account's project, or an operator), the org's policy included.
    issued = issue_client_credential(
        c.IssueClientCredential.model_construct(
            account_id=credential.account_id,
            name=credential.name,
            expires_in=lifetime,
            no_expiry=lifetime is None,
        ),
        view,
        ctx,
    )
    successor = next(e for e in issued if isinstance(e, ClientCredentialIssued))
    return [
        *issued,
        ClientCredentialRotated(
            client_id=credential.client_id,
            account_id=credential.account_id,
            successor_id=successor.client_id,
            expires_at=_end_of_overlap(credential.expires_at, ctx.now, cmd.overlap),
        ),
    ]
