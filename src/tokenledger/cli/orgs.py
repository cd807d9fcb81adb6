"""``tokenledger orgs``: organizations and their members."""

from __future__ import annotations

import click

from tokenledger.cli.app import CliContext
from tokenledger.cli.dry_run import dry_run_option
from tokenledger.cli.grants import org_name
from tokenledger.cli.lazy import LazyCommand, LazyGroup
from tokenledger.cli.output import echo_json
from tokenledger.cli.tokens import echo_revoked

__all__ = ["orgs"]


@click.group(
    cls=LazyGroup,
    # How the org's members log in (cli/identity.py).
    lazy_commands={
        "get": LazyCommand("tokenledger.cli.identity", "get_org"),
        "set-idp": LazyCommand("tokenledger.cli.identity", "set_idp"),
        # The org's token policy (cli/org_policies.py).
        "policy": LazyCommand("tokenledger.cli.org_policies", "policy"),
    },
)
def orgs() -> None:
    """Create organizations and manage their members."""


@orgs.command("create")
@click.argument("org")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def create_command(obj: CliContext, org: str, as_json: bool) -> None:
    """Create the organization ORG (its name is also the root of its resource paths)."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    command = c.build(c.CreateOrg, org=org)
    result = obj.execute(command)
    if as_json:
        echo_json({"id": command.org, "correlation_id": result.correlation_id})
    else:
        click.echo(f"created org {command.org}")


@orgs.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def list_command(obj: CliContext, as_json: bool) -> None:
    """The organizations you may see."""
    names = obj.ledger().list_orgs(obj.actor())
    if as_json:
        echo_json([{"id": name} for name in names])
    else:
        for name in names:
            click.echo(name)


@orgs.command("add-member")
@click.argument("org")
@click.argument("email")
@click.option("--role", default="member", show_default=True, help="The member's role in ORG.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def add_member_command(obj: CliContext, org: str, email: str, role: str, as_json: bool) -> None:
    """Make the user EMAIL a member of ORG (or change their role there)."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    command = c.build(c.AddMember, org=org, email=email, role=role)
    result = obj.execute(command)
    changed = result.outcome.role_change
    previous = changed.previous_role if changed else None
    if as_json:
        echo_json(
            {
                "org": command.org,
                "email": command.email,
                "role": command.role,
                "previous_role": previous,
                "correlation_id": result.correlation_id,
            }
        )
    elif previous is not None:
        click.echo(f"{command.email}: role in {command.org} changed {previous} -> {command.role}")
    else:
        click.echo(f"added {command.email} to {command.org} as {command.role}")


@orgs.command("remove-member")
@click.argument("org")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def remove_member_command(obj: CliContext, org: str, email: str, as_json: bool) -> None:
    """Remove EMAIL from ORG: their grants there go, their tokens for ORG are revoked."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    command = c.build(c.RemoveMember, org=org, email=email)
    result = obj.execute(command)
    if as_json:
        echo_json(
            {
                "org": command.org,
                "email": command.email,
                "revoked": result.revoked,
                "correlation_id": result.correlation_id,
            }
        )
    else:
        click.echo(f"removed {command.email} from {command.org}")
        echo_revoked(result.revoked)


@orgs.command("members")
@click.argument("org")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def members_command(obj: CliContext, org: str, as_json: bool) -> None:
    """The members of ORG and their roles."""
    members = obj.ledger().members(obj.actor(), org_name(org))
    if as_json:
        echo_json([{"email": email, "role": role} for email, role in members.items()])
    else:
        for email, role in members.items():
            click.echo(f"{email}  {role}")
