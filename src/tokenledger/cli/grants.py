"""``tokenledger grants``: a user's direct grants, and the helpers other commands share for them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import click

from tokenledger.cli.app import CliContext
from tokenledger.cli.common import checked
from tokenledger.cli.dry_run import dry_run_option
from tokenledger.cli.output import echo_json
from tokenledger.domain.names import check_name, check_principal, check_token_holder, shown
from tokenledger.domain.names import resource_path as _resource_path
from tokenledger.domain.permissions import Grant, Level
from tokenledger.errors import ValidationError

__all__ = [
    "grant_dicts",
    "grants",
    "grants_text",
    "org_name",
    "parse_level",
    "principal_id",
    "resource_path",
    "token_holder",
]


def principal_id(value: str) -> str:
    """A user's email (normalised) or a service-account id, checked like a command's field."""
    return checked(check_principal, value)


def token_holder(value: str) -> str:
    """Whose tokens: a user's email, a service account id, or a role (``ORG:ROLE``)."""
    return checked(check_token_holder, value)


def resource_path(value: str) -> str:
    """A path, or a URN (urn:tokenledger:ORG:...), as its path."""
    return checked(_resource_path, value)


def org_name(value: str) -> str:
    return checked(lambda v: check_name(v, "org name"), value)


def parse_level(text: str) -> Level:
    try:
        return Level.parse(text)
    except ValueError:
        names = ", ".join(level.label for level in Level)
        raise ValidationError(f"unknown level {shown(text)}: use one of {names}") from None


def grant_dicts(items: Iterable[Grant]) -> list[dict[str, str]]:
    return [{"resource": g.resource, "level": g.level} for g in items]


def grants_text(items: Iterable[Grant]) -> str:
    return ", ".join(str(g) for g in items) or "(none)"


@click.group()
def grants() -> None:
    """Grant users permissions on resources."""


@grants.command("set")
@click.argument("principal")
@click.argument("resource")
@click.argument("level")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def set_command(obj: CliContext, principal: str, resource: str, level: str, as_json: bool) -> None:
    """Give PRINCIPAL (a user) LEVEL on RESOURCE and everything below it (none removes it)."""
    from tokenledger.domain import commands as c  # pydantic loads with a command, not --help

    command = c.build(c.SetGrant, principal=principal, resource=resource, level=level)
    result = obj.execute(command)
    if as_json:
        echo_json(
            {
                "principal": command.principal,
                "resource": command.resource,
                "level": command.level.label,
                "correlation_id": result.correlation_id,
            }
        )
    else:
        click.echo(f"{command.principal}: {command.level.label} on {command.resource}")


@grants.command("list")
@click.argument("principal")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def list_command(obj: CliContext, principal: str, as_json: bool) -> None:
    """PRINCIPAL's current grants and where each comes from (direct, a role, its permission)."""
    who = principal_id(principal)
    sources = obj.ledger().grants_of(obj.actor(), who)
    if as_json:
        rows: list[dict[str, Any]] = [
            {"resource": s.resource, "level": s.level, "source": s.source} for s in sources
        ]
        echo_json(rows)
        return
    if not sources:
        click.echo(f"{who}: no grants")
    for source in sources:
        click.echo(f"{source.level:<7} {source.resource}  ({source.source})")
