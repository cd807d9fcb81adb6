"""``tokenledger users``: people, identified by their email address."""

from __future__ import annotations

import click

from tokenledger.cli.app import CliContext
from tokenledger.cli.dry_run import dry_run_option
from tokenledger.cli.grants import org_name
from tokenledger.cli.output import echo_json
from tokenledger.cli.tokens import echo_revoked
from tokenledger.domain.model import UserView

__all__ = ["users"]


@click.group()
def users() -> None:
    """Create, disable and list users."""


@users.command("create")
@click.argument("email")
@click.option("--name", help="The user's display name.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def create_command(obj: CliContext, email: str, name: str | None, as_json: bool) -> None:
    """Create the user EMAIL."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    command = c.build(c.CreateUser, email=email, name=name)
    result = obj.execute(command)
    if as_json:
        echo_json(
            {
                "id": command.email,
                "email": command.email,
                "name": command.name,
                "correlation_id": result.correlation_id,
            }
        )
    else:
        click.echo(f"created user {command.email}")


@users.command("disable")
@click.argument("email")
@click.option("--reason", help="Why (recorded in the log).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def disable_command(obj: CliContext, email: str, reason: str | None, as_json: bool) -> None:
    """Disable the user EMAIL and revoke all their tokens."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    command = c.build(c.DisableUser, email=email, reason=reason)
    result = obj.execute(command)
    if as_json:
        echo_json(
            {
                "id": command.email,
                "revoked": result.revoked,
                "correlation_id": result.correlation_id,
            }
        )
    else:
        click.echo(f"disabled user {command.email}")
        echo_revoked(result.revoked)


def _user_dict(user: UserView) -> dict[str, object]:
    return {
        "id": user.email,
        "email": user.email,
        "name": user.name,
        "disabled": user.disabled,
        "created_at": user.created_at,
        "account_id": user.account_id,
    }


@users.command("list")
@click.option("--org", help="Only the members of this org.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def list_command(obj: CliContext, org: str | None, as_json: bool) -> None:
    """Every user (operator only), or the members of --org."""
    found = obj.ledger().list_users(obj.actor(), org_name(org) if org is not None else None)
    if as_json:
        echo_json([_user_dict(u) for u in found])
        return
    for user in found:
        state = "  (disabled)" if user.disabled else ""
        name = f"  {user.name}" if user.name else ""
        account = f"  account {user.account_id}" if user.account_id else ""
        click.echo(f"{user.email}{name}{account}{state}")
