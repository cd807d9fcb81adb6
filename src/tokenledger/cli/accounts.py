"""``tokenledger accounts``: Dyff's account management words.

A Dyff account is a user here, named by its email address, that ``accounts create`` gives
an account id (32 hexadecimal digits). The id names the user wherever a token's principal
is named (``tokens create -i ID``, a grant config's ``account``). Who may create one is who
may create a user.
"""

from __future__ import annotations

import click

from tokenledger.cli.app import CliContext
from tokenledger.cli.dry_run import dry_run_option
from tokenledger.cli.grants import org_name
from tokenledger.cli.output import echo_json
from tokenledger.domain.model import UserView

__all__ = ["accounts"]


@click.group()
def accounts() -> None:
    """Create and list Dyff-style accounts (users with an account id)."""


@accounts.command("create")
@click.option("-n", "--name", "email", required=True, help="The account's name: an email address.")
@click.option("--display-name", help="The user's display name.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def create_command(obj: CliContext, email: str, display_name: str | None, as_json: bool) -> None:
    """Create the account NAME (a user) and print its new account id."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only
    from tokenledger.domain.events import UserCreated

    command = c.build(c.CreateAccount, email=email, name=display_name)
    result = obj.execute(command)
    (created,) = [e for e in result.events if isinstance(e, UserCreated)]
    if as_json:
        echo_json(
            {
                "id": created.account_id,
                "name": created.email,
                "display_name": created.name,
                "correlation_id": result.correlation_id,
            }
        )
    else:
        click.echo(f"created account: '{created.email}' ({created.account_id})")


def _account_dict(user: UserView) -> dict[str, object]:
    return {
        "id": user.account_id,
        "name": user.email,
        "display_name": user.name,
        "disabled": user.disabled,
        "created_at": user.created_at,
    }


@accounts.command("list")
@click.option("--org", help="Only the members of this org.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def list_command(obj: CliContext, org: str | None, as_json: bool) -> None:
    """Every account (operator only), or those among the members of --org."""
    found = obj.ledger().list_users(obj.actor(), org_name(org) if org is not None else None)
    listed = [user for user in found if user.account_id is not None]
    if as_json:
        echo_json([_account_dict(user) for user in listed])
        return
    for user in listed:
        state = "  (disabled)" if user.disabled else ""
        click.echo(f"'{user.email}' ({user.account_id}){state}")
