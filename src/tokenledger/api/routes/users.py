"""``/v2/users``: people, and the direct grants they hold."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from tokenledger.api.deps import ERRORS, Correlation, State, command_fields, command_out, run
from tokenledger.api.schemas import (
    CommandOut,
    CreateUserIn,
    DisableUserIn,
    GrantIn,
    GrantOut,
    GrantSourceOut,
    UserOut,
)
from tokenledger.api.security import CurrentActor
from tokenledger.domain import commands as c
from tokenledger.domain.events import UserCreated

__all__ = ["router"]

router = APIRouter(prefix="/v2/users", tags=["users"], responses=ERRORS)


class CreatedUserOut(UserOut, CommandOut):
    pass


class SetGrantOut(GrantOut, CommandOut):
    principal: str


@router.post("", status_code=201, response_model=CreatedUserOut)
def create_user(
    body: CreateUserIn,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
) -> CreatedUserOut:
    """Create a user (an operator, or an admin of some org); with ``account``, a Dyff-style
    account: the user is given an account id, in the answer's ``account_id``."""
    kind = c.CreateAccount if body.account else c.CreateUser
    command = c.build(kind, email=body.email, name=body.name)
    result = run(state, command, actor, correlation, response)
    (created,) = [e for e in result.events if isinstance(e, UserCreated)]
    return CreatedUserOut(
        id=created.email,
        email=created.email,
        name=created.name,
        disabled=False,
        created_at=result.records[0].recorded_at,
        account_id=created.account_id,
        **command_fields(result),
    )


@router.get("", response_model=list[UserOut])
def list_users(
    actor: CurrentActor,
    state: State,
    org: str | None = Query(default=None, max_length=400, description="Members of this org."),
) -> list[UserOut]:
    """The members of ``org`` (listing every user is an operator's right)."""
    return [
        UserOut(
            id=u.email,
            email=u.email,
            name=u.name,
            disabled=u.disabled,
            created_at=u.created_at,
            account_id=u.account_id,
        )
        for u in state.ledger.list_users(actor, org)
    ]


@router.post("/{user_id}/disable", response_model=CommandOut)
def disable_user(
    user_id: str,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
    body: DisableUserIn | None = None,
) -> CommandOut:
    """Disable a user (an operator's right) and revoke all their tokens."""
    reason = body.reason if body is not None else None
    command = c.build(c.DisableUser, email=user_id, reason=reason)
    return command_out(run(state, command, actor, correlation, response))


@router.get("/{user_id}/grants", response_model=list[GrantSourceOut])
def list_grants(user_id: str, actor: CurrentActor, state: State) -> list[GrantSourceOut]:
    """The user's grants and where each comes from (direct, or a role in an org)."""
    return [
        GrantSourceOut(resource=s.resource, level=s.level, source=s.source)
        for s in state.ledger.grants_of(actor, user_id)
    ]


@router.put("/{user_id}/grants", response_model=SetGrantOut)
def set_grant(
    user_id: str,
    body: GrantIn,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
) -> SetGrantOut:
    """Set the user's direct level on a resource (``none`` removes the grant)."""
    command = c.build(c.SetGrant, principal=user_id, resource=body.resource, level=body.level)
    result = run(state, command, actor, correlation, response)
    return SetGrantOut(
        principal=command.principal,
        resource=command.resource,
        level=command.level.label,
        **command_fields(result),
    )
