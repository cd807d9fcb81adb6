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

from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, Form, Header, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasicCredentials
from starlette.concurrency import run_in_threadpool

from tokenledger.api.deps import ERRORS, Correlation, State, command_out
from tokenledger.api.introspection import (
    MAX_HINT_LENGTH,
    MAX_SECRET_LENGTH,
    MIN_POSITION_HEADER,
    NO_STORE,
    bearer_caller,
    cached_bearer_caller,
    client_caller,
    introspection_response,
    min_position_of,
)
from tokenledger.api.problems import REALM, ApiError
from tokenledger.api.schemas import CommandOut, ErrorOut, IntrospectionOut, TokenResponseOut
from tokenledger.api.security import (
    CORRELATION_HEADER,
    BearerCredentials,
    ClientBasic,
    current_actor,
    unauthorised,
)
from tokenledger.api.state import ApiState
from tokenledger.domain.model import Introspection, IssuedAccessToken
from tokenledger.domain.permissions import Level
from tokenledger.domain.secrets import MAX_JWT_LENGTH, TokenKind, looks_like_jwt
from tokenledger.errors import InvalidGrant, PermissionDenied, StorageError, ValidationError
from tokenledger.service.federation import (
    ISSUED_TOKEN_TYPE,
    SUBJECT_TOKEN_TYPES,
    TOKEN_EXCHANGE_GRANT,
)

if TYPE_CHECKING:
    from tokenledger.service.keys import KeyRing
    from tokenledger.service.sessions import SessionTokens

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


GRANT_TYPES = (
    "client_credentials",
    "authorization_code",
    "refresh_token",
    TOKEN_EXCHANGE_GRANT,
)


@router.post(
    "/token",
    response_model=TokenResponseOut,
    responses={
        400: {"model": ErrorOut, "description": "invalid_request, invalid_grant, ..."},
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
    code: Annotated[str | None, Form(max_length=4000)] = None,
    code_verifier: OptionalField = None,
    redirect_uri: OptionalField = None,
    refresh_token: OptionalField = None,
    subject_token: Annotated[str | None, Form(max_length=MAX_JWT_LENGTH)] = None,
    subject_token_type: OptionalField = None,
    service_account: OptionalField = None,
) -> Response:
    """Obtain an access token (a signed JWT, one hour by default), by one of four grants:

    * ``client_credentials`` (RFC 6749 4.4): a service account's client id and secret.
      ``scope`` (space-separated ``level:resource``) narrows the token below the account's
      permission.
    * ``authorization_code`` (RFC 6749 4.1, PKCE): the code ``/oauth2/authorize`` gave the
      command line, with ``code_verifier``, ``redirect_uri`` and ``client_id=tokenledger-cli``.
      Starts a session: the answer adds a ``refresh_token`` and the session's id and end.
    * ``refresh_token``: a session's refresh token, for a new access token and a new
      refresh token (the one presented is spent; presenting it again ends the session).
    * ``urn:ietf:params:oauth:grant-type:token-exchange`` (RFC 8693): an external ID token
      (``subject_token``) that ``service_account`` trusts, for that account's access token.
    """
    ring = state.key_ring()
    if ring is None or ring.active is None:
        state.metrics.count("token_requests", "no_signing_key")
        raise _oauth_error(
            503, "temporarily_unavailable", "no signing key: run 'tokenledger keys rotate'"
        )
    try:
        if grant_type == "client_credentials":
            body = _client_credentials(state, ring, basic, scope, client_id, client_secret)
        elif grant_type == "authorization_code":
            body = _session_body(
                state.ledger.redeem_login_code(
                    ring,
                    issuer=state.settings.issuer,
                    code=_required(code, "code"),
                    code_verifier=_required(code_verifier, "code_verifier"),
                    redirect_uri=_required(redirect_uri, "redirect_uri"),
                    client_id=_required(client_id, "client_id"),
                )
            )
        elif grant_type == "refresh_token":
            body = _session_body(
                state.ledger.refresh_session(
                    _required(refresh_token, "refresh_token"), ring, issuer=state.settings.issuer
                )
            )
        elif grant_type == TOKEN_EXCHANGE_GRANT:
            if _required(subject_token_type, "subject_token_type") not in SUBJECT_TOKEN_TYPES:
                raise _oauth_error(
                    400, "invalid_request", "subject_token_type must be an ID token or a JWT"
                )
            issued = state.ledger.exchange_token(
                _required(subject_token, "subject_token"),
                _required(service_account, "service_account"),
                ring,
                state.oidc(),
                issuer=state.settings.issuer,
            )
            body = {**_access_token_body(issued), "issued_token_type": ISSUED_TOKEN_TYPE}
        else:
            state.metrics.count("token_requests", "unsupported_grant_type")
            raise _oauth_error(
                400,
                "unsupported_grant_type",
                f"grant_type must be one of {', '.join(GRANT_TYPES)}",
            )
    except InvalidGrant as exc:
        state.metrics.count("token_requests", "invalid_grant")
        raise _oauth_error(400, "invalid_grant", str(exc)) from None
    except StorageError as exc:
        raise _oauth_error(503, "temporarily_unavailable", str(exc)) from None
    state.metrics.count("token_requests", grant_type.rpartition(":")[2])
    return Response(_encoder.encode(body), media_type="application/json", headers=NO_STORE)


def _required(value: str | None, name: str) -> str:
    if not value:
        raise _oauth_error(400, "invalid_request", f"{name} is missing")
    return value


def _client_credentials(
    state: ApiState,
    ring: KeyRing,
    basic: HTTPBasicCredentials | None,
    scope: str | None,
    client_id: str | None,
    client_secret: str | None,
) -> dict[str, Any]:
    if basic is not None and (client_id is not None or client_secret is not None):
        raise _oauth_error(400, "invalid_request", "authenticate the client one way, not two")
    if basic is not None:
        client_id, client_secret = basic.username, basic.password
    challenge = {"WWW-Authenticate": f'Basic realm="{REALM}"'} if basic is not None else {}
    if not client_id or not client_secret:
        state.metrics.count("token_requests", "invalid_client")
        raise _oauth_error(401, "invalid_client", "client authentication is missing", **challenge)
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
    return _access_token_body(issued)


def _access_token_body(issued: IssuedAccessToken) -> dict[str, Any]:
    return {
        "access_token": issued.access_token,
        "token_type": issued.token_type,
        "expires_in": issued.expires_in,
        "scope": issued.scope,
    }


def _session_body(tokens: SessionTokens) -> dict[str, Any]:
    """RFC 6749 5.1's answer, and what a command line keeps of its session."""
    return {
        "access_token": tokens.access_token,
        "token_type": tokens.token_type,
        "expires_in": tokens.expires_in,
        "refresh_token": tokens.refresh_token,
        "scope": tokens.scope,
        "session_id": tokens.session_id,
        "session_expires_at": tokens.session_expires_at.isoformat(),
        "org": tokens.org,
        "sub": tokens.sub,
    }


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
    state: ApiState,
    credentials: Caller,
    token: str,
    resource: str | None,
    wanted: Level | None,
    min_position: int | None,
) -> tuple[Introspection, int]:
    introspection_caller(state, credentials)
    return state.introspect_at_least(token, min_position, resource=resource, level=wanted)


