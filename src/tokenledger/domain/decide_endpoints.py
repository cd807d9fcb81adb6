"""Decisions on the data plane: endpoints (data proxies), service accounts' trusted
endpoints, and their S3 credentials.

Registered on ``decide`` (``domain.decide`` imports this module). Endpoints are the
operator's to register and delete; an account's trusted list and its S3 credentials are
managed by a person with admin on the account's project (as its client credentials are).
Every revocation is its own event, linked to its cause by the command that appended both.
"""

from __future__ import annotations

import hashlib

from tokenledger.domain import commands as c
from tokenledger.domain.authority import (
    ServiceAccountLimit,
    refuse_service_account,
    require_operator,
)
from tokenledger.domain.cascades import revoke_s3_credentials, untrust_endpoints
from tokenledger.domain.decide import Context, administered_account, decide, require_unsuspended
from tokenledger.domain.events import (
    EndpointCreated,
    EndpointDeleted,
    EndpointTrusted,
    EndpointUntrusted,
    Event,
    RevocationReason,
    S3CredentialIssued,
)
from tokenledger.domain.model import (
    EndpointView,
    LedgerView,
    S3CredentialView,
    ServiceAccountView,
)
from tokenledger.domain.s3 import access_key_id_for, find_endpoint
from tokenledger.errors import Conflict, NotFound

__all__ = ["s3_credentials_manager"]


# -- endpoints --------------------------------------------------------------------------


def _endpoint_manager(ctx: Context) -> None:
    refuse_service_account(ctx.actor, ServiceAccountLimit.MANAGE_ENDPOINTS)
    require_operator(ctx.actor, "manage endpoints")


@decide.register
def _create_endpoint(cmd: c.CreateEndpoint, view: LedgerView, ctx: Context) -> list[Event]:
    _endpoint_manager(ctx)
    existing = view.endpoint_named(cmd.name)
    if existing is not None:
        raise Conflict(f"endpoint {cmd.name} already exists ({existing.endpoint_id})")
    endpoint_id = _new_endpoint_id(view, cmd, ctx)
    return [EndpointCreated(endpoint_id=endpoint_id, name=cmd.name, url=cmd.url)]


def _new_endpoint_id(view: LedgerView, cmd: c.CreateEndpoint, ctx: Context) -> str:
    """Made from the endpoint's name, URL and time, so the decision is deterministic; a
    deleted endpoint made again in the same instant gets the next free id."""
    attempt = 0
    while True:
        seed = f"{cmd.name}\n{cmd.url}\n{ctx.now.isoformat()}\n{attempt}"
        endpoint_id = "ep_" + hashlib.sha256(seed.encode()).hexdigest()[:24]
        if view.endpoint(endpoint_id) is None:
            return endpoint_id
        attempt += 1


@decide.register
def _delete_endpoint(cmd: c.DeleteEndpoint, view: LedgerView, ctx: Context) -> list[Event]:
    _endpoint_manager(ctx)
    endpoint = find_endpoint(view, cmd.endpoint)
    reason = RevocationReason.ENDPOINT_DELETED
    detail = f"endpoint {endpoint.name} deleted by {ctx.actor.label}"
    return [
        EndpointDeleted(endpoint_id=endpoint.endpoint_id, name=endpoint.name),
        *untrust_endpoints(view.accounts_trusting(endpoint.endpoint_id), reason, detail),
        *revoke_s3_credentials(view.s3_credentials_at(endpoint.endpoint_id), reason, detail),
    ]


# -- an account's trusted endpoints -------------------------------------------------------


def _account_and_endpoint(
    cmd: c.TrustEndpoint | c.UntrustEndpoint | c.IssueS3Credential,
    view: LedgerView,
    ctx: Context,
    what: str,
) -> tuple[ServiceAccountView, EndpointView]:
    account = administered_account(
        view, ctx, cmd.account_id, f"manage {what}", f"manage the {what} of {cmd.account_id}"
    )
    return account, find_endpoint(view, cmd.endpoint)


def _held_at(
    view: LedgerView, account: ServiceAccountView, endpoint: EndpointView
) -> list[S3CredentialView]:
    """Every S3 credential the account was given at the endpoint, revoked ones included."""
    return [
        credential
        for credential in view.s3_credentials_of(account.account_id)
        if credential.endpoint_id == endpoint.endpoint_id
    ]


