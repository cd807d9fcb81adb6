"""Decisions on logging in: an org's identity provider, sessions, and service accounts'
trust in external issuers (workload identity federation).

Registered on ``decide`` (``domain.decide`` imports this module). Who may do each is
decided in ``domain.authority``; the cascades that end sessions and withdraw trusts are
built by ``domain.cascades``.
"""

from __future__ import annotations

import hashlib

from tokenledger.domain import commands as c
from tokenledger.domain.authority import (
    authorise_provider_setting,
    authorise_session_management,
    require_login,
    require_remote_issuer,
    standing,
)
from tokenledger.domain.cascades import end_sessions
from tokenledger.domain.decide import (
    Context,
    _require_org,
    administered_account,
    decide,
    require_unsuspended,
)
from tokenledger.domain.events import (
    Event,
    IdentityProviderSet,
    IssuerTrusted,
    IssuerUntrusted,
    RevocationReason,
    SessionEnded,
    SessionRefreshed,
    SessionStarted,
)
from tokenledger.domain.model import MAX_SESSION_LIFETIME, LedgerView, ServiceAccountView
from tokenledger.errors import Conflict, NotFound, PermissionDenied

__all__ = ["trust_id_for"]


# -- the org's identity provider -----------------------------------------------------------


@decide.register
def _set_identity_provider(
    cmd: c.SetIdentityProvider, view: LedgerView, ctx: Context
) -> list[Event]:
    authorise_provider_setting(view, ctx.actor, cmd.org, cmd.issuer, ctx.now)
    _require_org(view, cmd.org)
    lifetime = int((cmd.session_lifetime or MAX_SESSION_LIFETIME).total_seconds())
    event = IdentityProviderSet(
        org=cmd.org,
        issuer=cmd.issuer,
        oidc_client_id=cmd.oidc_client_id,
        client_secret=cmd.client_secret,
        session_lifetime=lifetime,
    )
    current = view.identity_provider(cmd.org)
    if current is None:
        return [event]
    unchanged = (
        current.issuer == cmd.issuer
        and current.oidc_client_id == cmd.oidc_client_id
        and current.client_secret == cmd.client_secret
        and int(current.session_lifetime.total_seconds()) == lifetime
    )
    if unchanged:
        raise Conflict(f"org {cmd.org} already logs in through {cmd.issuer} so")
    if current.issuer == cmd.issuer and current.oidc_client_id == cmd.oidc_client_id:
        return [event]
    # Another provider (or another registration at it): the sessions it vouched for end,
    # since the org no longer trusts what started them.
    detail = f"org {cmd.org}'s identity provider changed to {cmd.issuer} by {ctx.actor.label}"
    return [
        event,
        *end_sessions(
            view.sessions_in_org(cmd.org), RevocationReason.PROVIDER_CHANGED, detail, ctx.now
        ),
    ]


# -- sessions -----------------------------------------------------------------------------


@decide.register
def _start_session(cmd: c.StartSession, view: LedgerView, ctx: Context) -> list[Event]:
    require_login(ctx.actor, cmd.email)
    provider = view.identity_provider(cmd.org)
    if provider is None or provider.issuer != cmd.issuer:
        raise PermissionDenied(f"org {cmd.org} does not log in through {cmd.issuer}")
    user = view.user(cmd.email)
    if user is None:
        raise PermissionDenied(
            f"{cmd.email} has no account in the ledger: ask an admin of {cmd.org}"
        )
    if user.disabled:
        raise PermissionDenied(f"{cmd.email} is disabled")
    if cmd.org not in view.memberships(cmd.email):
        raise PermissionDenied(f"{cmd.email} is not a member of org {cmd.org}")
    if view.session(cmd.session_id) is not None:
        # The session id is made from the one-time login code: the code was used before.
        raise Conflict("this login code was used already")
    return [
        SessionStarted(
            session_id=cmd.session_id,
            principal=cmd.email,
            org=cmd.org,
            issuer=cmd.issuer,
            subject=cmd.subject,
            refresh_hash=cmd.refresh_hash,
            started_at=ctx.now,
            expires_at=ctx.now + provider.session_lifetime,
        )
    ]


