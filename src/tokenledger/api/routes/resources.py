"""``/v2/resources``: the tree of paths permissions are granted on."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from tokenledger.api.deps import ERRORS, Correlation, State, command_fields, run
from tokenledger.api.schemas import CommandOut, CreateResourceIn, ResourceOut
from tokenledger.api.security import CurrentActor
from tokenledger.domain import commands as c
from tokenledger.domain.names import resource_path
from tokenledger.errors import NotFound
from tokenledger.service.reading import valid

__all__ = ["router"]

router = APIRouter(prefix="/v2/resources", tags=["resources"], responses=ERRORS)


class CreatedResourceOut(ResourceOut, CommandOut):
    pass


class DeletedResourceOut(CommandOut):
    deleted: list[str]


@router.post("", status_code=201, response_model=CreatedResourceOut)
def create_resource(
    body: CreateResourceIn,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
) -> CreatedResourceOut:
    """Create a node below an existing parent (write on the parent)."""
    command = c.build(c.CreateResource, path=body.path, kind=body.kind)
    result = run(state, command, actor, correlation, response)
    created = result.outcome.resource_created
    assert created is not None  # a CreateResource records one
    return CreatedResourceOut(
        id=created.path,
        path=created.path,
        kind=created.kind,
        created_at=result.records[0].recorded_at,
        **command_fields(result),
    )


@router.get("", response_model=list[ResourceOut])
def list_resources(
    actor: CurrentActor,
    state: State,
    prefix: str | None = Query(default=None, max_length=400, description="This path and below."),
) -> list[ResourceOut]:
    """The resources the token may read."""
    return [
        ResourceOut(id=r.path, path=r.path, kind=r.kind, created_at=r.created_at)
        for r in state.ledger.list_resources(actor, prefix)
    ]


@router.get("/{path:path}", response_model=ResourceOut)
def get_resource(path: str, actor: CurrentActor, state: State) -> ResourceOut:
    """A resource by its path or its URN."""
    path = valid(resource_path, path)
    found = [r for r in state.ledger.list_resources(actor, path) if r.path == path]
    if not found:
        raise NotFound(f"no resource {path} that this token may read")
    r = found[0]
    return ResourceOut(id=r.path, path=r.path, kind=r.kind, created_at=r.created_at)


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
