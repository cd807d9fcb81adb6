"""Logging in through an org's OpenID Connect provider: this server is the authorization
server of the command line and a relying party of the provider.

The command line (a public client, ``tokenledger-cli``) runs the authorization code flow
with PKCE against this server, with a loopback redirect (RFC 8252)::

    CLI ── /oauth2/authorize (its PKCE challenge, its state) ──> this server
    this server ── the provider's login (our own state, nonce and PKCE) ──> provider
    provider ── /oauth2/callback (the provider's code) ──> this server
    this server: the provider's ID token checked, then ── our code ──> the CLI's loopback
    CLI ── /oauth2/token (our code, its PKCE verifier) ──> this server: a session

Nothing is stored between the steps: the state sent to the provider and the code sent to
the command line are JWTs this server signs (their own ``typ`` each, short-lived), and the
PKCE verifier towards the provider is derived from the state with the signing key
(``KeyRing.derive_secret``). A code is spent once: the session's id is made from it, and a
second ``SessionStarted`` with that id is refused.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from tokenledger.domain.names import LOOPBACK_HOSTS, shown
from tokenledger.domain.pkce import code_challenge, verify_code_challenge
from tokenledger.errors import InvalidGrant, NotFound, PermissionDenied, ValidationError
from tokenledger.service.commands import CommandResult
from tokenledger.service.reading import Reader, valid_org
from tokenledger.service.sessions import LOGIN_CLIENT_ID, SessionTokens, start_session

if TYPE_CHECKING:
    from collections.abc import Callable

    from tokenledger.service.keys import KeyRing
    from tokenledger.service.oidc import OidcClient

__all__ = [
    "CALLBACK_PATH",
    "CODE_PAGE_PATH",
    "CONSOLE_CALLBACK_PATH",
    "LoginError",
    "begin_login",
    "finish_login",
    "redeem_login_code",
]

#: Where the provider sends the browser back to this server (register it at the provider).
CALLBACK_PATH = "/oauth2/callback"
#: The page that shows the code to paste, for ``auth login --no-browser``.
CODE_PAGE_PATH = "/oauth2/code"
#: Where the web console (``tokenledger.console``), a client of the same flow, takes its code.
CONSOLE_CALLBACK_PATH = "/console/login/callback"

_STATE_TYPE = "login-state+jwt"
_CODE_TYPE = "login-code+jwt"
#: Time to log in at the provider, and time for the command line to redeem our code.
_STATE_LIFETIME = timedelta(minutes=10)
_CODE_LIFETIME = timedelta(minutes=2)
#: An S256 challenge: a SHA-256 digest in unpadded base64url, 43 characters.
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")


class LoginError(Exception):
    """The login cannot go on; ``error`` is OAuth 2.0's code for it (RFC 6749 4.1.2.1).
    ``redirect`` is where to tell the command line, with its state; None when the request
    names no address that may be trusted, so the browser itself is told."""

    def __init__(self, error: str, description: str, back: _Redirect | None = None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.redirect = (
            None if back is None else back.with_params(error=error, error_description=description)
        )


def begin_login(
    reader: Reader,
    keys: KeyRing,
    oidc: OidcClient,
    *,
    issuer: str,
    public_url: str,
    org: str,
    client_id: str,
    redirect_uri: str,
    challenge: str,
    challenge_method: str,
    state: str,
) -> str:
    """Where to send the browser: the org's provider's login page. Bad parameters are a
    ``LoginError`` shown in the browser (never a redirect to an unchecked address)."""
    if client_id != LOGIN_CLIENT_ID:
        raise LoginError("unauthorized_client", f"unknown client {shown(client_id)}")
    _check_redirect_uri(redirect_uri, public_url)
    back = _Redirect(redirect_uri, state)
    if challenge_method != "S256":
        raise LoginError("invalid_request", "code_challenge_method must be S256", back)
    if not _CHALLENGE.fullmatch(challenge):
        raise LoginError("invalid_request", "code_challenge must be a PKCE S256 challenge", back)
    try:
        org = valid_org(org)
    except ValidationError as exc:
        raise LoginError("invalid_request", str(exc), back) from None
    with reader.view() as view:
        provider = view.identity_provider(org)
    if provider is None:
        raise LoginError(
            "access_denied",
            f"org {org} has no identity provider: an admin sets one with 'tokenledger orgs "
            "set-idp'",
            back,
        )
    from tokenledger.service.oidc import OidcError

    now = reader.now()
    nonce = secrets.token_urlsafe(24)
    login_state = keys.sign(
        {
            "iss": issuer,
            "jti": uuid.uuid4().hex,
            "iat": int(now.timestamp()),
            "exp": int((now + _STATE_LIFETIME).timestamp()),
            "org": org,
            "provider": provider.issuer,
            "public_url": public_url.rstrip("/"),
            "nonce": nonce,
            "redirect_uri": redirect_uri,
            "state": state,
            "code_challenge": challenge,
        },
        typ=_STATE_TYPE,
    )
    try:
        found = oidc.discover(provider.issuer)
        return oidc.authorization_url(
            found,
            client_id=provider.oidc_client_id,
            redirect_uri=public_url.rstrip("/") + CALLBACK_PATH,
            state=login_state,
            nonce=nonce,
            code_challenge=code_challenge(_provider_verifier(keys, login_state)),
        )
    except OidcError as exc:
        raise LoginError("temporarily_unavailable", str(exc), back) from None


def finish_login(
    reader: Reader,
    keys: KeyRing,
    oidc: OidcClient,
    *,
    issuer: str,
    public_url: str,
    state: str,
    code: str | None,
    error: str | None,
    error_description: str | None,
) -> str:
    """The provider sent the browser back: check its ID token and send the browser on to
    the command line's redirect address with our one-time code (or with the error)."""
    from tokenledger.service.oidc import OidcError

    login = _decode(keys, state, _STATE_TYPE, issuer, reader.now(), "login state")
    if login.get("public_url") != public_url.rstrip("/"):
        # The login began at another address than the one the provider came back to: a
        # request with a forged Host header, whose code would go to the forger's "own page".
        raise LoginError("invalid_request", "the login began at another address: start again")
    back = _Redirect(str(login["redirect_uri"]), str(login["state"]))
    if error is not None or not code:
        said = f": {shown(error_description)}" if error_description else ""
        raise LoginError("access_denied", f"the identity provider refused the login{said}", back)
    org = str(login["org"])
    with reader.view() as view:
        provider = view.identity_provider(org)
    if provider is None or provider.issuer != login["provider"]:
        raise LoginError("access_denied", f"org {org}'s identity provider changed", back)
    try:
        found = oidc.discover(provider.issuer)
        id_token = oidc.exchange_code(
            found,
            client_id=provider.oidc_client_id,
            client_secret=keys.provider_secrets.get(org) if provider.client_secret else None,
            code=code,
            redirect_uri=public_url.rstrip("/") + CALLBACK_PATH,
            code_verifier=_provider_verifier(keys, state),
        )
        identity = oidc.validate_id_token(
            found,
            id_token,
            client_id=provider.oidc_client_id,
            nonce=str(login["nonce"]),
            now=reader.now(),
        )
    except OidcError as exc:
        raise LoginError("access_denied", str(exc), back) from None
    assert identity.email is not None  # validate_id_token requires a verified address
    now = reader.now()
    our_code = keys.sign(
        {
            "iss": issuer,
            "aud": LOGIN_CLIENT_ID,
            "jti": uuid.uuid4().hex,
            "iat": int(now.timestamp()),
            "exp": int((now + _CODE_LIFETIME).timestamp()),
            "sub": identity.email,
            "org": org,
            "provider": identity.issuer,
            "provider_subject": identity.subject,
            "redirect_uri": back.redirect_uri,
            "code_challenge": str(login["code_challenge"]),
        },
        typ=_CODE_TYPE,
    )
    return back.with_params(code=our_code)


