"""The decisions on revoking many credentials in one command: tokens by filter (``tokens
revoke --where``) and named tokens, client credentials and S3 credentials together (what
``audit blast-radius --revoke`` runs).

Registered on ``decide`` (``domain.decide`` imports this module). Which tokens a filter
revokes is ``revocable_tokens`` (``domain.token_filter``): the preview a caller is shown
lists the same. Whether the actor may revoke one named credential is the single
revocation's own check (``managed_token``, ``managed_credential``,
``s3_credentials_manager``), so both ways of revoking refuse alike.
"""

from __future__ import annotations

from collections.abc import Callable
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
from tokenledger.errors import NotFound

__all__: list[str] = []

Credential = TypeVar("Credential", TokenView, ClientCredentialView, S3CredentialView)


@decide.register
def _revoke_where(cmd: c.RevokeTokensWhere, view: LedgerView, ctx: Context) -> list[Event]:
    """One ``TokenRevoked`` per selected token, then each token derived from them (as every
    revocation cascades); all or nothing."""
    matched = revocable_tokens(view, ctx.actor, cmd.where.token_filter(), ctx.now)
    return _revoke(view, matched, RevocationReason.REQUESTED, cmd.reason, ctx)


@decide.register
def _revoke_credentials(cmd: c.RevokeCredentials, view: LedgerView, ctx: Context) -> list[Event]:
    """The named credentials still live, each of which the actor must be allowed to revoke
    as its own revocation would: one the actor may not revoke refuses the whole command with
    that revocation's message, so that no one believes more was revoked than was. The ids
    come from a preview read a moment before: one revoked or expired since is skipped (as
    the bulk ``ids`` criterion skips it), and nothing live at all is ``NotFound``."""
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
    if not (tokens or clients or s3):
        raise NotFound("none of the credentials named is live: nothing to revoke")
    reason = RevocationReason.REQUESTED
    return [
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
    ]


def _live(
    look_up: Callable[[str], Credential | None], ids: frozenset[str], ctx: Context
) -> list[Credential]:
    """The credentials of ``ids`` that exist and are live now, by id."""
    found = (look_up(credential_id) for credential_id in sorted(ids))
    return [
        credential for credential in found if credential is not None and credential.live(ctx.now)
    ]
