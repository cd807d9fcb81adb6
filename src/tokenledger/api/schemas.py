"""Request and response bodies of the HTTP API.

Request bodies only fix the JSON shape (which fields, strings or lists, bounded
lengths); the values are checked by building the domain command with
``commands.build``, so an HTTP caller gets the same rules and one-line messages
as the CLI.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, computed_field

from tokenledger.domain.model import ClientCredentialView, ServiceAccountView, TokenView
from tokenledger.domain.names import resource_urn
from tokenledger.domain.permissions import Grant
from tokenledger.errors import ValidationError

__all__ = [
    "CommandOut",
    "CreateCredentialIn",
    "CreateOrgIn",
    "CreateResourceIn",
    "CreateRoleIn",
    "CreateServiceAccountIn",
    "CreateUserIn",
    "CredentialOut",
    "DisableUserIn",
    "ErrorOut",
    "EventOut",
    "GrantIn",
    "GrantOut",
    "GrantSourceOut",
    "IntrospectionOut",
    "IssueTokenIn",
    "IssuedCredentialOut",
    "IssuedTokenOut",
    "MemberIn",
    "MemberOut",
    "OrgOut",
    "PermissionIn",
    "ResourceAttributesIn",
    "ResourceOut",
    "RoleOut",
    "ServiceAccountOut",
    "TokenOut",
    "TokenResponseOut",
    "UserOut",
    "VerificationOut",
    "VerifyIn",
    "credential_out",
    "grants_out",
    "service_account_out",
    "token_out",
]

Text = Annotated[str, Field(max_length=1000)]
Name = Annotated[str, Field(max_length=400)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorOut(BaseModel):
    error: str = Field(examples=["invalid_request"])
    error_description: str


class GrantIn(_In):
    resource: Name
    level: Name


class GrantOut(BaseModel):
    resource: str
    level: str


def grants_out(grants: tuple[Grant, ...] | list[Grant]) -> list[GrantOut]:
    return [GrantOut(resource=g.resource, level=g.level) for g in grants]


class EventOut(BaseModel):
    """One event a call appended, as the log holds it (``data`` is the event itself, with its
    ``type``, as ``/v2/audit`` shows it)."""

    position: int
    event_id: str
    event_type: str
    stream_id: str
    recorded_at: str = Field(description="ISO 8601 in UTC, as the hash chain writes it.")
    data: dict[str, Any]


class CommandOut(BaseModel):
    """What every mutating call answers: the correlation id of the events it appended, and
    those events (the caller's own doing: the log records the caller as their actor)."""

    correlation_id: str
    revoked: list[str] = Field(
        default_factory=list, description="Tokens the call revoked (its cascade included)."
    )
    revoked_client_ids: list[str] = Field(
        default_factory=list, description="Client credentials the call revoked."
    )
    revoked_access_key_ids: list[str] = Field(
        default_factory=list, description="S3 credentials the call revoked, by access key id."
    )
    command_id: str | None = Field(default=None, description="The command's id in the log.")
    log_position: int | None = Field(
        default=None,
        description="The log position of the last event appended: ask introspection for "
        "min_position at least this to be answered after the call everywhere.",
    )
    events: list[EventOut] = Field(
        default_factory=list, description="The events the call appended, in log order."
    )


# -- orgs, members, roles -----------------------------------------------------------------


class CreateOrgIn(_In):
    name: Name


class OrgOut(BaseModel):
    id: str


class MemberIn(_In):
    role: Name = "member"


class MemberOut(BaseModel):
    org: str
    email: str
    role: str
    previous_role: str | None = None


class CreateRoleIn(_In):
    name: Name
    grants: list[GrantIn] = Field(default_factory=list, max_length=1000)


class RoleOut(BaseModel):
    id: str
    org: str
    role: str
    grants: list[GrantOut]


# -- users and grants -----------------------------------------------------------------------


class CreateUserIn(_In):
    email: Name
    name: Text | None = None
    account: bool = Field(
        default=False,
        description="Create a Dyff-style account: the user is given an account id.",
    )


class DisableUserIn(_In):
    reason: Text | None = None


class DisableIn(_In):
    """Suspending a token, a service account or a client credential: why (optional)."""

    reason: Text | None = None


class UserOut(BaseModel):
    id: str
    email: str
    name: str | None
    disabled: bool
    created_at: datetime
    account_id: str | None = Field(
        default=None, description="The Dyff account id naming the user, if it has one."
    )


class GrantSourceOut(BaseModel):
    resource: str
    level: str
    source: str


# -- resources ------------------------------------------------------------------------------


class ResourceAttributesIn(_In):
    """A resource's license and data class (``PATCH /v2/resources/{path}``, and on creation):
    the data class as ``data_class`` or Aruna's ``dataClass``, named ``public`` or
    ``DATA_CLASS_PUBLIC`` alike (checked by the command, as everywhere)."""

    license: Name | None = None
    data_class: Name | None = None
    dataClass: Name | None = None

    def attributes(self) -> dict[str, str | None]:
        if self.data_class is not None and self.dataClass is not None:
            raise ValidationError("give the data class once: data_class or dataClass")
        return {"license": self.license, "data_class": self.data_class or self.dataClass}


class CreateResourceIn(ResourceAttributesIn):
    path: Name
    kind: Name | None = None


class ResourceOut(BaseModel):
    id: str
    path: str
    kind: str
    created_at: datetime
    license: str | None = None
    data_class: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def urn(self) -> str:
        """The resource's URN (``urn:tokenledger:ORG:PROJECT...``), accepted wherever a path is."""
        return resource_urn(self.path)


# -- service accounts and client credentials ---------------------------------------------------


class CreateServiceAccountIn(_In):
    name: Name
    org: Name
    resource: Name
    level: Name


class PermissionIn(_In):
    resource: Name
    level: Name


class ServiceAccountOut(BaseModel):
    id: str
    org: str
    name: str
    permission: GrantOut
    deleted: bool
    created_at: datetime
    disabled_at: datetime | None = Field(default=None, description="Since when it is suspended.")


def service_account_out(account: ServiceAccountView) -> ServiceAccountOut:
    return ServiceAccountOut(
        id=account.account_id,
        org=account.org,
        name=account.name,
        permission=GrantOut(resource=account.permission.resource, level=account.permission.level),
        deleted=account.deleted,
        created_at=account.created_at,
        disabled_at=account.disabled_at,
    )


class CreateCredentialIn(_In):
    name: Text | None = None
    expires_in: Name | None = Field(default=None, description="A lifetime such as 90d or 1y.")
    no_expiry: bool = False


class CredentialOut(BaseModel):
    client_id: str
    account_id: str
    name: str | None
    status: str = Field(description="active, disabled, revoked or expired")
    issued_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_reason: str | None
    disabled_at: datetime | None = None
    last_used: datetime | None = Field(
        default=None, description="The last recorded use, its access tokens' included."
    )


def credential_out(credential: ClientCredentialView, now: datetime) -> CredentialOut:
    return CredentialOut(
        client_id=credential.client_id,
        account_id=credential.account_id,
        name=credential.name,
        status=credential.status(now),
        issued_at=credential.issued_at,
        expires_at=credential.expires_at,
        revoked_at=credential.revoked_at,
        revoked_reason=credential.revoked_reason,
        disabled_at=credential.disabled_at,
        last_used=credential.last_used_at,
    )


class IssuedCredentialOut(CredentialOut, CommandOut):
    client_secret: str = Field(description="Shown once: the ledger keeps only its SHA-256 hash.")
    correlation_id: str


# -- tokens -----------------------------------------------------------------------------------


class IssueTokenIn(_In):
    grants: list[GrantIn] = Field(default_factory=list, max_length=1000)
    role: Name | None = Field(
        default=None, description="Grant a role's grants (ROLE, ORG:ROLE or ORG.ACCOUNT.ROLE)."
    )
    name: Text | None = None
    expires_in: Name | None = Field(default=None, description="A lifetime such as 30d or 12h.")
    expires_at: Name | None = Field(default=None, description="An ISO 8601 time (UTC if no zone).")
    no_expiry: bool = False
    parent_id: Name | None = Field(default=None, description="Derive from this token (tok_...).")


class TokenOut(BaseModel):
    token_id: str
    principal: str
    kind: str
    name: str | None
    status: str = Field(description="active, disabled, revoked or expired")
    grants: list[GrantOut]
    issued_at: datetime
    expires_at: datetime | None
    parent_id: str | None
    revoked_at: datetime | None
    revoked_reason: str | None
    disabled_at: datetime | None = None
    disabled_cause: str | None = Field(
        default=None, description="While disabled with a token it derives from: that token."
    )
    last_used: datetime | None = Field(
        default=None,
        description="The last recorded use (at most once per interval); null when never used.",
    )


def token_out(token: TokenView, now: datetime) -> TokenOut:
    return TokenOut(
        token_id=token.token_id,
        principal=token.principal,
        kind=token.kind,
        name=token.name,
        status=token.status(now),
        grants=grants_out(token.grants),
        issued_at=token.issued_at,
        expires_at=token.expires_at,
        parent_id=token.parent_id,
        revoked_at=token.revoked_at,
        revoked_reason=token.revoked_reason,
        disabled_at=token.disabled_at,
        disabled_cause=token.disabled_cause,
        last_used=token.last_used_at,
    )


class IssuedTokenOut(TokenOut, CommandOut):
    secret: str = Field(description="Shown once: the ledger keeps only its SHA-256 hash.")
    correlation_id: str
    token: dict[str, Any] = Field(description="The token as Aruna's clients read it.")
    tokenSecret: str = Field(description="The secret again, under Aruna's name.")
    warning: str | None = Field(
        default=None, description="Said of an admin token that lives longer than 7 days."
    )


# -- OAuth2 -------------------------------------------------------------------------------------


class TokenResponseOut(BaseModel):
    """RFC 6749 section 5.1."""

    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    scope: str


class IntrospectionOut(BaseModel):
    """RFC 7662 section 2.2, and the log position the answer reflects at least; an inactive
    token's answer is exactly ``{"active": false, "log_position": N}``."""

    model_config = ConfigDict(extra="allow")

    active: bool
    sub: str | None = None
    scope: str | None = None
    exp: int | None = None
    iat: int | None = None
    token_type: str | None = None
    client_id: str | None = None
    token_id: str | None = None
    iss: str | None = None
    org: str | None = None
    grants: list[GrantOut] | None = None
    allowed: bool | None = None
    resource: str | None = None
    level: str | None = None
    log_position: int


# -- verification ---------------------------------------------------------------------------


class VerifyIn(_In):
    """``tokenledger tokens verify`` over HTTP: the secret travels in the body, never a URL."""

    token: Annotated[str, Field(max_length=10_000)]
    resource: Name | None = None
    level: Name | None = None
    at: Name | None = Field(default=None, description="Answer as of this past time (ISO 8601).")
    min_position: int | None = Field(
        default=None,
        ge=0,
        le=2**62,
        strict=True,
        description="Answer reflecting at least this log position (425 while beyond the head).",
    )


class VerificationOut(BaseModel):
    """The CLI's verification answer: RFC 7662 names, ``allowed``, and why a token is not
    active (``reason``); with ``at``, the log position the answer was folded up to."""

    active: bool
    allowed: bool
    reason: str | None = None
    token_id: str | None = None
    sub: str | None = None
    token_type: str | None = None
    iat: int | None = None
    exp: int | None = None
    scope: str | None = None
    grants: list[GrantOut] = Field(default_factory=list)
    resource: str | None = None
    level: str | None = None
    at: str | None = None
    as_of_position: int | None = None
    log_position: int | None = Field(
        default=None, description="The log position the answer reflects at least (not with at)."
    )
