"""The client's side of the server's OAuth 2.0 endpoints: ``/oauth2/token`` (client
credentials, authorization code with PKCE, refresh token) and ``/oauth2/revoke``."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

import msgspec

from tokenledger.client.http import Http
from tokenledger.errors import LedgerError

__all__ = [
    "CLI_CLIENT_ID",
    "TokenAnswer",
    "authorization_code_grant",
    "client_credentials_grant",
    "refresh_grant",
    "revoke_refresh_token",
]

#: The public client (no secret) the command line logs in as (RFC 8252).
CLI_CLIENT_ID = "tokenledger-cli"

TOKEN_PATH = "/oauth2/token"
REVOKE_PATH = "/oauth2/revoke"


class TokenAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """A token endpoint's answer (RFC 6749 section 5.1, with the ledger's session fields
    for the authorization code and refresh token grants)."""

    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    scope: str | None = None
    refresh_token: str | None = None
    session_id: str | None = None
    session_expires_at: datetime | None = None
    org: str | None = None
    sub: str | None = None

    def __repr__(self) -> str:
        return (
            f"TokenAnswer(token_type={self.token_type!r}, expires_in={self.expires_in}, "
            f"session_id={self.session_id!r}, sub={self.sub!r})"
        )


# Resolved at import, before any test clock can stand in for ``datetime`` (see credentials).
_answer_decoder = msgspec.json.Decoder(TokenAnswer)


def _token(http: Http, form: dict[str, str], basic: tuple[str, str] | None = None) -> TokenAnswer:
    body = http.call("POST", TOKEN_PATH, form=form, basic=basic, token_endpoint=True)
    try:
        return msgspec.convert(body, TokenAnswer)
    except msgspec.ValidationError as exc:
        raise LedgerError(f"the token answer of {http.server} cannot be read: {exc}") from None


def client_credentials_grant(
    http: Http, client_id: str, client_secret: str, scope: str | None = None
) -> TokenAnswer:
    """An access token for a service account's client credentials (RFC 6749 section 4.4),
    the client authenticated by HTTP Basic, each half form-urlencoded first (section 2.3.1)."""
    form = {"grant_type": "client_credentials"}
    if scope is not None:
        form["scope"] = scope
    basic = (quote(client_id, safe=""), quote(client_secret, safe=""))
    return _token(http, form, basic)


def authorization_code_grant(
    http: Http, code: str, redirect_uri: str, code_verifier: str
) -> TokenAnswer:
    """A session for the code the browser brought back (RFC 6749 4.1.3, RFC 7636 4.5)."""
    return _token(
        http,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
            "client_id": CLI_CLIENT_ID,
        },
    )


def refresh_grant(http: Http, refresh_token: str) -> TokenAnswer:
    """A new access token, and the refresh token that replaces this one (RFC 6749 section 6)."""
    return _token(
        http,
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": CLI_CLIENT_ID,
        },
    )


def revoke_refresh_token(http: Http, refresh_token: str) -> None:
    """End the session the refresh token belongs to (RFC 7009; no other credential needed)."""
    http.call(
        "POST",
        REVOKE_PATH,
        form={"token": refresh_token, "token_type_hint": "refresh_token"},
        token_endpoint=True,
    )
