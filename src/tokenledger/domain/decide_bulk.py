"""The decisions on revoking many credentials in one command: tokens by filter (``tokens
revoke --where``) and named tokens, client credentials, S3 credentials, issuer trusts,
webhooks and endpoint trusts together (what ``audit blast-radius --revoke`` runs).

Registered on ``decide`` (``domain.decide`` imports this module). Which tokens a filter
revokes is ``revocable_tokens`` (``domain.token_filter``): the preview a caller is shown
lists the same. Whether the actor may revoke one named credential is the single
revocation's own check (``managed_token``, ``managed_credential``,
``s3_credentials_manager``), so both ways of revoking refuse alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

from tokenledger.domain import commands as c
from tokenledger.domain.cascades import revoke_s3_credentials
from tokenledger.domain.decide import Context, _revoke, decide, managed_credential, managed_token
from tokenledger.domain.decide_endpoints import s3_credentials_manager
from tokenledger.domain.events import ClientCredentialRevoked, Event, RevocationReason
from tokenledger.domain.model import (
    ClientCredentialView,
    LedgerView,
    S3CredentialView,
    TokenView,
)
from tokenledger.domain.token_filter import revocable_tokens
from tokenledger.errors import NotFound, PermissionDenied

__all__ = ["withdrawal_refusal"]

Credential = TypeVar("Credential", TokenView, ClientCredentialView, S3CredentialView)


@decide.register
def _revoke_where(cmd: c.RevokeTokensWhere, view: LedgerView, ctx: Context) -> list[Event]:
    """One ``TokenRevoked`` per selected token, then each token derived from them (as every
    revocation cascades); all or nothing."""
    matched = revocable_tokens(view, ctx.actor, cmd.where.token_filter(), ctx.now)
    return _revoke(view, matched, RevocationReason.REQUESTED, cmd.reason, ctx)


@decide.register
def _revoke_credentials(cmd: c.RevokeCredentials, view: LedgerView, ctx: Context) -> list[Event]:
    """The named things still live, each of which the actor must be allowed to withdraw as
    its own removal would: one the actor may not withdraw refuses the whole command with
    that removal's message, so that no one believes more was withdrawn than was. Issuer
    trusts, webhooks and endpoint trusts are decided by their own commands' decisions
    (``UntrustIssuer``, ``DeleteWebhook``, ``UntrustEndpoint``), called here, never
    restated. The ids come from a preview read a moment before: one withdrawn or expired
    since is skipped (as the bulk ``ids`` criterion skips it), and nothing live at all is
    ``NotFound``."""
    tokens = [
        managed_token(view, ctx, token.token_id, None)
        for token in _live(view.token, cmd.token_ids, ctx)
    ]
    clients = [
        managed_credential(view, ctx, credential.client_id, None)
        for credential in _live(view.client_credential, cmd.client_ids, ctx)
    ]
    s3 = _live(view.s3_credential, cmd.access_key_ids, ctx)
    for credential in s3:
        s3_credentials_manager(view, ctx, credential.account_id)
    removals = [decide(removal, view, ctx) for removal in _removals(cmd, view, ctx)]
    if not (tokens or clients or s3 or removals):
        raise NotFound("none of what was named is live: nothing to withdraw")
    reason = RevocationReason.REQUESTED
    events = [
        *_revoke(view, tokens, reason, cmd.reason, ctx),
        *(
            ClientCredentialRevoked(
                client_id=credential.client_id,
                account_id=credential.account_id,
                reason=reason,
                detail=cmd.reason,
            )
            for credential in clients
        ),
        *revoke_s3_credentials(s3, reason, cmd.reason),
        *(event for decided in removals for event in decided),
    ]
    return _once(events)


def _removals(cmd: c.RevokeCredentials, view: LedgerView, ctx: Context) -> Iterator[c.Command]:
    """The removal command of each named trust, webhook and endpoint trust still in force."""
    for trust_id in sorted(cmd.trust_ids):
        trust = view.issuer_trust(trust_id)
        if trust is not None and trust.live(ctx.now):
            yield c.build(
                c.UntrustIssuer,
                account_id=trust.account_id,
                issuer=trust.issuer,
                subject=trust.subject,  # this trust alone: one per issuer and subject is live
                reason=cmd.reason,
            )
    for webhook_id in sorted(cmd.webhook_ids):
        webhook = view.webhook(webhook_id)
        if webhook is not None and not webhook.deleted:
            yield c.build(c.DeleteWebhook, webhook_id=webhook_id)
    for account_id, endpoint_id in sorted(cmd.endpoint_trusts):
        trusted = {t.endpoint_id for t in view.trusted_endpoints_of(account_id)}
        if endpoint_id in trusted:
            yield c.build(
                c.UntrustEndpoint, account_id=account_id, endpoint=endpoint_id, reason=cmd.reason
            )


def _once(events: list[Event]) -> list[Event]:
    """``events`` without a second withdrawal of the same thing: S3 credentials named and
    also held at an endpoint taken off the trusted list are revoked once, as named."""
    seen: set[tuple[str, str]] = set()
    kept: list[Event] = []
    for event in events:
        key = _withdrawn_key(event)
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
        kept.append(event)
    return kept


def _withdrawn_key(event: Event) -> tuple[str, str] | None:
    for name in ("token_id", "client_id", "access_key_id", "trust_id", "webhook_id"):
        value = getattr(event, name, None)
        if isinstance(value, str):
            return type(event).__name__, value
    return None


def withdrawal_refusal(cmd: c.RevokeCredentials, view: LedgerView, ctx: Context) -> str | None:
    """Why the actor may not run ``cmd`` (the decision's own refusal), or None: what a
    preview says of each thing it would not withdraw."""
    try:
        decide(cmd, view, ctx)
    except (PermissionDenied, NotFound) as refused:
        return str(refused)
    return None


def _live(
    look_up: Callable[[str], Credential | None], ids: frozenset[str], ctx: Context
) -> list[Credential]:
    """The credentials of ``ids`` that exist and are live now, by id."""
    found = (look_up(credential_id) for credential_id in sorted(ids))
    return [
        credential for credential in found if credential is not None and credential.live(ctx.now)
    ]
