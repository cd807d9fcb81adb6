"""``?dry_run=true``: every mutating call of the management API answers what it would append,
and appends nothing.

The query parameter is read once, here, for every request (``DryRunMiddleware``), and held for
the request in a context variable. A route runs as usual up to its command: ``deps.run`` (or a
service function given ``dry_run=dry_run_requested()``) previews it instead and raises
``PreviewReady``, which one exception handler answers with 200 and the events. A refused
command is refused alike (the same status and message). A route that runs a command any other
way cannot make the change in a dry run: ``Ledger.execute`` refuses it (400) inside
``previews_only``.

The OAuth 2.0 protocol endpoints (``/oauth2/...``: tokens, revocation, logging in, its
callback, logging out) have no dry run: given one, they refuse with 400 before anything runs,
never carrying the call out. Introspection, which changes nothing, answers as usual (as its fast
path in front of the app does anyway).

Every answer to a dry run carries ``TokenLedger-Dry-Run: true``, and ``/healthz`` lists the
``dry_run`` feature: a client (``client/dry_run.py``) sends a dry run only to a server that
lists it and takes an answer for a preview only with the header, since a server that does not
know the parameter would ignore it and make the change.
"""

from __future__ import annotations

from contextvars import ContextVar
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tokenledger.api.problems import error_body
from tokenledger.client.dry_run import DRY_RUN_FEATURE, DRY_RUN_HEADER, DRY_RUN_PARAMETER
from tokenledger.service.commands import PreviewReady, previews_only

__all__ = [
    "DRY_RUN_FEATURE",
    "DRY_RUN_PARAMETER",
    "DryRunMiddleware",
    "dry_run_requested",
    "preview_answer",
]

#: Where a dry run is refused, whatever the method: the protocol endpoints, whose answers
#: (tokens, sessions, redirects) a preview cannot stand in for.
_NO_DRY_RUN_PREFIX = "/oauth2/"

#: The protocol endpoint that changes nothing, answered as usual.
_INTROSPECTION = "/oauth2/introspect"

#: The web console's pages, left alone: a console page previews its own way (a move's
#: preview page before its confirm) and answers every error as a page of its own.
_CONSOLE = "/console"

_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no"})

_requested: ContextVar[bool] = ContextVar("tokenledger_dry_run", default=False)


def dry_run_requested() -> bool:
    """Whether the request being answered asked for a dry run."""
    return _requested.get()


def _refusal(description: str) -> JSONResponse:
    return JSONResponse(
        error_body("invalid_request", description),
        status_code=400,
        headers={"Cache-Control": "no-store"},
    )


def _dry_run_asked(parameters: list[tuple[str, str]]) -> bool:
    """Whether the query asks for a dry run; ``ValueError`` when it cannot be told for sure.

    Each doubt is refused rather than resolved to "run it": a bare ``?dry_run``, a value given
    twice, or the name misspelt (``dry-run``, ``DRY_RUN``) would otherwise make the very
    change its caller meant only to preview."""
    values = [value for name, value in parameters if name == DRY_RUN_PARAMETER]
    misspelt = sorted(
        {
            name
            for name, _ in parameters
            if name != DRY_RUN_PARAMETER
            and name.strip().lower().replace("-", "_") == DRY_RUN_PARAMETER
        }
    )
    if misspelt:
        raise ValueError(f"unknown parameter {misspelt[0]}: write dry_run=true")
    if not values:
        return False
    if len(values) > 1:
        raise ValueError("dry_run: given more than once")
    text = values[0].strip().lower()
    if text not in _TRUE | _FALSE:
        raise ValueError("dry_run: expected true or false")
    return text in _TRUE


class DryRunMiddleware:
    """Reads ``dry_run`` from the query string and holds it for the request's routes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path == _CONSOLE or path.startswith(_CONSOLE + "/"):
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        try:
            dry_run = _dry_run_asked(parse_qsl(query, keep_blank_values=True))
        except ValueError as refused:
            answer = _refusal(str(refused))
            await answer(scope, receive, send)
            return
        if dry_run and path.startswith(_NO_DRY_RUN_PREFIX) and path != _INTROSPECTION:
            answer = _refusal("dry_run is not offered by the OAuth 2.0 protocol endpoints")
            await answer(scope, receive, send)
            return
        if not dry_run:
            await self.app(scope, receive, send)
            return
        # A route that does not honour the dry run cannot make the change either: any
        # command it runs for real is refused (400) by ``Ledger.execute``.
        token = _requested.set(True)
        try:
            with previews_only():
                await self.app(scope, receive, _saying_dry_run(send))
        finally:
            _requested.reset(token)


def _saying_dry_run(send: Send) -> Send:
    """``send``, each answer saying it answers a dry run (``TokenLedger-Dry-Run: true``): a
    client takes an answer for a preview only with it, since a server that does not know
    the parameter answers the same call having made the change."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", ()), (_HEADER_NAME, b"true")]
            message = {**message, "headers": headers}
        await send(message)

    return sending


_HEADER_NAME = DRY_RUN_HEADER.lower().encode("latin-1")


async def preview_answer(request: Request, exc: Exception) -> JSONResponse:
    """A dry run's answer: the events the call would append, as the log would hold them,
    and the log position the decision read."""
    assert isinstance(exc, PreviewReady)
    preview = exc.preview
    return JSONResponse(
        {
            "dry_run": True,
            "log_position": preview.log_position,
            "revoked": list(preview.outcome.revoked),
            "revoked_client_ids": list(preview.outcome.revoked_client_ids),
            "revoked_access_key_ids": list(preview.outcome.revoked_access_key_ids),
            "events": preview.event_dicts(),
        },
        headers={"Cache-Control": "no-store"},
    )
