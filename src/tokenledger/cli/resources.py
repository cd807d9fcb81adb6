"""``tokenledger resources``: the tree of paths permissions are granted on."""

from __future__ import annotations

import click

from tokenledger.cli.app import CliContext
from tokenledger.cli.grants import resource_path
from tokenledger.cli.output import echo_json, format_timestamp
from tokenledger.cli.tokens import echo_revoked

__all__ = ["resources"]


@click.group()
def resources() -> None:
    """Create, delete and list resources (org/project/collection/dataset/object)."""


@resources.command("create")
@click.argument("path")
@click.option("--kind", help="The node's kind (default: project, collection, ... by depth).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def create_command(obj: CliContext, path: str, kind: str | None, as_json: bool) -> None:
    """Create the resource PATH; its parent must exist."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    command = c.build(c.CreateResource, path=path, kind=kind)
    result = obj.ledger().execute(command, obj.actor())
    created = result.outcome.resource_created
    assert created is not None  # a CreateResource records one
    if as_json:
        echo_json(
            {
                "id": created.path,
                "path": created.path,
                "kind": created.kind,
                "correlation_id": result.correlation_id,
            }
        )
    else:
        click.echo(f"created {created.kind} {created.path}")


@resources.command("delete")
@click.argument("path")
@click.option("--recursive", is_flag=True, help="Also delete everything below PATH.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def delete_command(obj: CliContext, path: str, recursive: bool, as_json: bool) -> None:
    """Delete PATH: grants on it go, every token with a grant on it or below is revoked."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    command = c.build(c.DeleteResource, path=path, recursive=recursive)
    result = obj.ledger().execute(command, obj.actor())
    deleted = list(result.outcome.resources_deleted)
    removed = [
        {"principal": e.principal, "resource": e.resource} for e in result.outcome.grants_removed
    ]
    if as_json:
        echo_json(
            {
                "id": command.path,
                "deleted": deleted,
                "grants_removed": removed,
                "revoked": result.revoked,
                "correlation_id": result.correlation_id,
            }
        )
        return
    click.echo(f"deleted {', '.join(deleted)}")
    if removed:
        click.echo(f"removed {len(removed)} grant(s)")
    echo_revoked(result.revoked)


#: What ``resources get --field`` prints (Element's ``data get --field urn``).
_FIELDS = ("id", "path", "urn", "kind", "created_at")


@resources.command("get")
@click.argument("path")
@click.option(
    "--field",
    type=click.Choice(_FIELDS),
    help="Print only this field of the resource (e.g. urn).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def get_command(obj: CliContext, path: str, field: str | None, as_json: bool) -> None:
    """One resource, named by its PATH or its URN (urn:tokenledger:ORG:PROJECT...)."""
    from tokenledger.domain.names import resource_urn
    from tokenledger.errors import NotFound

    wanted = resource_path(path)
    found = [r for r in obj.ledger().list_resources(obj.actor(), wanted) if r.path == wanted]
    if not found:
        raise NotFound(f"no resource {wanted} that you may read")
    resource = found[0]
    row = {
        "id": resource.path,
        "path": resource.path,
        "urn": resource_urn(resource.path),
        "kind": resource.kind,
        "created_at": resource.created_at,
    }
    if field is not None:
        value = row[field]
        click.echo(format_timestamp(value) if field == "created_at" else value)  # type: ignore[arg-type]
    elif as_json:
        echo_json(row)
    else:
        click.echo(f"{resource.path}  ({resource.kind})  {row['urn']}")


@resources.command("list")
@click.argument("prefix", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def list_command(obj: CliContext, prefix: str | None, as_json: bool) -> None:
    """The resources you may see, or only PREFIX and those below it."""
    found = obj.ledger().list_resources(
        obj.actor(), resource_path(prefix) if prefix is not None else None
    )
    if as_json:
        echo_json(
            [
                {"id": r.path, "path": r.path, "kind": r.kind, "created_at": r.created_at}
                for r in found
            ]
        )
        return
    for resource in found:
        click.echo(f"{resource.path}  ({resource.kind})")
