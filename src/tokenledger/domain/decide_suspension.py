"""Decisions on suspension: disabling and enabling tokens, client credentials and service
accounts, reversibly.

Registered on ``decide`` (``domain.decide`` imports this module). A suspension revokes
nothing and extends nothing: what it changes is the answer (``authority.answer_token`` says
``disabled`` while it lasts), and a token or credential revoked or expired meanwhile stays so
when it is enabled. Who may disable is who may revoke (``authorise_token_management``,
``administered_account``); who may enable is decided by ``authority.authorise_lifting``: a
person (or the operator), not below whoever made the suspension, never beyond what the
acting token holds.

A token derived from a disabled token is disabled with it, each by its own event naming the
token it followed (``cause``), and enabled with it; a token disabled by itself stays
disabled when an ancestor is enabled.
"""

from __future__ import annotations

from tokenledger.domain import commands as c
from tokenledger.domain.authority import account_suspended, authorise_lifting, suspender
from tokenledger.domain.decide import (
    Context,
    _orgs_of,
    administered_account,
    decide,
    live_descendants,
    managed_credential,
    managed_token,
)
from tokenledger.domain.events import (
    ClientCredentialDisabled,
    ClientCredentialEnabled,
    Event,
    ServiceAccountDisabled,
    ServiceAccountEnabled,
    TokenDisabled,
    TokenEnabled,
)
from tokenledger.domain.model import ClientCredentialView, LedgerView, TokenView
from tokenledger.errors import Conflict

__all__: list[str] = []

# -- tokens --------------------------------------------------------------------------------


def _managed_token(
    view: LedgerView, ctx: Context, token_id: str, owner: str | None, verb: str
) -> TokenView:
    """The token, if the actor may manage it (as revoking it needs), neither revoked nor
    expired: a suspension changes nothing about those."""
    token = managed_token(view, ctx, token_id, owner)
    if token.revoked:
        raise Conflict(f"token {token_id} is revoked: {verb} it changes nothing")
    if token.expired(ctx.now):
        raise Conflict(f"token {token_id} has expired: {verb} it changes nothing")
    return token


def _disabled_ancestor(view: LedgerView, token: TokenView) -> str | None:
    """The nearest token ``token`` derives from that is disabled, if one is: a derived token
    is never usable while one it derives from is not."""
    seen = {token.token_id}
    parent_id = token.parent_id
    while parent_id is not None and parent_id not in seen:
        seen.add(parent_id)
        parent = view.token(parent_id)
        if parent is None:
            return None
        if parent.disabled:
            return parent.token_id
        parent_id = parent.parent_id
    return None


@decide.register
def _disable_token(cmd: c.DisableToken, view: LedgerView, ctx: Context) -> list[Event]:
    token = _managed_token(view, ctx, cmd.token_id, cmd.principal, "disabling")
    if token.disabled:
        raise Conflict(f"token {cmd.token_id} is already disabled")
    events: list[Event] = [
        TokenDisabled(
            token_id=token.token_id,
            principal=token.principal,
            disabled_by=suspender(ctx.actor),
            reason=cmd.reason,
            orgs=_orgs_of(token),
        )
    ]
    events.extend(
        TokenDisabled(
            token_id=child.token_id,
            principal=child.principal,
            disabled_by=suspender(ctx.actor),
            reason=cmd.reason,
            cause=token.token_id,
            orgs=_orgs_of(child),
        )
        for child in live_descendants(view, [token], ctx)
        if not child.disabled
    )
    return events