@decide.register
def _refresh_session(cmd: c.RefreshSession, view: LedgerView, ctx: Context) -> list[Event]:
    session = view.session_by_refresh_hash(cmd.presented_hash)
    if session is None:
        raise NotFound("unknown refresh token")
    require_login(ctx.actor, session.principal)
    if session.revoked:
        raise Conflict(f"session {session.session_id} has ended")
    if session.expired(ctx.now):
        raise Conflict(f"session {session.session_id} has expired: log in again")
    if session.refresh_hash != cmd.presented_hash:
        # A spent refresh token came back: whoever holds it, the session can no longer be
        # told from a thief's, so it ends (OAuth 2.0 Security BCP, section 4.14.2).
        return [
            SessionEnded(
                session_id=session.session_id,
                principal=session.principal,
                org=session.org,
                reason=RevocationReason.REFRESH_TOKEN_REUSED,
                detail="a spent refresh token was presented again",
            )
        ]
    if standing(view, session.principal) is None:
        raise Conflict(f"{session.principal} is disabled")
    return [
        SessionRefreshed(
            session_id=session.session_id,
            principal=session.principal,
            org=session.org,
            refresh_hash=cmd.refresh_hash,
            generation=session.generation + 1,
        )
    ]


@decide.register
def _end_session(cmd: c.EndSession, view: LedgerView, ctx: Context) -> list[Event]:
    session = view.session(cmd.session_id)
    if session is None or cmd.principal not in (None, session.principal):
        owner = f" of {cmd.principal}" if cmd.principal is not None else ""
        raise NotFound(f"no session {cmd.session_id}{owner}")
    authorise_session_management(view, ctx.actor, session, ctx.now)
    if session.revoked:
        raise Conflict(f"session {cmd.session_id} has ended already")
    own = ctx.actor.principal == session.principal
    return [
        SessionEnded(
            session_id=session.session_id,
            principal=session.principal,
            org=session.org,
            reason=RevocationReason.LOGGED_OUT if own else RevocationReason.REQUESTED,
            detail=cmd.reason,
        )
    ]


# -- workload identity federation -------------------------------------------------------


def trust_id_for(account_id: str, issuer: str, subject: str, created: str) -> str:
    """A trust's id, made from what it trusts and when it was made (so that trusting the
    same subjects again after a withdrawal is a new trust, not the old one back)."""
    digest = hashlib.sha256(f"{account_id}\n{issuer}\n{subject}\n{created}".encode()).hexdigest()
    return "wif_" + digest[:24]


def _trusting_account(
    cmd: c.TrustIssuer | c.UntrustIssuer, view: LedgerView, ctx: Context
) -> ServiceAccountView:
    return administered_account(
        view,
        ctx,
        cmd.account_id,
        "manage issuer trusts",
        f"manage the issuer trusts of {cmd.account_id}",
    )


@decide.register
def _trust_issuer(cmd: c.TrustIssuer, view: LedgerView, ctx: Context) -> list[Event]:
    """Authorised like issuing a client credential: what the trust obtains carries the
    account's whole permission."""
    account = require_unsuspended(_trusting_account(cmd, view, ctx))
    require_remote_issuer(ctx.actor, cmd.issuer)
    for trust in view.issuer_trusts_of(account.account_id):
        if not trust.revoked and (trust.issuer, trust.subject) == (cmd.issuer, cmd.subject):
            raise Conflict(
                f"{account.account_id} already trusts {cmd.issuer} for {cmd.subject} "
                f"({trust.trust_id})"
            )
    trust_id = trust_id_for(account.account_id, cmd.issuer, cmd.subject, ctx.now.isoformat())
    return [
        IssuerTrusted(
            trust_id=trust_id,
            account_id=account.account_id,
            issuer=cmd.issuer,
            subject=cmd.subject,
            audience=cmd.audience,
        )
    ]


@decide.register
def _untrust_issuer(cmd: c.UntrustIssuer, view: LedgerView, ctx: Context) -> list[Event]:
    account = _trusting_account(cmd, view, ctx)
    withdrawn = [
        trust
        for trust in view.issuer_trusts_of(account.account_id)
        if not trust.revoked and trust.issuer == cmd.issuer and cmd.subject in (None, trust.subject)
    ]
    if not withdrawn:
        subject = f" for {cmd.subject}" if cmd.subject is not None else ""
        raise NotFound(f"{account.account_id} does not trust {cmd.issuer}{subject}")
    return [
        IssuerUntrusted(
            trust_id=trust.trust_id,
            account_id=trust.account_id,
            reason=RevocationReason.REQUESTED,
            detail=cmd.reason,
        )
        for trust in sorted(withdrawn, key=lambda t: t.trust_id)
    ]
