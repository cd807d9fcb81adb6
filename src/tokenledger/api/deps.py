"""Shared pieces of the route modules: dependencies, running a command, error documentation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Response

from tokenledger.api.schemas import CommandOut, ErrorOut
from tokenledger.api.security import CORRELATION_HEADER, correlation_id
from tokenledger.api.state import ApiState, api_state
from tokenledger.domain import commands as c
from tokenledger.domain.model import Actor
from tokenledger.service import CommandResult

__all__ = ["ERRORS", "Correlation", "State", "command_out", "run"]

State = Annotated[ApiState, Depends(api_state)]
Correlation = Annotated[str | None, Depends(correlation_id)]

#: The error answers every authenticated call may give, for the OpenAPI document.
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Invalid input (the ledger's validation rules)."},
    401: {"model": ErrorOut, "description": "Missing, invalid, revoked or expired token."},
    403: {"model": ErrorOut, "description": "The token's effective grants do not allow this."},
    404: {"model": ErrorOut, "description": "No such org, user, resource, account or token."},
    409: {"model": ErrorOut, "description": "Contradicts the ledger's current state."},
    503: {"model": ErrorOut, "description": "The database is unreachable or not migrated."},
}


def run(
    state: ApiState,
    command: c.Command,
    actor: Actor,
    correlation: str | None,
    response: Response,
) -> CommandResult:
    """Execute ``command`` for ``actor``; the answer carries the correlation id as a header too."""
    result = state.ledger.execute(command, actor, correlation_id=correlation)
    response.headers[CORRELATION_HEADER] = result.correlation_id
    return result


def command_out(result: CommandResult) -> CommandOut:
    return CommandOut(
        correlation_id=result.correlation_id,
        revoked=result.revoked,
        revoked_client_ids=list(result.outcome.revoked_client_ids),
    )
