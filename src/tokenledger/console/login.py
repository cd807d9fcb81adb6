"""Logging in to the console and out: with a ledger token, or through the org's identity
provider, the console being one more client of the server's authorization code flow
(``service.login``) with its own redirect address (``CONSOLE_CALLBACK_PATH``)."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from tokenledger.api.routes.login import public_url
from tokenledger.api.security import authenticate_bearer
from tokenledger.console.cookies import LOGIN_COOKIE, ConsoleLogin
from tokenledger.console.session import (
    check_csrf,
    login_in_progress,
    sealer,
    set_login,
    sign_in,
    sign_out,
    signed_in,
)
from tokenledger.console.web import (
    LOGIN_PATH,
    NO_STORE,
    ConsoleRoute,
    CsrfRefused,
    console_state,
    page,
)
from tokenledger.domain.pkce import code_challenge, new_code_verifier
from tokenledger.errors import InvalidGrant, PermissionDenied
from tokenledger.service.login import CONSOLE_CALLBACK_PATH, LoginError
from tokenledger.service.sessions import LOGIN_CLIENT_ID

__all__ = ["router"]

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

Field = Annotated[str, Form(max_length=4000)]
#: Optional so that a missing token is the CSRF refusal (403), checked before anything else.
CsrfField = Annotated[str | None, Form()]
OptionalParam = Annotated[str | None, Query(max_length=4000)]


def _login_page(
    request: Request, status: int = 200, error: str | None = None, ended: bool = False
) -> HTMLResponse:
    """The login page, with a login cookie whose value its forms' CSRF token binds."""
    state = console_state(request)
    login = login_in_progress(state, request) or ConsoleLogin.new(state.ledger.now())
    set_login(state, request, login)
    return page(
        "login.html",
        status,
        request=request,
        title="Log in",
        login_csrf=sealer(state).csrf_token(_LOGIN_BINDING + login.nonce),
        error=error,
        ended=ended,
    )


#: Sets the login forms' CSRF tokens apart from the session's (which bind a cookie value).
_LOGIN_BINDING = "login "


def _check_login_csrf(request: Request, token: str | None) -> None:
    """The login forms' CSRF token binds the random value sealed in the login cookie (there
    is no session yet), not the cookie's sealed text: every login page seals the cookie
    afresh, and a login page opened in another tab (or by another site's link) must not
    make this one's form stale. An expired login still binds its forms: only its identity
    provider's answer is refused once it has expired."""
    state = console_state(request)
    data = sealer(state).open(LOGIN_COOKIE, request.cookies.get(LOGIN_COOKIE))
    nonce = data.get("nonce") if data is not None else None
    if not isinstance(nonce, str) or not sealer(state).csrf_valid(_LOGIN_BINDING + nonce, token):
        raise CsrfRefused


@router.get("/login", response_class=HTMLResponse)
def login_form(
    request: Request, ended: Annotated[str | None, Query(max_length=5)] = None
) -> Response:
    state = console_state(request)
    if signed_in(state, request) is not None:
        return RedirectResponse("/console", status_code=303, headers=NO_STORE)
    return _login_page(request, ended=ended is not None)


@router.post("/login", response_class=HTMLResponse)
def login_with_token(request: Request, csrf: CsrfField = None, token: Field = "") -> Response:
    """A ledger token (or an access token), checked as the API checks a bearer token."""
    _check_login_csrf(request, csrf)
    state = console_state(request)
    secret = token.strip()
    if not secret:
        return _login_page(request, 400, "enter a ledger token")
    try:
        authenticate_bearer(state, secret)
    except PermissionDenied as exc:
        return _login_page(request, 401, str(exc))
    sign_in(state, request, secret=secret)
    set_login(state, request, None)
    return RedirectResponse("/console", status_code=303, headers=NO_STORE)


@router.post("/login/idp", response_class=HTMLResponse)
async def login_with_provider(
    request: Request, csrf: CsrfField = None, org: Field = ""
) -> Response:
    """Begin a login through ``org``'s identity provider: the browser goes on to it.

    Answered with a page that sends the browser on rather than with a redirect: a form's
    redirect to another site is what the console's ``form-action 'self'`` forbids."""
    _check_login_csrf(request, csrf)
    state = console_state(request)
    login = login_in_progress(state, request) or ConsoleLogin.new(state.ledger.now())
    verifier = new_code_verifier()
    login_state = secrets.token_urlsafe(24)
    base = public_url(state, request)
    try:
        keys = state.signing_keys()
        target = await run_in_threadpool(
            lambda: state.ledger.begin_login(
                keys,
                state.oidc(),
                issuer=state.settings.issuer,
                public_url=base,
                org=org.strip(),
                client_id=LOGIN_CLIENT_ID,
                redirect_uri=base + CONSOLE_CALLBACK_PATH,
                challenge=code_challenge(verifier),
                challenge_method="S256",
                state=login_state,
            )
        )
    except LoginError as exc:
        return _login_page(request, 400, exc.description)
    set_login(
        state,
        request,
        ConsoleLogin(
            nonce=login.nonce, expires=login.expires, verifier=verifier, state=login_state
        ),
    )
    return page("continue.html", request=request, title="Continue to your login", target=target)


@router.get(CONSOLE_CALLBACK_PATH.removeprefix("/console"), response_class=HTMLResponse)
async def login_callback(
    request: Request,
    state_: Annotated[str, Query(alias="state", max_length=500)] = "",
    code: OptionalParam = None,
    error: OptionalParam = None,
    error_description: OptionalParam = None,
) -> Response:
    """The server's login sends the browser back here with a one-time code, which the
    console redeems with its PKCE verifier for a login session, as the command line does."""
    state = console_state(request)
    login = login_in_progress(state, request)
    if (
        login is None
        or login.state is None
        or login.verifier is None
        or not hmac.compare_digest(login.state.encode(), state_.encode())
    ):
        # Not the login this browser began: a forged or stale answer is never redeemed.
        return _login_page(request, 400, "this login was not begun in this browser: start again")
    if error is not None or not code:
        said = f"{error or 'no code'}: {error_description or ''}".strip(": ")
        set_login(state, request, None)
        return _login_page(request, 400, f"the login was refused ({said})")
    verifier = login.verifier
    base = public_url(state, request)
    try:
        keys = state.signing_keys()
        tokens = await run_in_threadpool(
            lambda: state.ledger.redeem_login_code(
                keys,
                issuer=state.settings.issuer,
                code=code,
                code_verifier=verifier,
                redirect_uri=base + CONSOLE_CALLBACK_PATH,
                client_id=LOGIN_CLIENT_ID,
            )
        )
    except InvalidGrant as exc:
        set_login(state, request, None)
        return _login_page(request, 400, str(exc))
    sign_in(state, request, tokens=tokens)
    set_login(state, request, None)
    # A page, not a redirect: the browser came here from the provider (another site), and
    # would not send the SameSite=Strict cookie just set along a redirect of that journey.
    return page("continue.html", request=request, title="Logged in", target="/console")


@router.post("/logout", response_class=HTMLResponse)
def logout(request: Request, csrf: CsrfField = None) -> Response:
    """Clear the session cookie; a login through the identity provider also ends its
    ledger session (``SessionEnded``, ``logged_out``)."""
    state = console_state(request)
    check_csrf(state, request, csrf)
    login = signed_in(state, request)
    if login is not None and login.refresh_token is not None:
        state.ledger.log_out(login.refresh_token)
    sign_out(state, request)
    return RedirectResponse(LOGIN_PATH, status_code=303, headers=NO_STORE)
