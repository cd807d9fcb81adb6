"""Reading unused tokens off the projections: the candidates ``domain.usage.unused_since``
then judges (the rule is there; this query only narrows the rows read)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tokenledger.domain.model import SERVICE_ACCOUNT_DOMAIN, TokenView
from tokenledger.projections.schema import token_grants, tokens
from tokenledger.projections.view import _token

__all__ = ["unused_candidates"]


def unused_candidates(
    connection: Connection, cutoff: datetime, org: str | None = None
) -> list[TokenView]:
    """Unrevoked tokens last used (or, never used, issued) before ``cutoff``, and, given
    ``org``, that may reach it (at least those ``domain.authority.token_orgs`` puts there: its
    service accounts' tokens, its roles' keys, tokens with a grant inside it); by id."""
    last_active = sa.func.coalesce(tokens.c.last_used_at, tokens.c.issued_at)
    conditions = [tokens.c.revoked_at.is_(None), last_active < cutoff]
    if org is not None:
        # LIKE patterns: a wildcard in the name only widens them; the rule decides.
        with_grant_inside = sa.select(token_grants.c.token_id).where(
            sa.or_(token_grants.c.resource == org, token_grants.c.resource.like(f"{org}/%"))
        )
        conditions.append(
            sa.or_(
                tokens.c.principal.like(f"%@{org}.{SERVICE_ACCOUNT_DOMAIN}"),
                tokens.c.principal.like(f"{org}:%"),
                tokens.c.token_id.in_(with_grant_inside),
            )
        )
    query = sa.select(tokens).where(*conditions).order_by(tokens.c.token_id)
    return [_token(row) for row in connection.execute(query)]
