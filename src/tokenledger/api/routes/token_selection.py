"""Tokens selected by a filter: ``POST /v2/tokens/revoke`` (a revocation by filter, or its
preview with ``dry_run``) and ``GET /v2/tokens/expiring``.

Included before ``routes.tokens``, whose ``/v2/tokens/{token_id}`` would otherwise take
``expiring`` for a token id.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from tokenledger.api.deps import ERRORS, Correlation, State, command_out, run
from tokenledger.api.schemas import CommandOut, TokenOut, token_out
from tokenledger.api.security import CurrentActor
from tokenledger.domain import commands as c

__all__ = ["RevocationPreviewOut", "RevokeWhereIn", "router"]

router = APIRouter(prefix="/v2/tokens", tags=["tokens"], responses=ERRORS)


class RevokeWhereIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    where: dict[str, Any] = Field(
        description="At least one of principal, org, resource (a grant on it or below), "
        "issued_before (ISO 8601), unused_for (a duration such as 90d), name (a pattern: "
        "* and ?) and ids (a list of token ids); all must hold.",
        examples=[{"principal": "ci@acme.service.tokenledger", "name": "deploy-*"}],
    )
    reason: Annotated[str, Field(max_length=500)] | None = None
    dry_run: bool = Field(
        default=False, description="Only list what would be revoked; append nothing."
    )


class RevocationPreviewOut(BaseModel):
    dry_run: bool = True
    count: int = Field(description="How many live tokens match (tokens derived from them go too).")
    tokens: list[TokenOut]


@router.post("/revoke", response_model=CommandOut | RevocationPreviewOut)
def revoke_where(
    body: RevokeWhereIn,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
) -> CommandOut | RevocationPreviewOut:
    """Revoke every live token ``where`` selects, and every token derived from them, in one
    command (one correlation id, one event per token) — or, with ``dry_run``, list them.
    A match the caller may not revoke refuses the whole call (403); matching nothing is 404."""
    command = c.build(c.RevokeTokensWhere, where=body.where, reason=body.reason)
    if body.dry_run:
        matched = state.ledger.preview_revocation(actor, command.where)
        now = state.ledger.now()
        return RevocationPreviewOut(
            count=len(matched), tokens=[token_out(token, now) for token in matched]
        )
    return command_out(run(state, command, actor, correlation, response))


@router.get("/expiring", response_model=list[TokenOut])
def expiring(
    actor: CurrentActor,
    state: State,
    within: str = Query(max_length=40, description="A window such as 14d, 12h."),
    org: str | None = Query(default=None, max_length=400, description="Only tokens reaching it."),
) -> list[TokenOut]:
    """Live tokens the caller may see that expire within ``within``, soonest first."""
    found = state.ledger.expiring_tokens(actor, c.parse_duration(within), org=org)
    now = state.ledger.now()
    return [token_out(token, now) for token in found]