@router.post(
    INTROSPECT_PATH.removeprefix(router.prefix),
    response_model=IntrospectionOut,
    responses={
        400: {"model": ErrorOut, "description": "invalid_request"},
        401: {"model": ErrorOut, "description": "The caller is not authenticated."},
        425: {
            "model": ErrorOut,
            "description": "position_not_reached: min_position is beyond the log's head.",
        },
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
    min_position: OptionalField = None,
    min_position_header: Annotated[
        str | None, Header(alias=MIN_POSITION_HEADER, max_length=MAX_HINT_LENGTH)
    ] = None,
) -> Response:
    """Is ``token`` (a ledger token's secret or an access token) active, and what may it do?

    Active answers carry ``sub``, ``scope`` (the effective grants as ``level:resource``),
    ``exp``, ``iat``, ``token_type``, ``token_id``, ``client_id`` (access tokens) and
    ``grants``. With ``resource`` (and ``level``, default ``read``) the answer also says
    whether the token allows that there now (``allowed``). An inactive token's answer is
    exactly ``{"active": false, "log_position": N}``. ``token_type_hint`` is accepted and
    not needed.

    Every answer carries ``log_position``: it reflects every event of the log up to that
    position at least. ``min_position`` (form field, or the ``TokenLedger-Min-Position``
    header) asks for an answer reflecting at least that position, as a service that just
    revoked a token at position *p* may ask of every worker: the worker waits (up to half
    a second) for the events to reach it, then reads the projections directly; a position
    beyond the log's head is answered ``425 position_not_reached`` with ``Retry-After``.

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
    wanted_position = min_position_of(min_position, min_position_header)
    # Served from the cache on the event loop when nothing needs the database; otherwise
    # one trip to the thread pool for the caller's check and the answer together.
    followed = state.followed_position(wanted_position)
    if followed is not None:
        cached = state.peek(token, resource=resource, level=wanted)
        if cached is not None and _cached_caller(state, credentials):
            return introspection_response(state, cached, followed)
    answer, position = await run_in_threadpool(
        _introspect, state, credentials, token, resource, wanted, wanted_position
    )
    return introspection_response(state, answer, position)


# -- revocation ---------------------------------------------------------------------------------


@router.post("/revoke", response_model=CommandOut | dict[str, str], responses=ERRORS)
def revoke(
    state: State,
    correlation: Correlation,
    bearer: BearerCredentials,
    token: SecretField,
    token_type_hint: OptionalField = None,
) -> JSONResponse:
    """Revoke a ledger token (and the tokens derived from it) or a client credential, given
    its secret and a Bearer token authorised like ``tokenledger tokens revoke``; or end the
    session of a refresh token (``tlr_...``, logging out: holding it is authority enough).
    Unknown, malformed or already revoked: 200 all the same (RFC 7009 2.2). Access tokens
    (JWTs) answer ``unsupported_token_type``: end their session or revoke their client
    credential."""
    presented = token.strip()
    if looks_like_jwt(presented):
        raise _oauth_error(
            400,
            "unsupported_token_type",
            "access tokens expire by themselves: end their session or revoke the client "
            "credential that obtained them",
        )
    if presented.startswith(TokenKind.REFRESH.prefix):
        # Holding a refresh token is authority enough to end its session; a mistyped or
        # unknown one ends nothing and is answered alike (RFC 7009 2.2).
        result = state.ledger.log_out(presented)
    else:
        actor = current_actor(bearer, state)
        result = state.ledger.revoke_presented(
            token, actor, reason="revoked through /oauth2/revoke", correlation_id=correlation
        )
    state.metrics.count("revocations", "revoked" if result is not None else "nothing_to_revoke")
    if result is None:
        return JSONResponse({}, headers=NO_STORE)
    headers = {**NO_STORE, CORRELATION_HEADER: result.correlation_id}
    return JSONResponse(command_out(result).model_dump(), headers=headers)
