"""``tokenledger grants``: a user's direct grants, and the helpers other commands share for them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import click
import pydantic

from tokenledger.cli.app import CliContext
from tokenledger.cli.output import echo_json
from tokenledger.domain import commands as c
from tokenledger.domain.names import shown
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
]

_PRINCIPAL: pydantic.TypeAdapter[str] = pydantic.TypeAdapter(c.PrincipalId)
_PATH: pydantic.TypeAdapter[str] = pydantic.TypeAdapter(c.ResourcePath)
_ORG: pydantic.TypeAdapter[str] = pydantic.TypeAdapter(c.OrgName)


def _validated(adapter: pydantic.TypeAdapter[str], value: str) -> str:
    try:
        return adapter.validate_python(value)
    except pydantic.ValidationError as exc:
        raise ValidationError(c.describe(exc)) from None


def principal_id(value: str) -> str:
    """A user's email (normalised) or a service-account id, checked like a command's field."""
    return _validated(_PRINCIPAL, value)


def resource_path(value: str) -> str:
    return _validated(_PATH, value)


def org_name(value: str) -> str:
    return _validated(_ORG, value)


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
@click.pass_obj
def set_command(obj: CliContext, principal: str, resource: str, level: str, as_json: bool) -> None:
    """Give PRINCIPAL (a user) LEVEL on RESOURCE and everything below it (none removes it)."""
    command = c.build(c.SetGrant, principal=principal, resource=resource, level=level)
    result = obj.ledger().execute(command, obj.actor())
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