def redeem_login_code(
    reader: Reader,
    execute: Callable[..., CommandResult],
    keys: KeyRing,
    *,
    issuer: str,
    code: str,
    code_verifier: str,
    redirect_uri: str,
    client_id: str,
) -> SessionTokens:
    """``grant_type=authorization_code``: our code and the command line's PKCE verifier
    for a session. ``InvalidGrant`` for a forged, expired, spent or misdirected code or a
    wrong verifier, alike in what they change: nothing."""
    if client_id != LOGIN_CLIENT_ID:
        raise InvalidGrant(f"this code was not issued to client {shown(client_id)}")
    claims = _decode(keys, code, _CODE_TYPE, issuer, reader.now(), "authorization code")
    if claims.get("aud") != LOGIN_CLIENT_ID or claims.get("redirect_uri") != redirect_uri:
        raise InvalidGrant("the authorization code was issued for another redirect_uri")
    if not verify_code_challenge(code_verifier, str(claims.get("code_challenge"))):
        raise InvalidGrant("the code_verifier does not match the code_challenge (PKCE)")
    digest = hashlib.sha256(str(claims["jti"]).encode()).hexdigest()
    try:
        return start_session(
            reader,
            execute,
            keys,
            issuer=issuer,
            session_id="ses_" + digest[:24],
            org=str(claims["org"]),
            email=str(claims["sub"]),
            provider_issuer=str(claims["provider"]),
            provider_subject=str(claims["provider_subject"]),
        )
    except (PermissionDenied, NotFound, ValidationError) as exc:
        if isinstance(exc, InvalidGrant):
            raise
        raise InvalidGrant(str(exc)) from None


