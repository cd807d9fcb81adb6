"""What every console page shares: rendering a template, the security headers, the answer to
an error, and the route class that puts them around each page.

Errors are answered as the API answers them -- the same status and the ledger's one-line
message, taken from the API's own handlers (``api.problems.error_response``) -- but as a
page. A page that needs a login and has none sends the browser to the login page (303).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape

from tokenledger.api.problems import error_response
from tokenledger.api.state import ApiState

__all__ = [
    "LOGIN_PATH",
    "NO_STORE",
    "SECURITY_HEADERS",
    "ConsoleRoute",
    "CsrfRefused",
    "LoginRequired",
    "PendingCookie",
    "console_state",
    "error_page",
    "page",
    "pending_cookies",
]

LOGIN_PATH = "/console/login"

#: On every console answer. No script runs (``default-src 'none'``), the one stylesheet is
#: the console's own, forms post only to the console, no other site may frame it (against
#: clickjacking), and the browser neither guesses types nor tells other sites where it was.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
#: Pages show the ledger's data: no cache, shared or private, keeps a copy.
NO_STORE = {"Cache-Control": "no-store"}

_templates = Environment(
    loader=PackageLoader("tokenledger.console", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


class LoginRequired(Exception):
    """The page needs a login the request does not carry (or one no longer usable)."""

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(reason or "log in to continue")
        self.reason = reason


class CsrfRefused(Exception):
    """A form came without the CSRF token of the browser's session."""


class PendingCookie:
    """A cookie to set (``value``) or clear (``None``) on the answer, whatever it is: always
    ``HttpOnly`` and under ``/console``."""

    def __init__(
        self,
        name: str,
        value: str | None,
        *,
        secure: bool,
        samesite: Literal["lax", "strict"] = "strict",
    ) -> None:
        self.name = name
        self.value = value
        self.secure = secure
        self.samesite: Literal["lax", "strict"] = samesite

    def apply(self, response: Response) -> None:
        if self.value is None:
            response.delete_cookie(
                self.name,
                path="/console",
                secure=self.secure,
                httponly=True,
                samesite=self.samesite,
            )
            return
        response.set_cookie(
            self.name,
            self.value,
            path="/console",
            secure=self.secure,
            httponly=True,
            samesite=self.samesite,
        )


def pending_cookies(request: Request) -> list[PendingCookie]:
    """The cookies the answer to ``request`` will set or clear."""
    found: list[PendingCookie] | None = getattr(request.state, "console_cookies", None)
    if found is None:
        found = []
        request.state.console_cookies = found
    return found


def console_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.tokenledger
    return state


def page(
    template: str,
    status: int = 200,
    /,
    *,
    request: Request | None = None,
    **context: Any,
) -> HTMLResponse:
    """``template`` rendered with ``context`` (everything escaped), never cached."""
    if request is not None:
        context.setdefault("actor", getattr(request.state, "console_actor", None))
        context.setdefault("csrf", getattr(request.state, "console_csrf", None))
    text = _templates.get_template(template).render(**context)
    return HTMLResponse(text, status_code=status, headers=NO_STORE)


def error_page(status: int, message: str, request: Request) -> HTMLResponse:
    titles = {
        400: "Invalid request",
        401: "Not logged in",
        403: "Not allowed",
        404: "Not found",
        405: "Method not allowed",
        409: "Conflict",
    }
    title = titles.get(status, "Unavailable" if status == 503 else "Error")
    return page("error.html", status, request=request, title=title, message=message)


async def _as_page(request: Request, exc: Exception) -> HTMLResponse:
    """The API's answer to ``exc`` (its status and one-line description) as a page."""
    answer = await error_response(request, exc)
    body = json.loads(bytes(answer.body))
    return error_page(answer.status_code, str(body.get("error_description", "")), request)


class ConsoleRoute(APIRoute):
    """A console page: errors become pages, a missing login a redirect to the login page,
    and every answer carries the security headers and the cookies the page set."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            response: Response
            try:
                response = await handler(request)
            except LoginRequired as exc:
                target = LOGIN_PATH if exc.reason is None else f"{LOGIN_PATH}?ended=1"
                response = RedirectResponse(target, status_code=303, headers=NO_STORE)
            except CsrfRefused:
                message = (
                    "the form's CSRF token is missing or does not match this browser's "
                    "session: reload the page and submit it again"
                )
                response = error_page(403, message, request)
            except Exception as exc:  # the API's answer to it, as a page (logged if unforeseen)
                response = await _as_page(request, exc)
            for cookie in pending_cookies(request):
                cookie.apply(response)
            response.headers.update(SECURITY_HEADERS)
            return response

        return guarded
