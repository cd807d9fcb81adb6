"""Who is calling: bearer ledger tokens (RFC 6750) and client credentials (RFC 6749 2.3.1).

Management calls take ``Authorization: Bearer <ledger token secret>`` or
``Bearer <access token>`` (a JWT from ``/oauth2/token``: a session's, a client
credential's or an exchanged one) and act as its principal, authorised by its
effective grants exactly as the CLI is with ``TOKENLEDGER_TOKEN``. An access token
is usable while what obtained it is (its session, credential or issuer trust).
"""

from __future__ import annotations

import binascii
import re
from base64 import b64decode
from typing import Annotated
from urllib.parse import unquote

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials
from fastapi.security import HTTPBearer as _HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from tokenledger.api.problems import REALM, ApiError, bearer_challenge
from tokenledger.api.state import ApiState, api_state
from tokenledger.domain.model import Actor
from tokenledger.domain.names import check_no_secret
from tokenledger.domain.secrets import looks_like_jwt
from tokenledger.errors import PermissionDenied

__all__ = [
    "CORRELATION_HEADER",
    "BearerCredentials",
    "ClientBasic",
    "CurrentActor",
    "authenticate_bearer",
    "bearer_secret",
    "correlation_id",
    "current_actor",
    "unauthorised",
]

CORRELATION_HEADER = "X-Correlation-ID"
_CORRELATION = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

bearer_scheme = _HTTPBearer(
    auto_error=False,
    scheme_name="ledgerToken",
    description="A ledger token's secret (tlp_..., tls_..., tld_...) or an access token (JWT).",
)


class _ClientBasic(HTTPBasic):
    """HTTP Basic client authentication; ``None`` when the header uses another scheme."""

    async def __call__(  # type: ignore[override]
        self, request: Request
    ) -> HTTPBasicCredentials | None:
        scheme, param = get_authorization_scheme_param(request.headers.get("Authorization"))
        if scheme.lower() != "basic":
            return None
        try:
            decoded = b64decode(param, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError, binascii.Error):
            raise _invalid_client("the Basic credentials are not valid base64") from None
        username, separator, password = decoded.partition(":")
        if not separator:
            raise _invalid_client("the Basic credentials need client_id:client_secret")
        # RFC 6749 2.3.1: both halves are form-urlencoded before base64.
        return HTTPBasicCredentials(username=unquote(username), password=unquote(password))


client_basic_scheme = _ClientBasic(
    auto_error=False,
    scheme_name="clientCredentials",
    description="OAuth2 client authentication: client_id and client_secret (tlc_...).",
)

BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
ClientBasic = Annotated[HTTPBasicCredentials | None, Depends(client_basic_scheme)]


def _invalid_client(description: str) -> ApiError:
    return ApiError(
        401,
        "invalid_client",
        description,
        {"WWW-Authenticate": f'Basic realm="{REALM}"'},
    )


def unauthorised(description: str, *, token_sent: bool = True) -> ApiError:
    """401 with a ``WWW-Authenticate: Bearer`` challenge (no error code when nothing was sent)."""
    challenge = bearer_challenge("invalid_token", description) if token_sent else bearer_challenge()
    return ApiError(401, "invalid_token", description, {"WWW-Authenticate": challenge})


def bearer_secret(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None:
        raise unauthorised(
            "this call needs 'Authorization: Bearer <ledger token>'", token_sent=False
        )
    return credentials.credentials.strip()


def current_actor(
    credentials: BearerCredentials,
    state: Annotated[ApiState, Depends(api_state)],
) -> Actor:
    """The principal of the presented ledger token or access token; 401 unless usable."""
    secret = bearer_secret(credentials)
    try:
        actor = authenticate_bearer(state, secret)
    except PermissionDenied as exc:
        state.metrics.count("authentications", "refused")
        raise unauthorised(str(exc)) from None
    state.metrics.count("authentications", "ok")
    return actor


def authenticate_bearer(state: ApiState, secret: str, *, read_through: bool = False) -> Actor:
    """The principal of a presented ledger token or access token; ``PermissionDenied`` unless
    it is usable now (a long-lived call asks again as it goes, ``read_through`` the cache: it
    must judge the credential as of what it is about to send)."""
    if looks_like_jwt(secret):
        return state.authenticate_access_token(secret)
    return state.authenticate(secret, read_through=read_through)


CurrentActor = Annotated[Actor, Depends(current_actor)]


async def correlation_id(request: Request) -> str | None:
    """The caller's ``X-Correlation-ID``, to tie the events a call appends to its own work."""
    value = request.headers.get(CORRELATION_HEADER)
    if value is None:
        return None
    if not _CORRELATION.fullmatch(value):
        raise ApiError(
            400,
            "invalid_request",
            f"{CORRELATION_HEADER} must be 1 to 64 letters, digits, '.', '_', ':' or '-'",
        )
    try:
        return check_no_secret(value, CORRELATION_HEADER)  # it is stored in the log
    except ValueError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None
