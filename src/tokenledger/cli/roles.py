"""``tokenledger roles``: named sets of grants per org, their policies and their keys.

A role is named ``ORG:ROLE`` or, as Element AI names it, ``ORG.ACCOUNT.ROLE`` (the role
``ACCOUNT.ROLE`` of org ``ORG``); messages name it back the way it was typed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from tokenledger.cli.app import CliContext
from tokenledger.cli.dry_run import dry_run_option
from tokenledger.cli.grants import grant_dicts, grants_text, org_name
from tokenledger.cli.output import echo_json, format_timestamp
from tokenledger.cli.tokens import echo_revoked
from tokenledger.domain.names import RoleReference, role_reference
from tokenledger.errors import ValidationError

if TYPE_CHECKING:
    from tokenledger.domain.model import TokenView
    from tokenledger.domain.permissions import Grant

__all__ = ["roles"]

_JSON = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")


def _grant_spec(text: str) -> dict[str, str]:
    resource, sep, level = text.rpartition("=")
    if not sep or not resource or not level:
        raise ValidationError(f"invalid --grant {text[:40]!r}: expected RESOURCE=LEVEL")
    return {"resource": resource, "level": level}


def _role(text: str) -> RoleReference:
    """A role named with its org: ``ORG:ROLE`` or ``ORG.ACCOUNT.ROLE``."""
    try:
        found = role_reference(text)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    if found.org is None:
        raise ValidationError(
            f"name the role with its org: ORG:ROLE or ORG.ACCOUNT.ROLE, not {found.role}"
        )
    return found


def _org_of(found: RoleReference) -> str:
    assert found.org is not None  # _role names one
    return found.org


def _policy_dict(grant: Grant) -> dict[str, str]:
    from tokenledger.domain.names import resource_urn
    from tokenledger.domain.policies import policy_text

    return {
        "policy": policy_text(grant),
        "resource": grant.resource,
        "urn": resource_urn(grant.resource),
        "level": grant.level,
    }


@click.group()
def roles() -> None:
    """Create, list and delete roles, their policies and their keys (admin, auditor and
    member are predefined)."""


@roles.command("create")
@click.argument("org_or_role")
@click.argument("role", required=False)
@click.option(
    "--grant",
    "grant_texts",
    multiple=True,
    metavar="RESOURCE=LEVEL",
    help="A grant of the role (repeat for more; none: add policies later).",
)
@_JSON
@dry_run_option
@click.pass_obj
def create_command(
    obj: CliContext, org_or_role: str, role: str | None, grant_texts: tuple[str, ...], as_json: bool
) -> None:
    """Create a role: ORG ROLE, ORG:ROLE or ORG.ACCOUNT.ROLE, with the grants given (each
    inside ORG), or none."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    if role is not None:
        org, name, shown_as = org_or_role, role, f"{org_or_role}:{role}"
    else:
        found = _role(org_or_role)
        org, name, shown_as = _org_of(found), found.role, found.typed
    specs = [_grant_spec(text) for text in grant_texts]
    command = c.build(c.CreateRole, org=org, role=name, grants=specs)
    result = obj.execute(command)
    grants = [g.to_grant() for g in command.grants]
    if as_json:
        echo_json(
            {
                "id": f"{command.org}:{command.role}",
                "org": command.org,
                "role": command.role,
                "grants": grant_dicts(grants),
                "correlation_id": result.correlation_id,
            }
        )
    else:
        click.echo(f"created role {shown_as}: {grants_text(grants)}")


@roles.command("list")
@click.argument("org")
@_JSON
@click.pass_obj
def list_command(obj: CliContext, org: str, as_json: bool) -> None:
    """The roles of ORG, predefined ones included."""
    name = org_name(org)
    found = obj.ledger().roles_of(obj.actor(), name)
    if as_json:
        echo_json(
            [
                {"id": f"{name}:{role}", "org": name, "role": role, "grants": grant_dicts(grants)}
                for role, grants in found.items()
            ]
        )
        return
    for role, grants in found.items():
        click.echo(f"{role:<12} {grants_text(grants)}")


@roles.command("delete")
@click.argument("role")
@_JSON
@dry_run_option
@click.pass_obj
def delete_command(obj: CliContext, role: str, as_json: bool) -> None:
    """Delete ROLE; its keys are revoked with it."""
    from tokenledger.domain import commands as c

    found = _role(role)
    command = c.build(c.DeleteRole, org=_org_of(found), role=found.role)
    result = obj.execute(command)
    if as_json:
        echo_json(
            {
                "id": f"{command.org}:{command.role}",
                "revoked": result.revoked,
                "correlation_id": result.correlation_id,
            }
        )
        return
    click.echo(f"deleted role {found.typed}")
    echo_revoked(result.revoked)


# -- keys ----------------------------------------------------------------------------------


@roles.group("key")
def key() -> None:
    """A role's keys: long-lived tokens, presented as ACCESS:SECRET, that may do what the
    role grants when they are presented."""


