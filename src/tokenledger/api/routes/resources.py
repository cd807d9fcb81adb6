"""``/v2/resources``: the tree of paths permissions are granted on, with each resource's
license and data class."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from tokenledger.api.deps import ERRORS, Correlation, State, command_fields, moment, run
from tokenledger.api.schemas import (
    CommandOut,
    CreateResourceIn,
    ResourceAttributesIn,
    ResourceOut,
)
from tokenledger.api.security import CurrentActor
from tokenledger.domain import commands as c
from tokenledger.domain.events import ResourceDataClassSet, ResourceLicenseSet
from tokenledger.domain.model import ResourceView

__all__ = ["router"]

router = APIRouter(prefix="/v2/resources", tags=["resources"], responses=ERRORS)


class CreatedResourceOut(ResourceOut, CommandOut):
    pass


class DeletedResourceOut(CommandOut):
    deleted: list[str]


class UpdatedResourceOut(CommandOut):
    """What ``PATCH`` set (each None when left as it was)."""

    id: str
    path: str
    license: str | None = None
    data_class: str | None = None


def resource_out(resource: ResourceView) -> ResourceOut:
    return ResourceOut(
        id=resource.path,
        path=resource.path,
        kind=resource.kind,
        created_at=resource.created_at,
        license=resource.license,
        data_class=resource.data_class,
    )


@router.post("", status_code=201, response_model=CreatedResourceOut)
def create_resource(
    body: CreateResourceIn,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
) -> CreatedResourceOut:
    """Create a node below an existing parent (write on the parent; a license or data class
    given with it needs what setting them needs: admin there, and not a service account)."""
    command = c.build(c.CreateResource, path=body.path, kind=body.kind, **body.attributes())
    result = run(state, command, actor, correlation, response)
    created = result.outcome.resource_created
    assert created is not None  # a CreateResource records one
    return CreatedResourceOut(
        id=created.path,
        path=created.path,
        kind=created.kind,
        created_at=result.records[0].recorded_at,
        license=command.license,
        data_class=command.data_class,
        **command_fields(result),
    )


@router.get("", response_model=list[ResourceOut])
def list_resources(
    actor: CurrentActor,
    state: State,
    prefix: str | None = Query(default=None, max_length=400, description="This path and below."),
) -> list[ResourceOut]:
    """The resources the token may read."""
    return [resource_out(r) for r in state.ledger.list_resources(actor, prefix)]


@router.get("/{path:path}", response_model=ResourceOut)
def get_resource(
    path: str,
    actor: CurrentActor,
    state: State,
    at: str | None = Query(
        default=None, max_length=64, description="As it stood at this past time."
    ),
) -> ResourceOut:
    """One resource the token may read (with ``at``, as it stood then, folded from its own
    events)."""
    return resource_out(state.ledger.get_resource(actor, path, at=moment(at, "at")))


@router.patch("/{path:path}", response_model=UpdatedResourceOut)
def set_resource_attributes(
    path: str,
    body: ResourceAttributesIn,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
) -> UpdatedResourceOut:
    """Set the license, the data class or both (admin on the resource; never a service
    account). A value the resource already has is refused (409) when nothing would change."""
    command = c.build(c.SetResourceAttributes, path=path, **body.attributes())
    result = run(state, command, actor, correlation, response)
    licenses = [e.license for e in result.events if isinstance(e, ResourceLicenseSet)]
    classes = [e.data_class for e in result.events if isinstance(e, ResourceDataClassSet)]
    return UpdatedResourceOut(
        id=command.path,
        path=command.path,
        license=licenses[0] if licenses else None,
        data_class=classes[0] if classes else None,
        **command_fields(result),
    )


@router.delete("/{path:path}", response_model=DeletedResourceOut)
def delete_resource(
    path: str,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
    recursive: bool = Query(default=False, description="Also delete everything below."),
) -> DeletedResourceOut:
    """Delete a resource: grants on it go, every token with a grant on it is revoked."""
    command = c.build(c.DeleteResource, path=path, recursive=recursive)
    result = run(state, command, actor, correlation, response)
    return DeletedResourceOut(
        deleted=list(result.outcome.resources_deleted),
        **command_fields(result),
    )
