"""OAuth 2.0 endpoints: client credentials grant (RFC 6749 4.4), token introspection
(RFC 7662) and token revocation (RFC 7009).

Who may call them:

* ``/oauth2/token``: a client, authenticated by HTTP Basic or by ``client_id`` and
  ``client_secret`` form fields (one method, not both).
* ``/oauth2/introspect``: any holder of an active credential: a ledger token or an
  access token as ``Authorization: Bearer``, or client credentials by HTTP Basic.
  A caller learns nothing it could not learn by presenting the token itself, and
  tokens carry 190 bits of randomness, so there is nothing to scan for.
* ``/oauth2/revoke``: a ledger token, authorised like ``tokenledger tokens revoke``
  (the token's own principal, an operator, or an admin of a service account's
  project). Access tokens (JWTs) cannot be revoked one by one: they live an hour
  at most; revoking their client credential makes them all inactive.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from fastapi import APIRouter, Depends, Form, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasicCredentials
from starlette.concurrency import run_in_threadpool

from tokenledger.api.deps import ERRORS, Correlation, State, command_out
from tokenledger.api.introspection import (
    MAX_HINT_LENGTH,
    MAX_SECRET_LENGTH,
    NO_STORE,
    bearer_caller,
    cached_bearer_caller,
    client_caller,
    introspection_response,
)
from tokenledger.api.problems import REALM, ApiError
from tokenledger.api.schemas import CommandOut, ErrorOut, IntrospectionOut, TokenResponseOut
from tokenledger.api.security import (
    CORRELATION_HEADER,
    BearerCredentials,
    ClientBasic,
    CurrentActor,
    unauthorised,
)
from tokenledger.api.state import ApiState
from tokenledger.domain.model import Introspection
from tokenledger.domain.permissions import Level
from tokenledger.domain.secrets import looks_like_jwt
from tokenledger.errors import PermissionDenied, StorageError, ValidationError

__all__ = ["INTROSPECT_PATH", "router"]

router = APIRouter(prefix="/oauth2", tags=["oauth2"])

#: The introspection route's path, which is also its metrics label: ``api.fastpath``
#: answers the common call there before FastAPI does.
INTROSPECT_PATH = "/oauth2/introspect"

_encoder = msgspec.json.Encoder()

SecretField = Annotated[str, Form(max_length=MAX_SECRET_LENGTH)]
OptionalField = Annotated[str | None, Form(max_length=MAX_HINT_LENGTH)]


def _oauth_error(status: int, error: str, description: str, **headers: str) -> ApiError:
    return ApiError(status, error, description, {**NO_STORE, **headers})


# -- the client credentials grant ---------------------------------------------------------------


@router.post(
    "/token",
    response_model=TokenResponseOut,
    responses={
        400: {"model": ErrorOut, "description": "invalid_request, unsupported_grant_type, ..."},
        401: {"model": ErrorOut, "description": "invalid_client"},
        503: {"model": ErrorOut, "description": "No signing key, or the database is down."},
    },
)
def token(
    state: State,
    basic: ClientBasic,
    grant_type: Annotated[str, Form(max_length=100)],
    scope: Annotated[str | None, Form(max_length=4000)] = None,
    client_id: OptionalField = None,
    client_secret: OptionalField = None,
) -> Response:
    """Exchange a client id and secret for a signed access token (a JWT, one hour by default).

    ``scope`` (space-separated ``level:resource``) narrows the token below the service
    account's permission; without it the token carries the whole permission.
    """
    if grant_type != "client_credentials":
        state.metrics.count("token_requests", "unsupported_grant_type")
        raise _oauth_error(400, "unsupported_grant_type", "only client_credentials is supported")
    if basic is not None and (client_id is not None or client_secret is not None):
        raise _oauth_error(400, "invalid_request", "authenticate the client one way, not two")
    if basic is not None:
        client_id, client_secret = basic.username, basic.password
    challenge = {"WWW-Authenticate": f'Basic realm="{REALM}"'} if basic is not None else {}
    if not client_id or not client_secret:
        state.metrics.count("token_requests", "invalid_client")
        raise _oauth_error(401, "invalid_client", "client authentication is missing", **challenge)
    ring = state.key_ring()
    if ring is None or ring.active is None:
        state.metrics.count("token_requests", "no_signing_key")
        raise _oauth_error(
            503, "temporarily_unavailable", "no signing key: run 'tokenledger keys rotate'"
        )
    try:
        credential, account = state.ledger.authenticate_client(client_id, client_secret)
    except PermissionDenied as exc:
        state.metrics.count("token_requests", "invalid_client")
        raise _oauth_error(401, "invalid_client", str(exc), **challenge) from None
    try:
        issued = state.ledger.issue_access_token(
            credential,
            account,
            ring,
            issuer=state.settings.issuer,
            scope=scope,
            lifetime=state.settings.access_token_lifetime,
        )
    except (PermissionDenied, ValidationError) as exc:
        state.metrics.count("token_requests", "invalid_scope")
        raise _oauth_error(400, "invalid_scope", str(exc)) from None
    except StorageError as exc:
        raise _oauth_error(503, "temporarily_unavailable", str(exc)) from None
    state.metrics.count("token_requests", "issued")
    body = {
        "access_token": issued.access_token,
        "token_type": issued.token_type,
        "expires_in": issued.expires_in,
        "scope": issued.scope,
    }
    return Response(_encoder.encode(body), media_type="application/json", headers=NO_STORE)


# -- introspection -----------------------------------------------------------------------------


Caller = HTTPAuthorizationCredentials | HTTPBasicCredentials


async def introspection_credentials(bearer: BearerCredentials, basic: ClientBasic) -> Caller:
    """Some credential was presented (checked before the form, so no token is a 401)."""
    if bearer is not None:
        return bearer
    if basic is not None:
        return basic
    raise unauthorised(
        "introspection needs a ledger token or access token (Bearer) or client credentials (Basic)",
        token_sent=False,
    )


def introspection_caller(state: ApiState, credentials: Caller) -> str:
    """Any active credential may introspect; returns who called."""
    if isinstance(credentials, HTTPAuthorizationCredentials):
        return bearer_caller(state, credentials.credentials.strip())
    return client_caller(state, credentials.username, credentials.password)


def _cached_caller(state: ApiState, credentials: Caller) -> bool:
    """Whether a cached answer already vouches for a Bearer caller (no database needed)."""
    if not isinstance(credentials, HTTPAuthorizationCredentials):
        return False
    return cached_bearer_caller(state, credentials.credentials.strip())


def _introspect(
    state: ApiState, credentials: Caller, token: str, resource: str | None, wanted: Level | None
) -> Introspection:
    introspection_caller(state, credentials)
    return state.introspect(token, resource=resource, level=wanted)


@router.post(
    INTROSPECT_PATH.removeprefix(router.prefix),
    response_model=IntrospectionOut,
    responses={
        400: {"model": ErrorOut, "description": "invalid_request"},
        401: {"model": ErrorOut, "description": "The caller is not authenticated."},
        503: {"model": ErrorOut, "description": "The database cannot be used."},
    },
)
async def introspect(
    state: State,
    credentials: Annotated[Caller, Depends(introspection_credentials)],
    token: SecretField,
    token_type_hint: OptionalField = None,
    resource: OptionalField = None,
    level: OptionalField = None,
) -> Response:
    """Is ``token`` (a ledger token's secret or an access token) active, and what may it do?

    Active answers carry ``sub``, ``scope`` (the effective grants as ``level:resource``),
    ``exp``, ``iat``, ``token_type``, ``token_id``, ``client_id`` (access tokens) and
    ``grants``. With ``resource`` (and ``level``, default ``read``) the answer also says
    whether the token allows that there now (``allowed``). An inactive token's answer is
    exactly ``{"active": false}``. ``token_type_hint`` is accepted and not needed.

    The common call (a Bearer caller, ``token`` and perhaps ``token_type_hint``) is
    answered by ``api.fastpath`` before it reaches FastAPI, with the same functions
    (``api.introspection``); this route answers the rest and documents the endpoint.
    """
    wanted: Level | None = None
    if level is not None:
        if resource is None:
            raise ApiError(400, "invalid_request", "level needs resource")
        try:
            wanted = Level.parse(level)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
    # Served from the cache on the event loop when nothing needs the database; otherwise
    # one trip to the thread pool for the caller's check and the answer together.
    answer = state.peek(token, resource=resource, level=wanted)
    if answer is None or not _cached_caller(state, credentials):
        answer = await run_in_threadpool(_introspect, state, credentials, token, resource, wanted)
    return introspection_response(state, answer)


# -- revocation ---------------------------------------------------------------------------------


@router.post("/revoke", response_model=CommandOut | dict[str, str], responses=ERRORS)
def revoke(
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    token: SecretField,
    token_type_hint: OptionalField = None,
) -> JSONResponse:
    """Revoke a ledger token (and the tokens derived from it) or a client credential, given
    its secret. Unknown, malformed or already revoked: 200 all the same (RFC 7009 2.2).
    Access tokens (JWTs) answer ``unsupported_token_type``: revoke their client credential."""
    if looks_like_jwt(token.strip()):
        raise _oauth_error(
            400,
            "unsupported_token_type",
            "access tokens expire by themselves: revoke the client credential that obtained them",
        )
    result = state.ledger.revoke_presented(
        token, actor, reason="revoked through /oauth2/revoke", correlation_id=correlation
    )
    state.metrics.count("revocations", "revoked" if result is not None else "nothing_to_revoke")
    if result is None:
        return JSONResponse({}, headers=NO_STORE)
    headers = {**NO_STORE, CORRELATION_HEADER: result.correlation_id}
    return JSONResponse(command_out(result).model_dump(), headers=headers)