@key.command("new")
@click.argument("role")
@click.option("--name", help="A display name for the key.")
@_JSON
@dry_run_option
@click.pass_obj
def key_new_command(obj: CliContext, role: str, name: str | None, as_json: bool) -> None:
    """Issue a key of ROLE and print it, once, as ACCESS:SECRET (e.g. for TOKENLEDGER_TOKEN)."""
    from tokenledger.domain import commands as c

    found = _role(role)
    command = c.build(c.IssueRoleKey, org=_org_of(found), role=found.role, name=name)
    result = obj.execute(command)
    issued, presented = result.issued, result.secret
    assert issued is not None  # IssueRoleKey issues one key, with its secret
    assert presented is not None
    if as_json:
        access, _, secret = presented.partition(":")
        echo_json(
            {
                "access": access,
                "secret": secret,
                "token": presented,
                "role": found.typed,
                "principal": issued.principal,
                "name": issued.name,
                "issued_at": issued.issued_at,
                "correlation_id": result.correlation_id,
            }
        )
        return
    # Only the key on stdout, so that TOKENLEDGER_TOKEN=$(tokenledger roles key new ...) works.
    click.echo(f"key {issued.token_id} of role {found.typed}: shown once, store it now", err=True)
    click.echo(presented)


def _key_dict(key: TokenView, now_status: str) -> dict[str, object]:
    return {
        "access": key.token_id,
        "principal": key.principal,
        "name": key.name,
        "status": now_status,
        "issued_at": key.issued_at,
        "revoked_at": key.revoked_at,
        "revoked_reason": key.revoked_reason,
        "disabled_at": key.disabled_at,
        "last_used": key.last_used_at,
    }


@key.command("list")
@click.argument("role")
@click.option("--all", "include_inactive", is_flag=True, help="Revoked keys too.")
@_JSON
@click.pass_obj
def key_list_command(obj: CliContext, role: str, include_inactive: bool, as_json: bool) -> None:
    """The keys of ROLE (never their secrets)."""
    found = _role(role)
    keys = obj.ledger().role_keys(
        obj.actor(), _org_of(found), found.role, include_inactive=include_inactive
    )
    now = obj.ledger().now()
    rows = [_key_dict(k, k.status(now)) for k in keys]
    if as_json:
        echo_json(rows)
        return
    if not keys:
        click.echo(f"role {found.typed}: no keys")
    for k in keys:
        status = f"revoked ({k.revoked_reason})" if k.revoked else k.status(now)
        label = f"  {k.name}" if k.name else ""
        click.echo(f"{k.token_id}  {status:<22} issued {format_timestamp(k.issued_at)}{label}")


@key.command("revoke")
@click.argument("role")
@click.argument("access")
@click.option("--reason", help="Why (recorded in the log).")
@_JSON
@dry_run_option
@click.pass_obj
def key_revoke_command(
    obj: CliContext, role: str, access: str, reason: str | None, as_json: bool
) -> None:
    """Revoke the key ACCESS (its tok_ id) of ROLE."""
    from tokenledger.cli.tokens import token_id_arg
    from tokenledger.domain import commands as c

    found = _role(role)
    token_id = token_id_arg(access, "key's access id")
    command = c.build(
        c.RevokeRoleKey, org=_org_of(found), role=found.role, token_id=token_id, reason=reason
    )
    result = obj.execute(command)
    if as_json:
        echo_json({"revoked": result.revoked, "correlation_id": result.correlation_id})
        return
    click.echo(f"revoked key {token_id} of role {found.typed}")


# -- policies ------------------------------------------------------------------------------


@roles.group("policy")
def policy() -> None:
    """A role's policies, in Element AI's form: data:get@RESOURCE (a path or a URN)."""


@policy.command("new")
@click.argument("role")
@click.argument("policy_text", metavar="POLICY")
@_JSON
@dry_run_option
@click.pass_obj
def policy_new_command(obj: CliContext, role: str, policy_text: str, as_json: bool) -> None:
    """Let ROLE (and so its keys) do what POLICY says, e.g. data:get@urn:tokenledger:acme:a."""
    from tokenledger.domain import commands as c
    from tokenledger.domain.permissions import Grant
    from tokenledger.domain.policies import parse_policy

    found = _role(role)
    grant = parse_policy(policy_text)
    command = c.build(
        c.AddRolePolicy,
        org=_org_of(found),
        role=found.role,
        resource=grant.resource,
        level=grant.level,
    )
    result = obj.execute(command)
    added = _policy_dict(Grant(command.resource, command.level.label))
    if as_json:
        echo_json({**added, "role": found.typed, "correlation_id": result.correlation_id})
        return
    click.echo(f"role {found.typed} now grants {added['level']} on {added['resource']}")


@policy.command("list")
@click.argument("role")
@_JSON
@click.pass_obj
def policy_list_command(obj: CliContext, role: str, as_json: bool) -> None:
    """The policies of ROLE."""
    found = _role(role)
    grants = obj.ledger().role_grants(obj.actor(), _org_of(found), found.role)
    rows = [_policy_dict(g) for g in grants]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo(f"role {found.typed}: no policies")
    for row in rows:
        click.echo(f"{row['policy']}  ({row['level']} on {row['resource']})")


@policy.command("delete")
@click.argument("role")
@click.argument("policy_text", metavar="POLICY")
@_JSON
@dry_run_option
@click.pass_obj
def policy_delete_command(obj: CliContext, role: str, policy_text: str, as_json: bool) -> None:
    """Withdraw what ROLE grants on a resource: POLICY is a policy, a path or a URN."""
    from tokenledger.domain import commands as c
    from tokenledger.domain.policies import policy_resource

    found = _role(role)
    resource = policy_resource(policy_text)
    command = c.build(c.RemoveRolePolicy, org=_org_of(found), role=found.role, resource=resource)
    result = obj.execute(command)
    if as_json:
        echo_json(
            {
                "resource": command.resource,
                "role": found.typed,
                "correlation_id": result.correlation_id,
            }
        )
        return
    click.echo(f"role {found.typed} no longer grants anything on {command.resource}")
