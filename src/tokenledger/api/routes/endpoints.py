"""The data plane over HTTP: endpoints (``/v2/endpoints``, read only: registering and
deleting one is the operator's, on the command line), a service account's trusted endpoints
and S3 credentials (native paths and Aruna's), and the check a gateway makes of each signed
S3 request it receives (``POST /v2/s3/check``)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tokenledger.api.deps import ERRORS, Correlation, State, command_fields, command_out, run
from tokenledger.api.dry_run import dry_run_requested
from tokenledger.api.problems import ApiError
from tokenledger.api.schemas import CommandOut
from tokenledger.api.security import CurrentActor
from tokenledger.domain import commands as c
from tokenledger.domain.model import Actor, EndpointView, S3CredentialView
from tokenledger.domain.sigv4 import ReceivedRequest, SignatureMismatch
from tokenledger.errors import ValidationError
from tokenledger.service.s3 import IssuedS3Credential

__all__ = ["router"]

router = APIRouter(prefix="/v2", tags=["data plane"], responses=ERRORS)

_ACCOUNT = Path(max_length=400, description="The service account's id.")
_ENDPOINT = Path(max_length=100, description="The endpoint's id (ep_...) or name.")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- endpoints ------------------------------------------------------------------------------


class EndpointOut(BaseModel):
    id: str
    name: str
    url: str
    created_at: datetime


def _endpoint_out(endpoint: EndpointView) -> EndpointOut:
    return EndpointOut(
        id=endpoint.endpoint_id,
        name=endpoint.name,
        url=endpoint.url,
        created_at=endpoint.created_at,
    )


@router.get("/endpoints", response_model=list[EndpointOut])
def list_endpoints(actor: CurrentActor, state: State) -> list[EndpointOut]:
    """Every endpoint in force, by name."""
    return [_endpoint_out(endpoint) for endpoint in state.ledger.endpoints()]


@router.get("/endpoints/{endpoint}", response_model=EndpointOut)
def get_endpoint(actor: CurrentActor, state: State, endpoint: str = _ENDPOINT) -> EndpointOut:
    return _endpoint_out(state.ledger.get_endpoint(endpoint))


# -- trusted endpoints ------------------------------------------------------------------------


class TrustEndpointIn(_In):
    """``{"endpointId": ...}`` (Aruna's ``AddTrustedEndpointsSvcAccountRequest``) or
    ``{"endpoint": ...}``: an endpoint's id or name."""

    endpointId: str | None = Field(None, max_length=100)
    endpoint: str | None = Field(None, max_length=100)

    @model_validator(mode="after")
    def _one(self) -> TrustEndpointIn:
        if (self.endpointId is None) == (self.endpoint is None):
            raise ValueError("name the endpoint: endpointId or endpoint (one of them)")
        return self

    @property
    def ref(self) -> str:
        return self.endpointId or self.endpoint or ""


class TrustedEndpointOut(EndpointOut):
    trusted_at: datetime


class CreatedTrustedEndpointOut(CommandOut):
    account_id: str
    endpoint_id: str


@router.get(
    "/service_accounts/{account_id}/trusted_endpoints", response_model=list[TrustedEndpointOut]
)
def list_trusted_endpoints(
    actor: CurrentActor, state: State, account_id: str = _ACCOUNT
) -> list[TrustedEndpointOut]:
    """The endpoints the account may hold S3 credentials at."""
    return [
        TrustedEndpointOut(**_endpoint_out(endpoint).model_dump(), trusted_at=trusted.trusted_at)
        for trusted, endpoint in state.ledger.trusted_endpoints_of(actor, account_id)
    ]


@router.post(
    "/service_accounts/{account_id}/trusted_endpoints",
    status_code=201,
    response_model=CreatedTrustedEndpointOut,
)
def add_trusted_endpoint(
    body: TrustEndpointIn,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
    account_id: str = _ACCOUNT,
) -> CreatedTrustedEndpointOut:
    """Put an endpoint on the account's trusted list (admins of the account's project)."""
    command = c.build(c.TrustEndpoint, account_id=account_id, endpoint=body.ref)
    result = run(state, command, actor, correlation, response)
    return CreatedTrustedEndpointOut(
        account_id=account_id,
        endpoint_id=getattr(result.events[0], "endpoint_id", ""),
        **command_fields(result),
    )


@router.delete(
    "/service_accounts/{account_id}/trusted_endpoints/{endpoint}", response_model=CommandOut
)
def remove_trusted_endpoint(
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
    account_id: str = _ACCOUNT,
    endpoint: str = _ENDPOINT,
    reason: str | None = Query(default=None, max_length=500),
) -> CommandOut:
    """Take an endpoint off the trusted list: the account's S3 credentials there are revoked."""
    command = c.build(c.UntrustEndpoint, account_id=account_id, endpoint=endpoint, reason=reason)
    return command_out(run(state, command, actor, correlation, response))


# -- S3 credentials ---------------------------------------------------------------------------


class S3CredentialIn(_In):
    endpoint: str = Field(max_length=100, description="The endpoint's id or name.")


class S3CredentialOut(BaseModel):
    access_key_id: str
    account_id: str
    endpoint_id: str
    issued_at: datetime
    revoked_at: datetime | None
    revoked_reason: str | None


class IssuedS3CredentialOut(S3CredentialOut, CommandOut):
    secret_access_key: str = Field(
        description="Shown once: the ledger keeps no copy (it derives it to check signatures)."
    )
    endpoint_url: str
    s3AccessKey: str
    s3SecretKey: str
    s3EndpointUrl: str


def _credential_out(credential: S3CredentialView) -> S3CredentialOut:
    return S3CredentialOut(
        access_key_id=credential.access_key_id,
        account_id=credential.account_id,
        endpoint_id=credential.endpoint_id,
        issued_at=credential.issued_at,
        revoked_at=credential.revoked_at,
        revoked_reason=credential.revoked_reason,
    )


def _issued_out(issued: IssuedS3Credential, response: Response) -> IssuedS3CredentialOut:
    response.headers["Cache-Control"] = "no-store"
    return IssuedS3CredentialOut(
        access_key_id=issued.access_key_id,
        account_id=issued.account_id,
        endpoint_id=issued.endpoint.endpoint_id,
        issued_at=issued.result.events[0].issued_at,  # type: ignore[attr-defined]
        revoked_at=None,
        revoked_reason=None,
        secret_access_key=issued.secret_key,
        endpoint_url=issued.endpoint.url,
        s3AccessKey=issued.access_key_id,
        s3SecretKey=issued.secret_key,
        s3EndpointUrl=issued.endpoint.url,
        **command_fields(issued.result),
    )


def _issue(
    state: State,
    actor: Actor,
    correlation: str | None,
    response: Response,
    account_id: str,
    endpoint: str | None,
) -> IssuedS3CredentialOut:
    issued = state.ledger.issue_s3_credential(
        actor,
        state.settings.keys,
        account_id=account_id,
        endpoint=endpoint,
        correlation_id=correlation,
        dry_run=dry_run_requested(),
    )
    return _issued_out(issued, response)


@router.get("/service_accounts/{account_id}/s3_credentials", response_model=list[S3CredentialOut])
def list_s3_credentials(
    actor: CurrentActor,
    state: State,
    account_id: str = _ACCOUNT,
    include_revoked: bool = Query(False),
) -> list[S3CredentialOut]:
    """The account's S3 credentials (never their secret keys)."""
    found = state.ledger.s3_credentials_of(actor, account_id, include_revoked=include_revoked)
    return [_credential_out(credential) for credential in found]


@router.post(
    "/service_accounts/{account_id}/s3_credentials",
    status_code=201,
    response_model=IssuedS3CredentialOut,
)
def create_s3_credential(
    body: S3CredentialIn,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
    account_id: str = _ACCOUNT,
) -> IssuedS3CredentialOut:
    """S3 credentials at a trusted endpoint; the secret key is in this answer only."""
    return _issue(state, actor, correlation, response, account_id, body.endpoint)


@router.delete(
    "/service_accounts/{account_id}/s3_credentials/{access_key_id}", response_model=CommandOut
)
def revoke_s3_credential(
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
    account_id: str = _ACCOUNT,
    access_key_id: str = Path(max_length=100),
    reason: str | None = Query(default=None, max_length=500),
) -> CommandOut:
    command = c.build(
        c.RevokeS3Credential, account_id=account_id, access_key_id=access_key_id, reason=reason
    )
    return command_out(run(state, command, actor, correlation, response))


# Aruna's paths: GetS3CredentialsSvcAccount and DeleteS3CredentialsSvcAccount.


@router.get(
    "/user/s3_credentials/{account_id}/s3_credentials/{endpoint}",
    response_model=IssuedS3CredentialOut,
)
def aruna_get_s3_credentials(
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
    account_id: str = _ACCOUNT,
    endpoint: str = _ENDPOINT,
) -> IssuedS3CredentialOut:
    """Aruna's ``GetS3CredentialsSvcAccount``: issues the account's S3 credentials at the
    endpoint (the secret key is shown this once; asking again while they are live is 409)."""
    return _issue(state, actor, correlation, response, account_id, endpoint)


@router.get(
    "/user/s3_credentials/{account_id}/s3_credentials", response_model=IssuedS3CredentialOut
)
def aruna_get_default_s3_credentials(
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
    account_id: str = _ACCOUNT,
) -> IssuedS3CredentialOut:
    """Aruna's call without an endpoint id: the account's one trusted endpoint (its default
    data proxy); refused when it trusts none or several."""
    return _issue(state, actor, correlation, response, account_id, None)


@router.patch(
    "/user/s3_credentials/{account_id}/s3_credentials/{endpoint}/revoke",
    response_model=CommandOut,
)
def aruna_revoke_s3_credentials(
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
    account_id: str = _ACCOUNT,
    endpoint: str = _ENDPOINT,
    reason: str | None = Query(default=None, max_length=500),
) -> CommandOut:
    """Aruna's ``DeleteS3CredentialsSvcAccount``: revoke the account's S3 credentials at the
    endpoint."""
    command = c.build(c.RevokeS3Credential, account_id=account_id, endpoint=endpoint, reason=reason)
    return command_out(run(state, command, actor, correlation, response))


# -- the gateway's check ------------------------------------------------------------------------


class S3CheckIn(_In):
    """A request the endpoint received, as it received it."""

    endpoint: str = Field(max_length=100, description="The checking endpoint's id or name.")
    method: str = Field(max_length=10)
    path: str = Field(max_length=4000, description="The path as sent, percent-encoded.")
    query: str = Field("", max_length=8000, description="The raw query string, without ?.")
    headers: dict[str, str] = Field(max_length=100)
    payload_sha256: str | None = Field(
        None,
        pattern="^[0-9a-fA-F]{64}$",
        description="SHA-256 (hex) of the body the endpoint read; needed unless the request "
        "says UNSIGNED-PAYLOAD.",
    )


class S3CheckOut(BaseModel):
    valid: bool = Field(description="The signature holds with live credentials.")
    access_key_id: str
    account_id: str
    endpoint_id: str
    operation: str
    resource: str = Field(description="The ledger path the request names (org/bucket/key).")
    needed: str = Field(description="The level the operation needs there.")
    level: str = Field(description="The account's level there.")
    copy_source: str | None = Field(
        None, description="What a copy reads from (x-amz-copy-source): it needs read there."
    )
    copy_source_level: str | None = Field(None, description="The account's level there.")
    allowed: bool


def _utf8(text: str) -> bool:
    """Whether ``text`` is real text: JSON may carry lone surrogates, which no wire holds."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@router.post("/s3/check", response_model=S3CheckOut)
def check_s3_request(body: S3CheckIn, state: State) -> S3CheckOut:
    """Whether a signed S3 request (AWS Signature Version 4) is valid, whose it is, and
    whether its account may do it. The signature is the credential: no bearer token is
    needed. A signature that does not hold is 403 with S3's error code as ``error``."""
    if any(len(name) > 200 or len(value) > 8000 for name, value in body.headers.items()):
        raise ValidationError("a header name or value is too long")
    texts = [
        body.endpoint,
        body.method,
        body.path,
        body.query,
        *body.headers,
        *body.headers.values(),
    ]
    if not all(_utf8(text) for text in texts):
        raise ValidationError("the request's method, path, query and headers must be UTF-8 text")
    request = ReceivedRequest(
        method=body.method,
        path=body.path,
        query=body.query,
        headers={name.lower(): value for name, value in body.headers.items()},
        payload_sha256=body.payload_sha256.lower() if body.payload_sha256 else None,
    )
    try:
        answer = state.ledger.check_s3_request(state.settings.keys, body.endpoint, request)
    except SignatureMismatch as exc:
        raise ApiError(403, exc.code, str(exc)) from None
    return S3CheckOut(
        valid=True,
        access_key_id=answer.access_key_id,
        account_id=answer.account_id,
        endpoint_id=answer.endpoint_id,
        operation=answer.operation,
        resource=answer.resource,
        needed=answer.needed.label,
        level=answer.level.label,
        copy_source=answer.source,
        copy_source_level=answer.source_level.label if answer.source is not None else None,
        allowed=answer.allowed,
    )
