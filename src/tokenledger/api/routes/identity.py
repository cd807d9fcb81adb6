"""Logging in, administered: an org's identity provider, and service accounts' trust in
external issuers (workload identity federation)."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from tokenledger.api.deps import ERRORS, Correlation, State, command_fields, command_out, run
from tokenledger.api.dry_run import dry_run_requested
from tokenledger.api.schemas import CommandOut
from tokenledger.api.security import CurrentActor
from tokenledger.domain import commands as c
from tokenledger.domain.commands import parse_duration
from tokenledger.domain.model import IdentityProviderView, IssuerTrustView

__all__ = ["router"]

router = APIRouter(prefix="/v2", tags=["login"], responses=ERRORS)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IdentityProviderIn(_In):
    issuer: str = Field(max_length=500, description="The provider's issuer URL (https).")
    client_id: str = Field(max_length=200, description="The ledger's client id there.")
    client_secret: str | None = Field(
        None,
        max_length=1000,
        description="Its client secret, if it needs one: kept with the signing keys, never "
        "in the log, never shown again.",
    )
    session_lifetime: str | None = Field(
        None, max_length=20, description="How long a session lives at most (e.g. 7d; 30d)."
    )


class IdentityProviderOut(BaseModel):
    org: str
    issuer: str
    client_id: str
    client_secret: bool = Field(description="Whether a client secret is kept for it.")
    session_lifetime_seconds: int
    set_at: datetime


def _provider_out(provider: IdentityProviderView) -> IdentityProviderOut:
    return IdentityProviderOut(
        org=provider.org,
        issuer=provider.issuer,
        client_id=provider.oidc_client_id,
        client_secret=provider.client_secret,
        session_lifetime_seconds=int(provider.session_lifetime.total_seconds()),
        set_at=provider.set_at,
    )


@router.get("/orgs/{org}/identity-provider", response_model=IdentityProviderOut)
def get_identity_provider(
    actor: CurrentActor, state: State, org: str = Path(max_length=100)
) -> IdentityProviderOut:
    """The org's OpenID Connect provider (never its secret), for readers of the org."""
    return _provider_out(state.ledger.identity_provider(actor, org))


@router.put("/orgs/{org}/identity-provider", response_model=IdentityProviderOut)
def put_identity_provider(
    body: IdentityProviderIn,
    actor: CurrentActor,
    state: State,
    org: str = Path(max_length=100),
) -> IdentityProviderOut:
    """Set (or replace) the org's provider; admins of the org. Giving only a new secret for
    the provider already set rotates the secret and records nothing."""
    lifetime: timedelta | None = (
        parse_duration(body.session_lifetime) if body.session_lifetime else None
    )
    state.ledger.set_identity_provider(
        actor,
        state.settings.keys,
        org=org,
        issuer=body.issuer,
        oidc_client_id=body.client_id,
        client_secret=body.client_secret,
        session_lifetime=lifetime,
        dry_run=dry_run_requested(),
    )
    return _provider_out(state.ledger.identity_provider(actor, org))


class TrustIn(_In):
    issuer: str = Field(max_length=500)
    subject: str = Field(max_length=500, description="Subjects to trust; * matches any run.")
    audience: str = Field(max_length=200)


class TrustOut(BaseModel):
    trust_id: str
    account_id: str
    issuer: str
    subject: str
    audience: str
    created_at: datetime
    withdrawn_at: datetime | None
    withdrawn_reason: str | None


class CreatedTrustOut(TrustOut, CommandOut):
    pass


def _trust_out(trust: IssuerTrustView) -> TrustOut:
    return TrustOut(
        trust_id=trust.trust_id,
        account_id=trust.account_id,
        issuer=trust.issuer,
        subject=trust.subject,
        audience=trust.audience,
        created_at=trust.created_at,
        withdrawn_at=trust.revoked_at,
        withdrawn_reason=trust.revoked_reason,
    )


_ACCOUNT = Path(max_length=400)


@router.get("/service_accounts/{account_id}/trusts", response_model=list[TrustOut])
def list_trusts(
    actor: CurrentActor,
    state: State,
    account_id: str = _ACCOUNT,
    include_withdrawn: bool = Query(False),
) -> list[TrustOut]:
    """The issuers whose ID tokens the account takes in exchange for its access tokens."""
    found = state.ledger.issuer_trusts_of(actor, account_id, include_withdrawn=include_withdrawn)
    return [_trust_out(trust) for trust in found]


@router.post(
    "/service_accounts/{account_id}/trusts", status_code=201, response_model=CreatedTrustOut
)
def create_trust(
    body: TrustIn,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
    account_id: str = _ACCOUNT,
) -> CreatedTrustOut:
    """Trust an issuer's ID tokens for a subject pattern and audience (admins of the
    account's project)."""
    command = c.build(
        c.TrustIssuer,
        account_id=account_id,
        issuer=body.issuer,
        subject=body.subject,
        audience=body.audience,
    )
    result = run(state, command, actor, correlation, response)
    trust_id = getattr(result.events[0], "trust_id", "")
    (trust,) = [
        t
        for t in state.ledger.issuer_trusts_of(actor, account_id, include_withdrawn=True)
        if t.trust_id == trust_id
    ]
    return CreatedTrustOut(**_trust_out(trust).model_dump(), **command_fields(result))


@router.delete("/service_accounts/{account_id}/trusts", response_model=CommandOut)
def delete_trusts(
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
    issuer: str = Query(max_length=500),
    subject: str | None = Query(None, max_length=500),
    account_id: str = _ACCOUNT,
) -> CommandOut:
    """Withdraw the account's trust in ``issuer`` (every subject pattern, or ``subject``):
    the access tokens it obtained stop working at once."""
    command = c.build(c.UntrustIssuer, account_id=account_id, issuer=issuer, subject=subject)
    return command_out(run(state, command, actor, correlation, response))
