"""``tokenledger resources``: the tree of paths permissions are granted on, with each
resource's license and data class."""

from __future__ import annotations

from datetime import datetime

import click

from tokenledger.cli.app import CliContext
from tokenledger.cli.common import parse_timestamp
from tokenledger.cli.dry_run import dry_run_option
from tokenledger.cli.grants import resource_path
from tokenledger.cli.output import echo_json, format_timestamp
from tokenledger.cli.tokens import echo_revoked
from tokenledger.domain.model import ResourceView

__all__ = ["resources"]


@click.group()
def resources() -> None:
    """Resources (org/project/...): create, delete, list, show; set license and data class."""


_LICENSE_HELP = "An SPDX-style license identifier (CC-BY-4.0, MIT, proprietary ...)."
_DATA_CLASS_HELP = "public, private, workspace or confidential (or Aruna's DATA_CLASS_PUBLIC ...)."


@resources.command("create")
@click.argument("path")
@click.option("--kind", help="The node's kind (default: project, collection, ... by depth).")
@click.option("--license", "license_", metavar="LICENSE", help=_LICENSE_HELP)
@click.option("--data-class", metavar="CLASS", help=_DATA_CLASS_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def create_command(
    obj: CliContext,
    path: str,
    kind: str | None,
    license_: str | None,
    data_class: str | None,
    as_json: bool,
) -> None:
    """Create the resource PATH; its parent must exist. A license or data class given here
    needs admin on PATH, as ``resources set`` does."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    command = c.build(
        c.CreateResource, path=path, kind=kind, license=license_, data_class=data_class
    )
    result = obj.execute(command)
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
@dry_run_option
@click.pass_obj
def delete_command(obj: CliContext, path: str, recursive: bool, as_json: bool) -> None:
    """Delete PATH: grants on it go, every token with a grant on it or below is revoked."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    command = c.build(c.DeleteResource, path=path, recursive=recursive)
    result = obj.execute(command)
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
        echo_json([_resource_dict(r) for r in found])
        return
    for resource in found:
        click.echo(f"{resource.path}  ({_described(resource)})")


def _described(resource: ResourceView) -> str:
    """``project``, then its license and data class where set."""
    parts = [resource.kind]
    if resource.license is not None:
        parts.append(f"license {resource.license}")
    if resource.data_class is not None:
        parts.append(f"data class {resource.data_class}")
    return ", ".join(parts)


def _resource_dict(resource: ResourceView) -> dict[str, object]:
    from tokenledger.domain.names import resource_urn

    return {
        "id": resource.path,
        "path": resource.path,
        "urn": resource_urn(resource.path),
        "kind": resource.kind,
        "created_at": resource.created_at,
        "license": resource.license,
        "data_class": resource.data_class,
    }


#: What ``resources get --field`` prints (Element's ``data get --field urn``).
_FIELDS = ("id", "path", "urn", "kind", "created_at", "license", "data_class")


@resources.command("get")
@click.argument("path")
@click.option("--at", "at_time", metavar="TIME", help="As it stood at this past time (ISO 8601).")
@click.option(
    "--field",
    type=click.Choice(_FIELDS),
    help="Print only this field of the resource (e.g. urn).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def get_command(
    obj: CliContext, path: str, at_time: str | None, field: str | None, as_json: bool
) -> None:
    """The resource PATH (or its URN, urn:tokenledger:ORG:PROJECT...): its kind, URN,
    license and data class."""
    at = parse_timestamp(at_time, "--at") if at_time is not None else None
    found = obj.ledger().get_resource(obj.actor(), resource_path(path), at=at)
    row = _resource_dict(found)
    if field is not None:
        value = row[field]
        shown = format_timestamp(value) if isinstance(value, datetime) else value
        click.echo("" if shown is None else str(shown))
        return
    if as_json:
        echo_json(row)
        return
    click.echo(f"{found.path}  ({found.kind})  {row['urn']}")
    click.echo(f"  license: {found.license or '-'}")
    click.echo(f"  data class: {found.data_class or '-'}")


@resources.command("set")
@click.argument("path")
@click.option("--license", "license_", metavar="LICENSE", help=_LICENSE_HELP)
@click.option("--data-class", metavar="CLASS", help=_DATA_CLASS_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def set_command(
    obj: CliContext, path: str, license_: str | None, data_class: str | None, as_json: bool
) -> None:
    """Set the license, the data class or both of PATH (admin on PATH; never a service
    account). Setting what PATH already has is refused when nothing would change."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only
    from tokenledger.domain.events import ResourceDataClassSet, ResourceLicenseSet

    command = c.build(c.SetResourceAttributes, path=path, license=license_, data_class=data_class)
    result = obj.execute(command)
    licenses = [e.license for e in result.events if isinstance(e, ResourceLicenseSet)]
    classes = [e.data_class for e in result.events if isinstance(e, ResourceDataClassSet)]
    if as_json:
        echo_json(
            {
                "id": command.path,
                "path": command.path,
                "license": licenses[0] if licenses else None,
                "data_class": classes[0] if classes else None,
                "correlation_id": result.correlation_id,
            }
        )
        return
    for license in licenses:
        click.echo(f"license of {command.path} set to {license}")
    for data_class_set in classes:
        click.echo(f"data class of {command.path} set to {data_class_set}")
