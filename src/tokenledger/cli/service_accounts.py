"""``tokenledger service-accounts``: non-human principals with one permission on one project."""

from __future__ import annotations

import click

from tokenledger.cli.app import CliContext
from tokenledger.cli.dry_run import dry_run_option
from tokenledger.cli.grants import org_name
from tokenledger.cli.lazy import LazyCommand, LazyGroup
from tokenledger.cli.output import echo_json
from tokenledger.cli.tokens import echo_revoked
from tokenledger.domain.model import ServiceAccountView
from tokenledger.domain.permissions import Grant

__all__ = ["service_accounts"]


def _permission(grant: Grant) -> dict[str, str]:
    return {"resource": grant.resource, "level": grant.level}


@click.group(
    "service-accounts",
    cls=LazyGroup,
    # The OAuth2 client credentials live with the signing keys (cli/keys.py).
    lazy_commands={
        "credentials": LazyCommand("tokenledger.cli.keys", "credentials"),
        # Workload identity federation (cli/trusts.py).
        "trust-issuer": LazyCommand("tokenledger.cli.trusts", "trust_issuer"),
        "trusts": LazyCommand("tokenledger.cli.trusts", "trusts"),
        "untrust-issuer": LazyCommand("tokenledger.cli.trusts", "untrust_issuer"),
        # The data plane's trusted endpoints (cli/data_plane.py).
        "trust-endpoint": LazyCommand("tokenledger.cli.data_plane", "trust_endpoint"),
        "trusted-endpoints": LazyCommand("tokenledger.cli.data_plane", "trusted_endpoints"),
        "untrust-endpoint": LazyCommand("tokenledger.cli.data_plane", "untrust_endpoint"),
        # Suspension (cli/suspension.py).
        "disable": LazyCommand("tokenledger.cli.suspension", "disable_account"),
        "enable": LazyCommand("tokenledger.cli.suspension", "enable_account"),
    },
)
def service_accounts() -> None:
    """Create, re-permission, delete and list service accounts."""


@service_accounts.command("create")
@click.argument("name")
@click.option("--org", required=True, help="The org the account belongs to.")
@click.option("--resource", required=True, help="The project (org/project) it may act on.")
@click.option("--level", required=True, help="Its level there: read, append, write or admin.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def create_command(
    obj: CliContext, name: str, org: str, resource: str, level: str, as_json: bool
) -> None:
    """Create the service account NAME in --org with one permission on a project."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    command = c.build(c.CreateServiceAccount, name=name, org=org, resource=resource, level=level)
    result = obj.execute(command)
    created = result.outcome.account_created
    assert created is not None  # a CreateServiceAccount records one
    if as_json:
        echo_json(
            {
                "id": created.account_id,
                "org": created.org,
                "name": created.name,
                "permission": _permission(created.permission),
                "correlation_id": result.correlation_id,
            }
        )
    else:
        click.echo(f"created service account {created.account_id} with {created.permission}")


@service_accounts.command("set-permission")
@click.argument("account_id", metavar="SA_ID")
@click.argument("resource")
@click.argument("level")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def set_permission_command(
    obj: CliContext, account_id: str, resource: str, level: str, as_json: bool
) -> None:
    """Give SA_ID its one permission: LEVEL on the project RESOURCE.

    Moving it to another project revokes all its tokens; changing only the level revokes none.
    """
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    command = c.build(
        c.SetServiceAccountPermission, account_id=account_id, resource=resource, level=level
    )
    result = obj.execute(command)
    change = result.outcome.permission_change
    assert change is not None  # a SetServiceAccountPermission records one
    moved = change.moved
    if as_json:
        echo_json(
            {
                "id": change.account_id,
                "previous": _permission(change.previous),
                "permission": _permission(change.permission),
                "moved": moved,
                "revoked": result.revoked,
                "correlation_id": result.correlation_id,
            }
        )
    else:
        verb = "moved" if moved else "changed"
        click.echo(f"{change.account_id}: {verb} {change.previous} -> {change.permission}")
        echo_revoked(result.revoked)


@service_accounts.command("delete")
@click.argument("account_id", metavar="SA_ID")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def delete_command(obj: CliContext, account_id: str, as_json: bool) -> None:
    """Delete SA_ID and revoke all its tokens."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    command = c.build(c.DeleteServiceAccount, account_id=account_id)
    result = obj.execute(command)
    if as_json:
        echo_json(
            {
                "id": command.account_id,
                "revoked": result.revoked,
                "correlation_id": result.correlation_id,
            }
        )
    else:
        click.echo(f"deleted service account {command.account_id}")
        echo_revoked(result.revoked)


def _account_dict(account: ServiceAccountView) -> dict[str, object]:
    return {
        "id": account.account_id,
        "org": account.org,
        "name": account.name,
        "permission": _permission(account.permission),
        "created_at": account.created_at,
        "disabled_at": account.disabled_at,
    }


@service_accounts.command("list")
@click.option("--org", help="Only this org's service accounts.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def list_command(obj: CliContext, org: str | None, as_json: bool) -> None:
    """The service accounts you may see (deleted ones are not shown)."""
    found = obj.ledger().service_accounts(obj.actor(), org_name(org) if org is not None else None)
    if as_json:
        echo_json([_account_dict(a) for a in found])
        return
    for account in found:
        suspended = "  (disabled)" if account.disabled else ""
        click.echo(f"{account.account_id}  {account.permission}{suspended}")