def _provider_verifier(keys: KeyRing, login_state: str) -> str:
    """The PKCE verifier towards the provider, made again from the signed state."""
    digest = hashlib.sha256(login_state.encode()).hexdigest()
    return keys.derive_secret("pkce " + digest)


def _decode(
    keys: KeyRing, token: str, typ: str, issuer: str, now: datetime, what: str
) -> dict[str, Any]:
    from tokenledger.service.keys import InvalidAccessToken

    try:
        return keys.decode_typed(token, typ=typ, issuer=issuer, now=now)
    except InvalidAccessToken as exc:
        message = f"the {what} is not valid ({exc.reason})"
        if typ == _CODE_TYPE:
            raise InvalidGrant(message) from None
        raise LoginError("invalid_request", message + ": start the login again") from None


def _check_redirect_uri(redirect_uri: str, public_url: str) -> None:
    """The command line's loopback address (RFC 8252 section 7.3: any port, http), this
    server's code page or its web console's callback; nothing else, so a login is never sent
    to another site."""
    own_pages = (CODE_PAGE_PATH, CONSOLE_CALLBACK_PATH)
    if redirect_uri in {public_url.rstrip("/") + path for path in own_pages}:
        return
    refused = LoginError(
        "invalid_request",
        "redirect_uri must be http://127.0.0.1:<port>/... (the command line's loopback) "
        f"or {public_url.rstrip('/')}{CODE_PAGE_PATH}",
    )
    try:
        parts = urlsplit(redirect_uri)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise refused from None
    if (
        len(redirect_uri) > 200
        or parts.scheme != "http"
        or host not in LOOPBACK_HOSTS
        or port is None
        or parts.query
        or parts.fragment
        or parts.username
    ):
        raise refused


class _Redirect:
    """The command line's redirect address and its state, to send answers back to."""

    def __init__(self, redirect_uri: str, state: str) -> None:
        self.redirect_uri = redirect_uri
        self.state = state

    def with_params(self, **params: str) -> str:
        return f"{self.redirect_uri}?{urlencode({**params, 'state': self.state})}"