@decide.register
def _enable_token(cmd: c.EnableToken, view: LedgerView, ctx: Context) -> list[Event]:
    token = _managed_token(view, ctx, cmd.token_id, cmd.principal, "enabling")
    authorise_lifting(view, ctx.actor, token.principal, token.disabled_by, token.grants, ctx.now)
    if not token.disabled:
        if account_suspended(view, token.principal):
            raise Conflict(
                f"token {cmd.token_id} is not disabled itself: its service account "
                f"{token.principal} is (service-accounts enable)"
            )
        raise Conflict(f"token {cmd.token_id} is not disabled")
    ancestor = _disabled_ancestor(view, token)
    if ancestor is not None:
        raise Conflict(
            f"token {cmd.token_id} derives from token {ancestor}, which is disabled: enable "
            "that one"
        )
    events: list[Event] = [
        TokenEnabled(token_id=token.token_id, principal=token.principal, orgs=_orgs_of(token))
    ]
    events.extend(
        TokenEnabled(
            token_id=child.token_id,
            principal=child.principal,
            cause=token.token_id,
            orgs=_orgs_of(child),
        )
        for child in live_descendants(view, [token], ctx)
        if child.disabled_cause == token.token_id
    )
    return events


# -- service accounts ------------------------------------------------------------------------


@decide.register
def _disable_service_account(
    cmd: c.DisableServiceAccount, view: LedgerView, ctx: Context
) -> list[Event]:
    account = administered_account(
        view, ctx, cmd.account_id, "manage service accounts", f"disable {cmd.account_id}"
    )
    if account.disabled:
        raise Conflict(f"service account {cmd.account_id} is already disabled")
    return [
        ServiceAccountDisabled(
            account_id=account.account_id, disabled_by=suspender(ctx.actor), reason=cmd.reason
        )
    ]


@decide.register
def _enable_service_account(
    cmd: c.EnableServiceAccount, view: LedgerView, ctx: Context
) -> list[Event]:
    account = administered_account(
        view, ctx, cmd.account_id, "manage service accounts", f"enable {cmd.account_id}"
    )
    authorise_lifting(
        view, ctx.actor, account.account_id, account.disabled_by, (account.permission,), ctx.now
    )
    if not account.disabled:
        raise Conflict(f"service account {cmd.account_id} is not disabled")
    return [ServiceAccountEnabled(account_id=account.account_id)]


# -- client credentials ----------------------------------------------------------------------


def _managed_credential(
    view: LedgerView, ctx: Context, client_id: str, owner: str | None, verb: str
) -> ClientCredentialView:
    """The client credential, if the actor may manage it (as revoking it needs), neither
    revoked nor expired."""
    credential = managed_credential(view, ctx, client_id, owner)
    if credential.revoked:
        raise Conflict(f"client credential {client_id} is revoked: {verb} it changes nothing")
    if credential.expired(ctx.now):
        raise Conflict(f"client credential {client_id} has expired: {verb} it changes nothing")
    return credential


@decide.register
def _disable_client_credential(
    cmd: c.DisableClientCredential, view: LedgerView, ctx: Context
) -> list[Event]:
    credential = _managed_credential(view, ctx, cmd.client_id, cmd.account_id, "disabling")
    if credential.disabled:
        raise Conflict(f"client credential {cmd.client_id} is already disabled")
    return [
        ClientCredentialDisabled(
            client_id=credential.client_id,
            account_id=credential.account_id,
            disabled_by=suspender(ctx.actor),
            reason=cmd.reason,
        )
    ]


@decide.register
def _enable_client_credential(
    cmd: c.EnableClientCredential, view: LedgerView, ctx: Context
) -> list[Event]:
    credential = _managed_credential(view, ctx, cmd.client_id, cmd.account_id, "enabling")
    account = view.service_account(credential.account_id)
    reaches = (account.permission,) if account is not None else ()
    authorise_lifting(
        view, ctx.actor, credential.account_id, credential.disabled_by, reaches, ctx.now
    )
    if not credential.disabled:
        if account_suspended(view, credential.account_id):
            raise Conflict(
                f"client credential {cmd.client_id} is not disabled itself: its service "
                f"account {credential.account_id} is (service-accounts enable)"
            )
        raise Conflict(f"client credential {cmd.client_id} is not disabled")
    return [
        ClientCredentialEnabled(client_id=credential.client_id, account_id=credential.account_id)
    ]
