"""``tokenledger roles``: named sets of grants per org."""

from __future__ import annotations

import click

from tokenledger.cli.app import CliContext
from tokenledger.cli.grants import grant_dicts, grants_text, org_name
from tokenledger.cli.output import echo_json
from tokenledger.errors import ValidationError

__all__ = ["roles"]


def _grant_spec(text: str) -> dict[str, str]:
    resource, sep, level = text.rpartition("=")
    if not sep or not resource or not level:
        raise ValidationError(f"invalid --grant {text[:40]!r}: expected RESOURCE=LEVEL")
    return {"resource": resource, "level": level}


@click.group()
def roles() -> None:
    """Create and list roles (admin, auditor and member are predefined)."""


@roles.command("create")
@click.argument("org")
@click.argument("role")
@click.option(
    "--grant",
    "grant_texts",
    multiple=True,
    required=True,
    metavar="RESOURCE=LEVEL",
    help="A grant of the role (repeat for more).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def create_command(
    obj: CliContext, org: str, role: str, grant_texts: tuple[str, ...], as_json: bool
) -> None:
    """Create ROLE in ORG with the given grants (each inside ORG)."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    specs = [_grant_spec(text) for text in grant_texts]
    command = c.build(c.CreateRole, org=org, role=role, grants=specs)
    result = obj.ledger().execute(command, obj.actor())
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
        click.echo(f"created role {command.org}:{command.role}: {grants_text(grants)}")


@roles.command("list")
@click.argument("org")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
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
