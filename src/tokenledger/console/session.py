"""Who is logged in to the console: the session cookie opened, its credential authenticated
as the API authenticates a bearer token, and the CSRF check of every form.

``cookies`` says what the cookie holds and why.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Literal, TypeVar

from fastapi import Request

from tokenledger.api.security import authenticate_bearer
from tokenledger.api.state import ApiState
from tokenledger.console.cookies import (
    CONSOLE_LIFETIME,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    ConsoleLogin,
    Sealer,
    SignedIn,
)
from tokenledger.console.web import CsrfRefused, LoginRequired, PendingCookie, pending_cookies
from tokenledger.domain.model import Actor
from tokenledger.errors import PermissionDenied
from tokenledger.service.sessions import SessionTokens

__all__ = [
    "check_csrf",
    "logged_in",
    "login_in_progress",
    "sealer",
    "secure_cookies",
    "set_login",
    "sign_in",
    "sign_out",
    "signed_in",
]

#: A session's access token is renewed this long before it expires, so that a page never
#: presents one that runs out while it is answered.
_RENEW_BEFORE = timedelta(minutes=1)


def sealer(state: ApiState) -> Sealer:
    """The cookie sealer under the server's signing key; without keys, no console login
    (``PermissionDenied``, answered as the API answers it)."""
    return Sealer(state.signing_keys())


def secure_cookies(state: ApiState, request: Request) -> bool:
    """Cookies are ``Secure`` when the browser reached the server over https."""
    public = state.settings.public_url or ""
    return request.url.scheme == "https" or public.startswith("https://")


def signed_in(state: ApiState, request: Request) -> SignedIn | None:
    """The unexpired console login the request's cookie holds, if any."""
    return _unexpired(state, request, SESSION_COOKIE, SignedIn)


_Sealed = TypeVar("_Sealed", SignedIn, ConsoleLogin)


def _unexpired(state: ApiState, request: Request, name: str, kind: type[_Sealed]) -> _Sealed | None:
    """What the request's cookie ``name`` holds, read as ``kind``, if it opens and has not
    expired; None for anything else."""
    data = sealer(state).open(name, request.cookies.get(name))
    if data is None:
        return None
    now = state.ledger.now()
    try:
        found = kind.from_dict(data, now.tzinfo)
    except (KeyError, TypeError, ValueError):
        return None
    return found if found.expires > now else None


def sign_in(
    state: ApiState,
    request: Request,
    *,
    secret: str | None = None,
    tokens: SessionTokens | None = None,
    renewing: SignedIn | None = None,
) -> SignedIn:
    """Set the session cookie for a ledger token's ``secret`` or a login session's
    ``tokens`` (``renewing``: the login whose tokens these renew, whose end and CSRF value
    they keep); what the cookie holds."""
    now = state.ledger.now()
    end = renewing.expires if renewing is not None else now + CONSOLE_LIFETIME
    nonce = renewing.nonce if renewing is not None else secrets.token_urlsafe(24)
    if tokens is not None:
        login = SignedIn(
            expires=min(end, tokens.session_expires_at),
            nonce=nonce,
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            access_expires=tokens.expires_at,
        )
    else:
        login = SignedIn(expires=end, nonce=nonce, secret=secret)
    _set(request, state, SESSION_COOKIE, sealer(state).seal(SESSION_COOKIE, login.to_dict()))
    return login


def sign_out(state: ApiState, request: Request) -> None:
    _set(request, state, SESSION_COOKIE, None)


def logged_in(state: ApiState, request: Request) -> Actor:
    """The logged-in actor, for a page run in the thread pool: authenticated exactly as the
    API authenticates the same credential as a bearer token (``authenticate_bearer``); a
    login session's expired access token is renewed first with its refresh token. No usable
    login: ``LoginRequired``, and the cookie is cleared."""
    login = signed_in(state, request)
    if login is None:
        if request.cookies.get(SESSION_COOKIE):
            sign_out(state, request)
            raise LoginRequired("your console login has ended: log in again")
        raise LoginRequired()
    try:
        if login.refresh_token is not None and _needs_renewal(state, login):
            tokens = state.ledger.refresh_session(
                login.refresh_token, state.signing_keys(), issuer=state.settings.issuer
            )
            login = sign_in(state, request, tokens=tokens, renewing=login)
        actor = authenticate_bearer(state, login.bearer)
    except PermissionDenied as exc:
        sign_out(state, request)
        raise LoginRequired(str(exc)) from None
    request.state.console_actor = actor
    request.state.console_csrf = sealer(state).csrf_token(_SESSION_BINDING + login.nonce)
    return actor


#: Sets the session forms' CSRF tokens apart from the login page's.
_SESSION_BINDING = "session "


def check_csrf(state: ApiState, request: Request, token: str | None) -> None:
    """A form's ``csrf`` field against the random value sealed in the browser's session
    cookie; refused before the form does anything."""
    login = signed_in(state, request)
    if login is None or not sealer(state).csrf_valid(_SESSION_BINDING + login.nonce, token):
        raise CsrfRefused


def login_in_progress(state: ApiState, request: Request) -> ConsoleLogin | None:
    """The login under way in this browser (its cookie), if unexpired."""
    return _unexpired(state, request, LOGIN_COOKIE, ConsoleLogin)


def set_login(state: ApiState, request: Request, login: ConsoleLogin | None) -> str | None:
    """Set (or clear) the login cookie; its value, which the login form's token binds."""
    if login is None:
        _set(request, state, LOGIN_COOKIE, None)
        return None
    value = sealer(state).seal(LOGIN_COOKIE, login.to_dict())
    _set(request, state, LOGIN_COOKIE, value)
    return value


def _needs_renewal(state: ApiState, login: SignedIn) -> bool:
    return login.access_expires is None or login.access_expires - _RENEW_BEFORE <= (
        state.ledger.now()
    )


def _set(request: Request, state: ApiState, name: str, value: str | None) -> None:
    # The login cookie must come back with the identity provider's redirect (a navigation
    # begun on another site), which a SameSite=Strict cookie would not: it is Lax, and acts
    # for no one. The session cookie is Strict.
    samesite: Literal["lax", "strict"] = "lax" if name == LOGIN_COOKIE else "strict"
    cookies = pending_cookies(request)
    cookies[:] = [cookie for cookie in cookies if cookie.name != name]
    cookies.append(
        PendingCookie(name, value, secure=secure_cookies(state, request), samesite=samesite)
    )
