"""``/v2/service_accounts``: non-human principals with one permission, and their client
credentials (``/v2/service_accounts/{id}/credentials``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response

from tokenledger.api.aruna import ArunaCreateServiceAccountIn, aruna_service_account
from tokenledger.api.deps import ERRORS, Correlation, State, command_fields, command_out, run
from tokenledger.api.schemas import (
    CommandOut,
    CreateCredentialIn,
    CreateServiceAccountIn,
    CredentialOut,
    GrantOut,
    IssuedCredentialOut,
    PermissionIn,
    ServiceAccountOut,
    credential_out,
    service_account_out,
)
from tokenledger.api.security import CurrentActor
from tokenledger.domain import commands as c
from tokenledger.domain.model import ClientCredentialView, ServiceAccountView

__all__ = ["router"]

router = APIRouter(prefix="/v2/service_accounts", tags=["service_accounts"], responses=ERRORS)


class CreatedServiceAccountOut(ServiceAccountOut, CommandOut):
    serviceAccount: dict[str, Any]


class PermissionChangedOut(CommandOut):
    id: str
    previous: GrantOut
    permission: GrantOut
    moved: bool


@router.post("", status_code=201, response_model=CreatedServiceAccountOut)
def create_service_account(
    body: CreateServiceAccountIn | ArunaCreateServiceAccountIn,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
) -> CreatedServiceAccountOut:
    """Create a service account with one permission on a project (admin there). Aruna's body
    (``{"name", "projectId", "permissionLevel"}``) is taken too."""
    fields = body.native() if isinstance(body, ArunaCreateServiceAccountIn) else body.model_dump()
    command = c.build(c.CreateServiceAccount, **fields)
    result = run(state, command, actor, correlation, response)
    created = result.outcome.account_created
    assert created is not None  # a CreateServiceAccount records one
    account = ServiceAccountView(
        account_id=created.account_id,
        org=created.org,
        name=created.name,
        permission=created.permission,
        deleted=False,
        created_at=result.records[0].recorded_at,
    )
    return CreatedServiceAccountOut(
        **service_account_out(account).model_dump(),
        **command_fields(result),
        serviceAccount=aruna_service_account(account.account_id, account.name, account.permission),
    )


@router.get("", response_model=list[ServiceAccountOut])
def list_service_accounts(
    actor: CurrentActor,
    state: State,
    org: str | None = Query(default=None, max_length=400),
) -> list[ServiceAccountOut]:
    """The service accounts the token may see (deleted ones are not listed)."""
    return [service_account_out(a) for a in state.ledger.service_accounts(actor, org)]


@router.get("/{account_id}", response_model=ServiceAccountOut)
def get_service_account(account_id: str, actor: CurrentActor, state: State) -> ServiceAccountOut:
    return service_account_out(state.ledger.get_service_account(actor, account_id))


@router.delete("/{account_id}", response_model=CommandOut)
def delete_service_account(
    account_id: str,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
) -> CommandOut:
    """Delete the account: its tokens and client credentials are revoked."""
    command = c.build(c.DeleteServiceAccount, account_id=account_id)
    return command_out(run(state, command, actor, correlation, response))


@router.put("/{account_id}/permission", response_model=PermissionChangedOut)
def set_permission(
    account_id: str,
    body: PermissionIn,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
) -> PermissionChangedOut:
    """Give the account its one permission. Moving it to another project revokes every
    token and client credential of the account; changing only the level revokes none."""
    command = c.build(
        c.SetServiceAccountPermission,
        account_id=account_id,
        resource=body.resource,
        level=body.level,
    )
    result = run(state, command, actor, correlation, response)
    change = result.outcome.permission_change
    assert change is not None  # a SetServiceAccountPermission records one
    return PermissionChangedOut(
        id=change.account_id,
        previous=GrantOut(resource=change.previous.resource, level=change.previous.level),
        permission=GrantOut(resource=change.permission.resource, level=change.permission.level),
        moved=change.moved,
        **command_fields(result),
    )


# -- client credentials ----------------------------------------------------------------------


@router.post("/{account_id}/credentials", status_code=201, response_model=IssuedCredentialOut)
def create_credential(
    account_id: str,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
    body: CreateCredentialIn | None = None,
) -> IssuedCredentialOut:
    """Issue a client id and secret for ``POST /oauth2/token`` (admin on the account's
    project). The secret is in this answer and nowhere else, ever."""
    body = body or CreateCredentialIn()
    command = c.build(
        c.IssueClientCredential,
        account_id=account_id,
        name=body.name,
        expires_in=c.parse_duration(body.expires_in) if body.expires_in is not None else None,
        no_expiry=body.no_expiry,
    )
    result = run(state, command, actor, correlation, response)
    issued = result.outcome.credential_issued
    assert issued is not None  # an IssueClientCredential records one
    assert result.secret is not None
    view = ClientCredentialView(
        client_id=issued.client_id,
        account_id=issued.account_id,
        name=issued.name,
        issued_at=issued.issued_at,
        expires_at=issued.expires_at,
    )
    return IssuedCredentialOut(
        **credential_out(view, issued.issued_at).model_dump(),
        client_secret=result.secret,
        **command_fields(result),
    )


@router.get("/{account_id}/credentials", response_model=list[CredentialOut])
def list_credentials(
    account_id: str,
    actor: CurrentActor,
    state: State,
    include_all: bool = Query(
        default=False, alias="all", description="Include revoked and expired credentials."
    ),
) -> list[CredentialOut]:
    found = state.ledger.client_credentials_of(actor, account_id, include_inactive=include_all)
    now = state.ledger.now()
    return [credential_out(cred, now) for cred in found]


#: In place of an account id, "whichever account holds the credential" (as Google's AIP-159
#: reads "-"): a client id names one credential, so ``tokenledger service-accounts
#: credentials revoke CLIENT_ID`` needs no account.
ANY_ACCOUNT = "-"


@router.delete("/{account_id}/credentials/{client_id}", response_model=CommandOut)
def revoke_credential(
    account_id: str,
    client_id: str,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
    reason: str | None = Query(default=None, max_length=500),
) -> CommandOut:
    """Revoke a client credential: the access tokens it obtained become inactive. The
    account id ``-`` stands for whichever account holds it."""
    command = c.build(
        c.RevokeClientCredential,
        client_id=client_id,
        reason=reason,
        account_id=None if account_id == ANY_ACCOUNT else account_id,
    )
    return command_out(run(state, command, actor, correlation, response))
