"""Which token answers an event can change: what a process following the log drops.

A token's answer (``authority.answer_token``) reads the token itself, what obtained it
(an access token's session, client credential or issuer trust) and its principal's
standing: the user's grants, memberships and roles, or the service account's permission.
An event that changes only one token, or only one principal's standing, changes only the
answers about that token or that principal's tokens; an event that can move grants for
many principals at once (an org, a role, a resource, a grant) may change any answer.

The table below is written out by event type on purpose: a type missing from it (a new
event) changes every answer, so forgetting it costs cache hits, never a stale answer.
"""

from __future__ import annotations

from typing import NamedTuple

from tokenledger.domain import events as e

__all__ = ["EVERY_ANSWER", "NO_ANSWER", "Affected", "answers_affected"]


class Affected(NamedTuple):
    """``everything``, or the answers naming one of ``ids`` (a token id or a principal)."""

    everything: bool
    ids: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.everything or bool(self.ids)


EVERY_ANSWER = Affected(everything=True)
NO_ANSWER = Affected(everything=False)

# Events that change no kept answer: a new token's or session's own answers were never
# asked for (an unknown secret's answer is never kept), and the data plane's endpoints and
# S3 credentials are judged elsewhere (their effects on tokens are TokenRevoked events), and
# webhooks answer nothing about tokens.
_NOTHING: frozenset[type[e.Event]] = frozenset(
    {
        e.TokenIssued,
        e.ClientCredentialIssued,
        e.SessionStarted,
        e.IssuerTrusted,
        e.EndpointCreated,
        e.EndpointDeleted,
        e.EndpointTrusted,
        e.EndpointUntrusted,
        e.S3CredentialIssued,
        e.S3CredentialRevoked,
        # A policy changes what may be issued, never a token's answer: capping a token's
        # expiry is a TokenExpiryShortened of its own.
        e.OrgPolicySet,
        e.OrgPolicyCleared,
        e.WebhookCreated,
        e.WebhookDeleted,
        e.WebhookSecretRotated,
        # A recorded use changes when a credential was last used, never its answer.
        e.TokenUsed,
    }
)


def answers_affected(event: e.Event) -> Affected:
    """The answers ``event`` may change."""
    kind = type(event)
    if kind in _NOTHING:
        return NO_ANSWER
    if isinstance(
        event,
        e.TokenRevoked | e.TokenDisabled | e.TokenEnabled | e.TokenRotated | e.TokenExpiryShortened,
    ):
        # A cascade records one event per token, children included; an expiry brought forward
        # is one event per token too, and a kept answer must not outlive it.
        return Affected(False, (event.token_id,))
    if isinstance(event, e.UserDisabled):
        return Affected(False, (event.email,))
    if isinstance(
        event,
        e.ServiceAccountPermissionMoved
        | e.ServiceAccountPermissionLevelChanged
        | e.ServiceAccountDeleted
        | e.ServiceAccountDisabled
        | e.ServiceAccountEnabled
        | e.ClientCredentialRevoked
        | e.ClientCredentialDisabled
        | e.ClientCredentialEnabled
        | e.ClientCredentialRotated
        | e.ClientCredentialExpiryShortened
        | e.IssuerUntrusted,
    ):
        # The account's standing, or what obtained its access tokens.
        return Affected(False, (event.account_id,))
    if isinstance(event, e.SessionRefreshed | e.SessionEnded):
        # What obtained the principal's access tokens from this session.
        return Affected(False, (event.principal,))
    return EVERY_ANSWER
