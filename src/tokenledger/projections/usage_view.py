"""Reading unused tokens off the projections: the candidates ``domain.usage.unused_since``
then judges (the rule is there; this query only narrows the rows read)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tokenledger.domain.model import TokenView
from tokenledger.projections.schema import tokens
from tokenledger.projections.view import _token

__all__ = ["unused_candidates"]


def unused_candidates(connection: Connection, cutoff: datetime) -> list[TokenView]:
    """Unrevoked tokens last used (or, never used, issued) before ``cutoff``; by id."""
    last_active = sa.func.coalesce(tokens.c.last_used_at, tokens.c.issued_at)
    query = (
        sa.select(tokens)
        .where(tokens.c.revoked_at.is_(None), last_active < cutoff)
        .order_by(tokens.c.token_id)
    )
    return [_token(row) for row in connection.execute(query)]
