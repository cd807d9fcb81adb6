"""``/v2/orgs/{org}/roles/{role}``: a role's keys and policies, and its deletion (Element AI's
role tokens and role policies)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field, model_validator

from tokenledger.api.deps import (
    ERRORS,
    Correlation,
    State,
    command_fields,
    command_out,
    moment,
    run,
)
from tokenledger.api.schemas import CommandOut, Text, TokenOut, _In, token_out
from tokenledger.api.security import CurrentActor
from tokenledger.domain import commands as c
from tokenledger.domain.model import role_principal
from tokenledger.domain.names import resource_urn
from tokenledger.domain.permissions import Grant
from tokenledger.domain.policies import parse_policy, policy_resource, policy_text
from tokenledger.domain.state import issued_token
from tokenledger.errors import ValidationError

__all__ = ["router"]

router = APIRouter(prefix="/v2/orgs/{org}/roles/{role}", tags=["roles"], responses=ERRORS)


class RoleKeyIn(_In):
    name: Text | None = None


class IssuedRoleKeyOut(TokenOut, CommandOut):
    access: str = Field(description="The key's access id (its token id): public.")
    secret: str = Field(
        description="ACCESS:SECRET, what the key's holder presents (as a Bearer token). Shown "
        "once: the ledger keeps only its SHA-256 hash."
    )


class PolicyIn(_In):
    policy: Text | None = Field(
        default=None, description="Element's form: data:get@urn:tokenledger:acme:alpha"
    )
    resource: Text | None = None
    level: Text | None = None

    @model_validator(mode="after")
    def _one_form(self) -> PolicyIn:
        if (self.policy is None) == (self.resource is None or self.level is None):
            raise ValueError("give either policy, or resource and level")
        return self


class PolicyOut(BaseModel):
    policy: str
    resource: str
    urn: str
    level: str


class AddedPolicyOut(PolicyOut, CommandOut):
    pass


def policy_out(grant: Grant) -> PolicyOut:
    return PolicyOut(
        policy=policy_text(grant),
        resource=grant.resource,
        urn=resource_urn(grant.resource),
        level=grant.level,
    )


@router.delete("", response_model=CommandOut)
def delete_role(
    org: str,
    role: str,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
) -> CommandOut:
    """Delete the role; its keys are revoked with it (each revocation an event of its own)."""
    command = c.build(c.DeleteRole, org=org, role=role)
    return command_out(run(state, command, actor, correlation, response))


@router.post("/keys", status_code=201, response_model=IssuedRoleKeyOut)
def issue_role_key(
    org: str,
    role: str,
    body: RoleKeyIn,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
) -> IssuedRoleKeyOut:
    """A long-lived key acting with the role's grants as they stand when it is presented."""
    command = c.build(c.IssueRoleKey, org=org, role=role, name=body.name)
    result = run(state, command, actor, correlation, response)
    issued, secret = result.issued, result.secret
    assert issued is not None
    assert secret is not None
    key = issued_token(issued)
    out = token_out(key, issued.issued_at)
    return IssuedRoleKeyOut(
        **out.model_dump(), access=issued.token_id, secret=secret, **command_fields(result)
    )


@router.get("/keys", response_model=list[TokenOut])
def list_role_keys(
    org: str,
    role: str,
    actor: CurrentActor,
    state: State,
    all: bool = Query(default=False, description="Revoked keys too."),
    at: str | None = Query(
        default=None, max_length=64, description="As they stood at this past time."
    ),
) -> list[TokenOut]:
    """The role's keys; with ``at``, as they stood then (``tokens list --principal
    ORG:ROLE --at``: the keys are the tokens of the principal the role's keys act as)."""
    when = moment(at, "at")
    if when is None:
        keys = state.ledger.role_keys(actor, org, role, include_inactive=all)
    else:
        principal = role_principal(org, role)
        keys = state.ledger.tokens_of(actor, principal, include_inactive=all, at=when)
    now = when or state.ledger.now()
    return [token_out(key, now) for key in keys]


@router.delete("/keys/{access}", response_model=CommandOut)
def revoke_role_key(
    org: str,
    role: str,
    access: str,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
    reason: str | None = Query(default=None, max_length=500),
) -> CommandOut:
    command = c.build(c.RevokeRoleKey, org=org, role=role, token_id=access, reason=reason)
    return command_out(run(state, command, actor, correlation, response))


@router.post("/policies", status_code=201, response_model=AddedPolicyOut)
def add_role_policy(
    org: str,
    role: str,
    body: PolicyIn,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
) -> AddedPolicyOut:
    """Let the role (and so its keys, at their next verification) do more."""
    if body.policy is not None:
        grant = parse_policy(body.policy)
        resource, level = grant.resource, grant.level
    elif body.resource is not None and body.level is not None:
        resource, level = body.resource, body.level
    else:  # the body's validator leaves no other case
        raise ValidationError("give either policy, or resource and level")
    command = c.build(c.AddRolePolicy, org=org, role=role, resource=resource, level=level)
    result = run(state, command, actor, correlation, response)
    out = policy_out(Grant(command.resource, command.level.label))
    return AddedPolicyOut(**out.model_dump(), **command_fields(result))


@router.get("/policies", response_model=list[PolicyOut])
def list_role_policies(org: str, role: str, actor: CurrentActor, state: State) -> list[PolicyOut]:
    return [policy_out(grant) for grant in state.ledger.role_grants(actor, org, role)]


@router.delete("/policies/{policy:path}", response_model=CommandOut)
def delete_role_policy(
    org: str,
    role: str,
    policy: str,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
) -> CommandOut:
    """Withdraw what the role grants on a resource (named by a policy, a path or a URN)."""
    resource = policy_resource(policy)
    command = c.build(c.RemoveRolePolicy, org=org, role=role, resource=resource)
    return command_out(run(state, command, actor, correlation, response))
