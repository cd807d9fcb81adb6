"""``GET /v2/tokens/unused``: live tokens unused for a while (``tokenledger tokens unused``).

Its own router, included before ``/v2/tokens/{token_id}`` so that ``unused`` is not read as
a token id.
"""

from __future__ import annotations

from fastapi import APIRouter, Query

from tokenledger.api.deps import ERRORS, State
from tokenledger.api.schemas import TokenOut, token_out
from tokenledger.api.security import CurrentActor
from tokenledger.domain.commands import parse_duration

__all__ = ["router"]

router = APIRouter(prefix="/v2/tokens", tags=["tokens"], responses=ERRORS)


@router.get("/unused", response_model=list[TokenOut])
def unused_tokens(
    actor: CurrentActor,
    state: State,
    unused_for: str = Query(
        alias="for",
        max_length=40,
        description="Unused for at least this long (e.g. 90d); never used counts from issue.",
    ),
    org: str | None = Query(default=None, max_length=400, description="Only this org's."),
) -> list[TokenOut]:
    """Live tokens (not revoked, not expired) whose last use, or issue if never used, is
    older than ``for``; those the caller may see among their principals' tokens."""
    found = state.ledger.unused_tokens(actor, parse_duration(unused_for), org=org)
    now = state.ledger.now()
    return [token_out(token, now) for token in found]
