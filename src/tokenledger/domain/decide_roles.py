"""Decisions on roles as Element AI uses them: a role's keys, its policies, its deletion.

A role key is a ledger token of kind ``role`` whose principal is the role (``ORG:ROLE``,
``model.role_principal``). It records no grants of its own: whenever it is verified it may do
what its role grants at that moment (``authority.answer_token``), so a policy added or
removed changes what every key of the role may do at its next verification, and deleting the
role revokes its keys, each with its own ``TokenRevoked`` in the same command.

Who may do each: whoever may manage the org's roles (``authority.authorise_role_management``,
the rule ``CreateRole`` follows). Registered on ``decide`` (``domain.decide`` imports this
module).
"""

from __future__ import annotations

from datetime import datetime

from tokenledger.domain import commands as c
from tokenledger.domain.authority import authorise_role_management
from tokenledger.domain.decide import (
    Context,
    _live,
    _normalise,
    _require_org,
    _revoke,
    decide,
    require_role_grant,
)
from tokenledger.domain.events import (
    Event,
    RevocationReason,
    RoleDeleted,
    RolePolicyAdded,
    RolePolicyRemoved,
    TokenIssued,
)
from tokenledger.domain.model import PREDEFINED_ROLES, LedgerView, TokenView, role_principal
from tokenledger.domain.org_policy import within_policy
from tokenledger.domain.permissions import Grant, Level
from tokenledger.domain.secrets import TokenKind
from tokenledger.errors import Conflict, NotFound, ValidationError

__all__ = ["issue_role_key", "managed_role"]


def managed_role(view: LedgerView, ctx: Context, org: str, role: str) -> tuple[Grant, ...]:
    """The grants of ``org``'s own role ``role``, for whoever may manage the org's roles.
    The predefined roles (admin, auditor, member) are not changed, deleted or given keys."""
    authorise_role_management(view, ctx.actor, org, ctx.now)
    _require_org(view, org)
    if role in PREDEFINED_ROLES:
        raise ValidationError(
            f"role {role} is predefined: create a role of your own for keys and policies"
        )
    grants = view.role(org, role)
    if grants is None:
        raise NotFound(f"no role {role} in org {org}")
    return grants


def _live_keys(view: LedgerView, org: str, role: str, ctx: Context) -> list[TokenView]:
    return _live(view.tokens_of(role_principal(org, role)), ctx)


def _refuse_admin(grants: tuple[Grant, ...], org: str, role: str) -> None:
    """A role key never expires, and a long-lived token never holds admin: a role that grants
    admin has no keys, and a role with keys is never granted admin."""
    admin = [g for g in grants if g.rank is Level.ADMIN]
    if admin:
        raise ValidationError(
            f"role {role} of org {org} grants {admin[0]}: a role key never expires, and "
            "long-lived admin tokens are refused"
        )


@decide.register
def _issue_role_key(cmd: c.IssueRoleKey, view: LedgerView, ctx: Context) -> list[Event]:
    return issue_role_key(cmd, view, ctx)


def issue_role_key(
    cmd: c.IssueRoleKey,
    view: LedgerView,
    ctx: Context,
    *,
    replacing: str | None = None,
    expires_at: datetime | None = None,
) -> list[Event]:
    """Issuing a role key, every check included. A key never expires unless the org's policy
    bounds its kind, or a rotation gives it its predecessor's lifetime (``expires_at``,
    chosen, as ``replacing``'s successor)."""
    if ctx.mint is None:
        raise TypeError("issuing a role key needs a mint")
    grants = managed_role(view, ctx, cmd.org, cmd.role)
    _refuse_admin(grants, cmd.org, cmd.role)
    expires_at = within_policy(
        view,
        orgs=(cmd.org,),
        principal=role_principal(cmd.org, cmd.role),
        kind=TokenKind.ROLE.value,
        grants=grants,
        now=ctx.now,
        expires_at=expires_at,
        chosen=replacing is not None,
        replacing=replacing,
    )
    token_id, secret_hash = ctx.mint(TokenKind.ROLE)
    return [
        TokenIssued(
            token_id=token_id,
            principal=role_principal(cmd.org, cmd.role),
            kind=TokenKind.ROLE.value,
            secret_hash=secret_hash,
            grants=(),
            name=cmd.name,
            issued_at=ctx.now,
            expires_at=expires_at,
            parent_id=None,
            issued_by=ctx.actor.token_id,
        )
    ]


@decide.register
def _revoke_role_key(cmd: c.RevokeRoleKey, view: LedgerView, ctx: Context) -> list[Event]:
    managed_role(view, ctx, cmd.org, cmd.role)
    key = view.token(cmd.token_id)
    if key is None or key.principal != role_principal(cmd.org, cmd.role):
        raise NotFound(f"no key {cmd.token_id} of role {cmd.role} in org {cmd.org}")
    if key.revoked:
        raise Conflict(f"key {cmd.token_id} is already revoked")
    return _revoke(view, [key], RevocationReason.REQUESTED, cmd.reason, ctx)


@decide.register
def _add_role_policy(cmd: c.AddRolePolicy, view: LedgerView, ctx: Context) -> list[Event]:
    current = managed_role(view, ctx, cmd.org, cmd.role)
    grant = Grant(cmd.resource, cmd.level.label)
    require_role_grant(view, cmd.org, grant)
    if grant in current:
        raise Conflict(f"role {cmd.role} of org {cmd.org} already grants {grant}")
    if grant.rank is Level.ADMIN and _live_keys(view, cmd.org, cmd.role, ctx):
        _refuse_admin((grant,), cmd.org, cmd.role)
    grants = _normalise([*(g for g in current if g.resource != grant.resource), grant])
    return [RolePolicyAdded(org=cmd.org, role=cmd.role, grant=grant, grants=grants)]


@decide.register
def _remove_role_policy(cmd: c.RemoveRolePolicy, view: LedgerView, ctx: Context) -> list[Event]:
    current = managed_role(view, ctx, cmd.org, cmd.role)
    left = tuple(g for g in current if g.resource != cmd.resource)
    if len(left) == len(current):
        raise NotFound(f"role {cmd.role} of org {cmd.org} grants nothing on {cmd.resource}")
    return [RolePolicyRemoved(org=cmd.org, role=cmd.role, resource=cmd.resource, grants=left)]


@decide.register
def _delete_role(cmd: c.DeleteRole, view: LedgerView, ctx: Context) -> list[Event]:
    managed_role(view, ctx, cmd.org, cmd.role)
    holders = sorted(email for email, role in view.members(cmd.org).items() if role == cmd.role)
    if holders:
        raise Conflict(
            f"role {cmd.role} of org {cmd.org} is held by {len(holders)} member(s) "
            f"({holders[0]}...): give them another role first"
        )
    detail = f"role {cmd.role} of org {cmd.org} deleted by {ctx.actor.label}"
    keys = _live_keys(view, cmd.org, cmd.role, ctx)
    return [
        RoleDeleted(org=cmd.org, role=cmd.role),
        *_revoke(view, keys, RevocationReason.ROLE_DELETED, detail, ctx),
    ]
