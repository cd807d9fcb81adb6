"""Suspension over HTTP: ``POST .../disable`` and ``POST .../enable`` on a token
(``/v2/tokens/{id}``), a service account (``/v2/service_accounts/{id}``) and a client
credential (``/v2/service_accounts/{id}/credentials/{client_id}``; ``-`` for whichever
account holds it), as ``tokenledger ... disable/enable`` do. What they mean is decided in
``domain.decide_suspension``."""

from __future__ import annotations

from fastapi import APIRouter, Body, Response

from tokenledger.api.deps import ERRORS, Correlation, State, command_out, run
from tokenledger.api.routes.service_accounts import ANY_ACCOUNT
from tokenledger.api.schemas import CommandOut, DisableIn
from tokenledger.api.security import CurrentActor
from tokenledger.domain import commands as c

__all__ = ["router"]

router = APIRouter(tags=["suspension"], responses=ERRORS)

_NO_BODY = Body(default=None)


def _reason(body: DisableIn | None) -> str | None:
    return body.reason if body is not None else None


@router.post("/v2/tokens/{token_id}/disable", response_model=CommandOut)
def disable_token(
    token_id: str,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
    body: DisableIn | None = _NO_BODY,
) -> CommandOut:
    """Suspend a token and the tokens derived from it: they answer ``disabled`` until
    enabled. Nothing is revoked."""
    command = c.build(c.DisableToken, token_id=token_id, reason=_reason(body))
    return command_out(run(state, command, actor, correlation, response))


@router.post("/v2/tokens/{token_id}/enable", response_model=CommandOut)
def enable_token(
    token_id: str, actor: CurrentActor, state: State, correlation: Correlation, response: Response
) -> CommandOut:
    """Lift a token's suspension (and that of the tokens disabled with it); a token revoked
    or expired meanwhile stays so."""
    command = c.build(c.EnableToken, token_id=token_id)
    return command_out(run(state, command, actor, correlation, response))


@router.post("/v2/service_accounts/{account_id}/disable", response_model=CommandOut)
def disable_service_account(
    account_id: str,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
    body: DisableIn | None = _NO_BODY,
) -> CommandOut:
    """Suspend a service account: every credential of it answers ``disabled`` at once."""
    command = c.build(c.DisableServiceAccount, account_id=account_id, reason=_reason(body))
    return command_out(run(state, command, actor, correlation, response))


@router.post("/v2/service_accounts/{account_id}/enable", response_model=CommandOut)
def enable_service_account(
    account_id: str,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
) -> CommandOut:
    """Lift a service account's suspension."""
    command = c.build(c.EnableServiceAccount, account_id=account_id)
    return command_out(run(state, command, actor, correlation, response))


@router.post(
    "/v2/service_accounts/{account_id}/credentials/{client_id}/disable",
    response_model=CommandOut,
)
def disable_credential(
    account_id: str,
    client_id: str,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
    body: DisableIn | None = _NO_BODY,
) -> CommandOut:
    """Suspend a client credential: it obtains nothing, and its access tokens answer
    ``disabled``."""
    command = c.build(
        c.DisableClientCredential,
        client_id=client_id,
        reason=_reason(body),
        account_id=None if account_id == ANY_ACCOUNT else account_id,
    )
    return command_out(run(state, command, actor, correlation, response))


@router.post(
    "/v2/service_accounts/{account_id}/credentials/{client_id}/enable",
    response_model=CommandOut,
)
def enable_credential(
    account_id: str,
    client_id: str,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
) -> CommandOut:
    """Lift a client credential's suspension."""
    command = c.build(
        c.EnableClientCredential,
        client_id=client_id,
        account_id=None if account_id == ANY_ACCOUNT else account_id,
    )
    return command_out(run(state, command, actor, correlation, response))
