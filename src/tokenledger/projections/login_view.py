"""The ``LedgerView`` questions about logging in (identity providers, sessions, issuer
trusts), over their projection tables; ``SqlLedgerView`` answers them through this mixin."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tokenledger.domain.model import IdentityProviderView, IssuerTrustView, SessionView
from tokenledger.projections.schema import (
    identity_providers,
    issuer_trusts,
    session_refresh_tokens,
    sessions,
)
from tokenledger.store.driver import DriverStatement

__all__ = ["LoginViews"]


def _provider(row: Any) -> IdentityProviderView:
    org, issuer, oidc_client_id, client_secret, lifetime, set_at = row
    return IdentityProviderView(
        org=org,
        issuer=issuer,
        oidc_client_id=oidc_client_id,
        client_secret=bool(client_secret),
        session_lifetime=timedelta(seconds=lifetime),
        set_at=set_at,
    )


def _session(row: Any) -> SessionView:
    (
        session_id,
        principal,
        org,
        issuer,
        subject,
        started_at,
        expires_at,
        refresh_hash,
        generation,
        refreshed_at,
        revoked_at,
        revoked_reason,
        last_used_at,
    ) = row
    return SessionView(
        session_id=session_id,
        principal=principal,
        org=org,
        issuer=issuer,
        subject=subject,
        started_at=started_at,
        expires_at=expires_at,
        refresh_hash=refresh_hash,
        generation=generation,
        refreshed_at=refreshed_at,
        revoked_at=revoked_at,
        revoked_reason=revoked_reason,
        last_used_at=last_used_at,
    )


def _trust(row: Any) -> IssuerTrustView:
    trust_id, account_id, issuer, subject, audience, created_at, revoked_at, reason = row
    return IssuerTrustView(
        trust_id=trust_id,
        account_id=account_id,
        issuer=issuer,
        subject=subject,
        audience=audience,
        created_at=created_at,
        expires_at=None,
        revoked_at=revoked_at,
        revoked_reason=reason,
    )


# A session is looked up on every call made with one of its access tokens.
_SESSION = DriverStatement(
    sa.select(sessions).where(sessions.c.session_id == sa.bindparam("session_id"))
)
_SESSION_BY_REFRESH_HASH = DriverStatement(
    sa.select(sessions)
    .join(session_refresh_tokens, session_refresh_tokens.c.session_id == sessions.c.session_id)
    .where(session_refresh_tokens.c.refresh_hash == sa.bindparam("refresh_hash"))
)
_TRUST = DriverStatement(
    sa.select(issuer_trusts).where(issuer_trusts.c.trust_id == sa.bindparam("trust_id"))
)


class LoginViews:
    connection: Connection

    def identity_provider(self, org: str) -> IdentityProviderView | None:
        query = sa.select(identity_providers).where(identity_providers.c.org == org)
        row = self.connection.execute(query).first()
        return None if row is None else _provider(row)

    def session(self, session_id: str) -> SessionView | None:
        row = _SESSION.first(self.connection, {"session_id": session_id})
        return None if row is None else _session(row)

    def session_by_refresh_hash(self, refresh_hash: str) -> SessionView | None:
        row = _SESSION_BY_REFRESH_HASH.first(self.connection, {"refresh_hash": refresh_hash})
        return None if row is None else _session(row)

    def sessions_of(self, principal: str) -> list[SessionView]:
        query = (
            sa.select(sessions)
            .where(sessions.c.principal == principal)
            .order_by(sessions.c.started_at, sessions.c.session_id)
        )
        return [_session(row) for row in self.connection.execute(query)]

    def sessions_in_org(self, org: str) -> list[SessionView]:
        query = (
            sa.select(sessions)
            .where(sessions.c.org == org)
            .order_by(sessions.c.started_at, sessions.c.session_id)
        )
        return [_session(row) for row in self.connection.execute(query)]

    def issuer_trust(self, trust_id: str) -> IssuerTrustView | None:
        row = _TRUST.first(self.connection, {"trust_id": trust_id})
        return None if row is None else _trust(row)

    def issuer_trusts_of(self, account_id: str) -> list[IssuerTrustView]:
        query = (
            sa.select(issuer_trusts)
            .where(issuer_trusts.c.account_id == account_id)
            .order_by(issuer_trusts.c.created_at, issuer_trusts.c.trust_id)
        )
        return [_trust(row) for row in self.connection.execute(query)]
