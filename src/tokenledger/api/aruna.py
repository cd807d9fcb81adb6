"""Aruna's words on the wire: its request bodies (camelCase, ``projectId`` ...,
``PERMISSION_LEVEL_*``) accepted beside the native ones, and the fields its clients read
added to the answers. Each Aruna body is turned into the native one here, so the routes and
everything below them see one shape.

Aruna names resources by ids; here they are named by their paths: ``projectId`` is the
project's path (``acme/alpha``), ``collectionId``, ``datasetId`` and ``objectId`` the paths
below it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tokenledger.domain.permissions import Grant, Level, org_of
from tokenledger.errors import ValidationError

__all__ = [
    "ArunaCreateServiceAccountIn",
    "ArunaIssueTokenIn",
    "aruna_permission",
    "aruna_service_account",
    "aruna_token",
]

_Id = Field(default="", max_length=400)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArunaCreateServiceAccountIn(_In):
    """``CreateServiceAccountRequest``: ``{"name", "projectId", "permissionLevel"}``."""

    name: str = Field(max_length=400)
    projectId: str = Field(max_length=400)
    permissionLevel: str = Field(max_length=100)

    def native(self) -> dict[str, str]:
        return {
            "name": self.name,
            "org": org_of(self.projectId),
            "resource": self.projectId,
            "level": self.permissionLevel,
        }


class ArunaPermissionIn(_In):
    """Aruna's ``Permission``: one resource id (the most specific given) and a level."""

    projectId: str = _Id
    collectionId: str = _Id
    datasetId: str = _Id
    objectId: str = _Id
    permissionLevel: str = Field(max_length=100)

    def grant(self) -> dict[str, str]:
        named = [p for p in (self.objectId, self.datasetId, self.collectionId, self.projectId) if p]
        if not named:
            raise ValidationError(
                "permission: name a projectId, collectionId, datasetId or objectId"
            )
        return {"resource": named[0], "level": self.permissionLevel}


class ArunaIssueTokenIn(_In):
    """``CreateServiceAccountTokenRequest``: ``{"permission", "name", "expiresAt"}``."""

    permission: ArunaPermissionIn
    name: str | None = Field(default=None, max_length=1000)
    expiresAt: str | None = Field(default=None, max_length=64)


def aruna_permission(grant: Grant) -> dict[str, str]:
    """A grant as Aruna's ``Permission`` (its resource id named by its depth)."""
    depth = grant.resource.count("/")
    field = {1: "projectId", 2: "collectionId", 3: "datasetId"}.get(depth, "objectId")
    if depth == 0:
        field = "projectId"  # an org-wide grant: Aruna has no org id; the path says it
    return {field: grant.resource, "permissionLevel": Level.parse(grant.level).aruna_name}


def aruna_service_account(account_id: str, name: str, permission: Grant) -> dict[str, Any]:
    """What Aruna's clients read of a created service account (``serviceAccount``)."""
    return {
        "svcAccountId": account_id,
        "name": name,
        "projectId": permission.resource,
        "permissionLevel": Level.parse(permission.level).aruna_name,
    }


def aruna_token(
    token_id: str,
    name: str | None,
    created_at: str,
    expires_at: str | None,
    grants: tuple[Grant, ...],
) -> dict[str, Any]:
    """What Aruna's clients read of an issued token (``token``; the secret is ``tokenSecret``)."""
    return {
        "id": token_id,
        "name": name or "",
        "createdAt": created_at,
        "expiresAt": expires_at,
        "permission": aruna_permission(grants[0]) if len(grants) == 1 else None,
    }
