"""Logging in through the org's identity provider: the browser's side of the authorization
code flow (RFC 6749 section 4.1, PKCE RFC 7636, native apps RFC 8252).

``/oauth2/authorize`` sends the browser to the org's provider; the provider sends it back
to ``/oauth2/callback``, which sends it on to the command line's loopback address with a
one-time code (``/oauth2/code`` shows that code instead, for ``auth login --no-browser``).
The command line redeems the code at ``/oauth2/token``. The work is ``service.login``'s;
these routes only speak HTTP.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from tokenledger.api.deps import State
from tokenledger.api.introspection import NO_STORE
from tokenledger.api.state import ApiState
from tokenledger.errors import PermissionDenied, StorageError
from tokenledger.service.login import CALLBACK_PATH, CODE_PAGE_PATH, LoginError

if TYPE_CHECKING:
    from tokenledger.service.keys import KeyRing

__all__ = ["router"]

router = APIRouter(prefix="/oauth2", tags=["login"])

Param = Annotated[str, Query(max_length=2000)]
OptionalParam = Annotated[str | None, Query(max_length=4000)]


def public_url(state: ApiState, request: Request) -> str:
    """This server's address as the browser and the provider reach it."""
    return (state.settings.public_url or str(request.base_url)).rstrip("/")


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    """A small page for the browser; everything shown is escaped."""
    text = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(text, status_code=status, headers=NO_STORE)


def _refused(error: LoginError) -> Response:
    """To the command line when the request named a trusted address, else to the browser."""
    if error.redirect is not None:
        return RedirectResponse(error.redirect, status_code=303, headers=NO_STORE)
    return _page(
        "Login refused", f"<p>{html.escape(error.error)}: {html.escape(error.description)}</p>", 400
    )


def _unavailable(message: str) -> Response:
    return _page("Login unavailable", f"<p>{html.escape(message)}</p>", 503)


@router.get("/authorize", response_class=HTMLResponse, include_in_schema=True)
async def authorize(
    request: Request,
    state: State,
    response_type: Param,
    client_id: Param,
    redirect_uri: Param,
    code_challenge: Param,
    org: Param,
    code_challenge_method: Param = "S256",
    state_: Annotated[str, Query(alias="state", max_length=500)] = "",
) -> Response:
    """Start a login: on to the org's identity provider (a 303), or a page saying why not."""
    if response_type != "code":
        return _page("Login refused", "<p>unsupported_response_type: use code</p>", 400)
    return await _browser_step(
        state,
        "started",
        lambda keys: state.ledger.begin_login(
            keys,
            state.oidc(),
            issuer=state.settings.issuer,
            public_url=public_url(state, request),
            org=org,
            client_id=client_id,
            redirect_uri=redirect_uri,
            challenge=code_challenge,
            challenge_method=code_challenge_method,
            state=state_,
        ),
    )


async def _browser_step(state: ApiState, outcome: str, step: Callable[[KeyRing], str]) -> Response:
    """Run a step of the login (off the event loop: it calls the provider) and send the
    browser where it says; a refusal to the command line or, failing a trusted address, to
    the browser itself."""
    try:
        keys = state.signing_keys()
        target = await run_in_threadpool(step, keys)
    except LoginError as exc:
        state.metrics.count("logins", "refused")
        return _refused(exc)
    except (PermissionDenied, StorageError) as exc:
        return _unavailable(str(exc))
    state.metrics.count("logins", outcome)
    return RedirectResponse(target, status_code=303, headers=NO_STORE)


@router.get(CALLBACK_PATH.removeprefix("/oauth2"), response_class=HTMLResponse)
async def callback(
    request: Request,
    state: State,
    state_: Annotated[str, Query(alias="state", max_length=4000)] = "",
    code: OptionalParam = None,
    error: OptionalParam = None,
    error_description: OptionalParam = None,
) -> Response:
    """The provider's answer: on to the command line with a one-time code (a 303)."""
    return await _browser_step(
        state,
        "vouched",
        lambda keys: state.ledger.finish_login(
            keys,
            state.oidc(),
            issuer=state.settings.issuer,
            public_url=public_url(state, request),
            state=state_,
            code=code,
            error=error,
            error_description=error_description,
        ),
    )


@router.get(CODE_PAGE_PATH.removeprefix("/oauth2"), response_class=HTMLResponse)
async def code_page(
    code: OptionalParam = None,
    error: OptionalParam = None,
    error_description: OptionalParam = None,
    state_: Annotated[str | None, Query(alias="state", max_length=500)] = None,
) -> Response:
    """For ``auth login --no-browser``: the code to paste into the command line."""
    if error is not None or not code:
        said = f"{error or 'no code'}: {error_description or ''}"
        return _page("Login refused", f"<p>{html.escape(said)}</p>", 400)
    return _page(
        "Paste this code into your terminal",
        f"<p><code style='word-break: break-all'>{html.escape(code)}</code></p>"
        "<p>It works once, for two minutes, and only for the terminal that asked.</p>",
    )
