"""``/v2/orgs``: organizations, their members and their roles."""

from __future__ import annotations

from fastapi import APIRouter, Response

from tokenledger.api.deps import ERRORS, Correlation, State, command_fields, command_out, run
from tokenledger.api.schemas import (
    CommandOut,
    CreateOrgIn,
    CreateRoleIn,
    MemberIn,
    MemberOut,
    OrgOut,
    RoleOut,
    grants_out,
)
from tokenledger.api.security import CurrentActor
from tokenledger.domain import commands as c

__all__ = ["router"]

router = APIRouter(prefix="/v2/orgs", tags=["orgs"], responses=ERRORS)


class CreatedOrgOut(OrgOut, CommandOut):
    pass


class ChangedMemberOut(MemberOut, CommandOut):
    pass


class CreatedRoleOut(RoleOut, CommandOut):
    pass


@router.post("", status_code=201, response_model=CreatedOrgOut)
def create_org(
    body: CreateOrgIn,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
) -> CreatedOrgOut:
    """Create an organization (an operator's right: over HTTP this answers 403)."""
    command = c.build(c.CreateOrg, org=body.name)
    result = run(state, command, actor, correlation, response)
    return CreatedOrgOut(id=command.org, **command_fields(result))


@router.get("", response_model=list[OrgOut])
def list_orgs(actor: CurrentActor, state: State) -> list[OrgOut]:
    """The organizations the token may read."""
    return [OrgOut(id=name) for name in state.ledger.list_orgs(actor)]


@router.get("/{org}/members", response_model=list[MemberOut])
def list_members(org: str, actor: CurrentActor, state: State) -> list[MemberOut]:
    return [
        MemberOut(org=org, email=email, role=role)
        for email, role in state.ledger.members(actor, org).items()
    ]


@router.put("/{org}/members/{email}", response_model=ChangedMemberOut)
def put_member(
    org: str,
    email: str,
    body: MemberIn,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
) -> ChangedMemberOut:
    """Add a user to the org with a role, or change their role there."""
    command = c.build(c.AddMember, org=org, email=email, role=body.role)
    result = run(state, command, actor, correlation, response)
    changed = result.outcome.role_change
    return ChangedMemberOut(
        org=command.org,
        email=command.email,
        role=command.role,
        previous_role=changed.previous_role if changed else None,
        **command_fields(result),
    )


@router.delete("/{org}/members/{email}", response_model=CommandOut)
def remove_member(
    org: str,
    email: str,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
) -> CommandOut:
    """Remove a member: their grants in the org go, their tokens for it are revoked."""
    command = c.build(c.RemoveMember, org=org, email=email)
    return command_out(run(state, command, actor, correlation, response))


@router.get("/{org}/roles", response_model=list[RoleOut])
def list_roles(org: str, actor: CurrentActor, state: State) -> list[RoleOut]:
    """The org's roles, predefined ones (admin, auditor, member) included."""
    return [
        RoleOut(id=f"{org}:{role}", org=org, role=role, grants=grants_out(grants))
        for role, grants in state.ledger.roles_of(actor, org).items()
    ]


@router.post("/{org}/roles", status_code=201, response_model=CreatedRoleOut)
def create_role(
    org: str,
    body: CreateRoleIn,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
) -> CreatedRoleOut:
    command = c.build(
        c.CreateRole,
        org=org,
        role=body.name,
        grants=[g.model_dump() for g in body.grants],
    )
    result = run(state, command, actor, correlation, response)
    grants = [g.to_grant() for g in command.grants]
    return CreatedRoleOut(
        id=f"{command.org}:{command.role}",
        org=command.org,
        role=command.role,
        grants=grants_out(grants),
        **command_fields(result),
    )