def _trusted(view: LedgerView, account_id: str, endpoint_id: str) -> bool:
    return any(t.endpoint_id == endpoint_id for t in view.trusted_endpoints_of(account_id))


@decide.register
def _trust_endpoint(cmd: c.TrustEndpoint, view: LedgerView, ctx: Context) -> list[Event]:
    account, endpoint = _account_and_endpoint(cmd, view, ctx, "trusted endpoints")
    if _trusted(view, account.account_id, endpoint.endpoint_id):
        raise Conflict(f"{account.account_id} already trusts endpoint {endpoint.name}")
    return [EndpointTrusted(account_id=account.account_id, endpoint_id=endpoint.endpoint_id)]


@decide.register
def _untrust_endpoint(cmd: c.UntrustEndpoint, view: LedgerView, ctx: Context) -> list[Event]:
    account, endpoint = _account_and_endpoint(cmd, view, ctx, "trusted endpoints")
    if not _trusted(view, account.account_id, endpoint.endpoint_id):
        raise NotFound(f"{account.account_id} does not trust endpoint {endpoint.name}")
    detail = (
        f"endpoint {endpoint.name} left the trusted endpoints of {account.account_id} "
        f"by {ctx.actor.label}"
    )
    at_endpoint = _held_at(view, account, endpoint)
    return [
        EndpointUntrusted(
            account_id=account.account_id,
            endpoint_id=endpoint.endpoint_id,
            reason=RevocationReason.REQUESTED,
            detail=cmd.reason,
        ),
        *revoke_s3_credentials(at_endpoint, RevocationReason.ENDPOINT_UNTRUSTED, detail),
    ]


# -- S3 credentials ---------------------------------------------------------------------------


@decide.register
def _issue_s3_credential(cmd: c.IssueS3Credential, view: LedgerView, ctx: Context) -> list[Event]:
    account, endpoint = _account_and_endpoint(cmd, view, ctx, "S3 credentials")
    require_unsuspended(account)
    if not _trusted(view, account.account_id, endpoint.endpoint_id):
        raise Conflict(
            f"{account.account_id} does not trust endpoint {endpoint.name}: add it to the "
            "account's trusted endpoints first"
        )
    at_endpoint = _held_at(view, account, endpoint)
    live = [credential for credential in at_endpoint if not credential.revoked]
    if live:
        raise Conflict(
            f"{account.account_id} already holds S3 credentials at endpoint {endpoint.name} "
            f"({live[0].access_key_id}): revoke them first"
        )
    ordinal = len(at_endpoint)
    while True:
        access_key_id = access_key_id_for(
            account.account_id, endpoint.endpoint_id, ordinal, ctx.now.isoformat()
        )
        if view.s3_credential(access_key_id) is None:
            break
        ordinal += 1
    return [
        S3CredentialIssued(
            access_key_id=access_key_id,
            account_id=account.account_id,
            endpoint_id=endpoint.endpoint_id,
            issued_at=ctx.now,
            issued_by=ctx.actor.token_id,
        )
    ]


def s3_credentials_manager(view: LedgerView, ctx: Context, account_id: str) -> ServiceAccountView:
    """The account ``account_id``, if the actor may revoke its S3 credentials (a person with
    admin on its project, or an operator)."""
    return administered_account(
        view,
        ctx,
        account_id,
        "manage S3 credentials",
        f"manage the S3 credentials of {account_id}",
    )


@decide.register
def _revoke_s3_credential(cmd: c.RevokeS3Credential, view: LedgerView, ctx: Context) -> list[Event]:
    account = s3_credentials_manager(view, ctx, cmd.account_id)
    if cmd.access_key_id is not None:
        held = view.s3_credentials_of(account.account_id)
        chosen = [cred for cred in held if cred.access_key_id == cmd.access_key_id]
        if not chosen:
            raise NotFound(f"{account.account_id} has no S3 credentials {cmd.access_key_id}")
        if chosen[0].revoked:
            raise Conflict(f"S3 credentials {cmd.access_key_id} are already revoked")
    else:
        assert cmd.endpoint is not None  # the command names one or the other
        endpoint = find_endpoint(view, cmd.endpoint)
        chosen = [cred for cred in _held_at(view, account, endpoint) if not cred.revoked]
        if not chosen:
            raise NotFound(
                f"{account.account_id} holds no S3 credentials at endpoint {endpoint.name}"
            )
    return revoke_s3_credentials(chosen, RevocationReason.REQUESTED, cmd.reason)
