"""The console's pages: home, an org, a token, a service account (and moving its
permission), audit search, who-can, and the log.

Every page acts as the logged-in actor through the same ``Ledger`` methods the API's routes
call, so it shows exactly what the API would show that actor, and refuses as the API
refuses (``web.ConsoleRoute`` turns the ledger's errors into pages).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable
from importlib.resources import files
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute

from tokenledger.api.deps import moment
from tokenledger.api.routes.audit import explanation_out
from tokenledger.api.routes.log import signer
from tokenledger.api.routes.tokens import level_param
from tokenledger.console import login
from tokenledger.console.session import check_csrf, logged_in
from tokenledger.console.views import STATUSES, TokenFilterForm, TokenRow, cascade_of, status_word
from tokenledger.console.web import ConsoleRoute, console_state, error_page, page
from tokenledger.domain import commands as c
from tokenledger.domain import events as e
from tokenledger.domain.authority import token_orgs
from tokenledger.domain.model import Actor, TokenView
from tokenledger.domain.names import shown
from tokenledger.domain.permissions import Level
from tokenledger.errors import (
    Conflict,
    IntegrityViolation,
    NotFound,
    PermissionDenied,
    StorageError,
)
from tokenledger.projections.audit_queries import MAX_LIMIT, AuditQuery
from tokenledger.service import Ledger
from tokenledger.service.commands import CommandPreview
from tokenledger.service.log_proofs import LogCheck, sign_checkpoint

__all__ = ["router"]

T = TypeVar("T")

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

Text = Annotated[str, Query(max_length=400)]
FormText = Annotated[str, Form(max_length=400)]
#: Optional and unbounded here so that a missing or wrong token is the CSRF refusal (403),
#: checked before the form does anything.
CsrfField = Annotated[str | None, Form()]

LEVELS = tuple(level.label for level in Level if level is not Level.NONE)

_STYLESHEET = files("tokenledger.console").joinpath("static/console.css").read_bytes()


@router.get("/static/console.css")
def stylesheet() -> Response:
    return Response(
        _STYLESHEET,
        media_type="text/css",
        headers={"Cache-Control": "public, max-age=3600"},
    )


@router.get("", response_class=HTMLResponse)
def home(request: Request) -> Response:
    state = console_state(request)
    actor = logged_in(state, request)
    orgs = state.ledger.list_orgs(actor)
    return page("home.html", request=request, title="Organizations", orgs=orgs)


@router.get("/orgs/{org}", response_class=HTMLResponse)
def org_page(
    request: Request, org: str, status: Text = "", holder: Text = "", text: Text = ""
) -> Response:
    state = console_state(request)
    actor = logged_in(state, request)
    ledger = state.ledger
    members = ledger.members(actor, org)
    accounts = ledger.service_accounts(actor, org)
    now = ledger.now()
    holders = [*members, *(account.account_id for account in accounts)]
    # A member's tokens for other orgs are not this org's (the token's orgs: the domain's).
    rows = [
        TokenRow(token, status_word(token, now))
        for principal in holders
        for token in _visible_tokens(ledger, actor, principal)
        if org in token_orgs(token)
    ]
    wanted = TokenFilterForm(status=status, holder=holder, text=text.strip())
    return page(
        "org.html",
        request=request,
        title=f"Organization {org}",
        org=org,
        members=members,
        accounts=accounts,
        rows=[row for row in rows if wanted.keeps(row)],
        all_rows=len(rows),
        wanted=wanted,
        statuses=STATUSES,
        holders=holders,
    )


def _visible_tokens(ledger: Ledger, actor: Actor, principal: str) -> list[TokenView]:
    """The tokens of ``principal`` the actor may see: the API's listing for that principal
    (``GET /v2/users/{id}/tokens?all=true``), and none where the API would refuse it."""
    return _listed({}, principal, lambda: ledger.tokens_of(actor, principal, include_inactive=True))


@router.get("/tokens/{token_id}", response_class=HTMLResponse)
def token_page(request: Request, token_id: str) -> Response:
    state = console_state(request)
    actor = logged_in(state, request)
    ledger = state.ledger
    token = ledger.get_token(actor, token_id)
    explanation = ledger.explain_token(actor, token_id)
    cascade = None
    revocation = explanation.revocation
    if revocation is not None and revocation.record.correlation_id:
        same = ledger.audit_search(
            actor,
            AuditQuery(
                correlation_id=revocation.record.correlation_id,
                limit=MAX_LIMIT,
                oldest_first=True,
            ),
        )
        command = [
            entry for entry in same if entry.record.command_id == revocation.record.command_id
        ]
        cascade = cascade_of(explanation, command)
    return page(
        "token.html",
        request=request,
        title=f"Token {token.token_id}",
        token=token,
        status=status_word(token, ledger.now()),
        explanation=explanation,
        cascade=cascade,
    )


@router.get("/tokens/{token_id}/proofs.json")
def token_proofs(request: Request, token_id: str) -> Response:
    """The token's story with a proof bundle of each event it cites, as ``tokenledger audit
    explain --proof`` prints it: a file for ``logproof bundle``, checked against the log's
    published key without trusting this server."""
    state = console_state(request)
    actor = logged_in(state, request)
    explanation = state.ledger.explain_token(actor, token_id)
    body = json.dumps(explanation_out(state, explanation, proof=True), indent=2) + "\n"
    return Response(
        body,
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="{_file_name(token_id)}"',
            "Cache-Control": "no-store",
        },
    )


def _file_name(token_id: str) -> str:
    # Only what a file name and a quoted header value can hold; ids are of these anyway.
    safe = "".join(ch for ch in token_id if ch.isascii() and (ch.isalnum() or ch in "_-"))
    return f"{safe or 'token'}-proofs.json"


@router.get("/service-accounts/{account_id}", response_class=HTMLResponse)
def account_page(request: Request, account_id: str) -> Response:
    state = console_state(request)
    actor = logged_in(state, request)
    return _account(request, actor, account_id)


def _account(request: Request, actor: Actor, account_id: str, **extra: Any) -> HTMLResponse:
    ledger = console_state(request).ledger
    account = ledger.get_service_account(actor, account_id)
    now = ledger.now()
    # Each listing as the API lists it to this actor; one the API would refuse (an auditor
    # may see the account but not its tokens) is left out with the API's reason, not the page.
    refused: dict[str, str] = {}
    tokens = _listed(
        refused, "tokens", lambda: ledger.tokens_of(actor, account_id, include_inactive=True)
    )
    return page(
        "account.html",
        request=request,
        title=f"Service account {account.account_id}",
        account=account,
        rows=[TokenRow(token, status_word(token, now)) for token in tokens],
        credentials=_listed(
            refused,
            "credentials",
            lambda: ledger.client_credentials_of(actor, account_id, include_inactive=True),
        ),
        s3_credentials=_listed(
            refused,
            "s3_credentials",
            lambda: ledger.s3_credentials_of(actor, account_id, include_revoked=True),
        ),
        endpoints=_listed(
            refused, "endpoints", lambda: ledger.trusted_endpoints_of(actor, account_id)
        ),
        trusts=_listed(
            refused,
            "trusts",
            lambda: ledger.issuer_trusts_of(actor, account_id, include_withdrawn=True),
        ),
        refused=refused,
        now=now,
        levels=LEVELS,
        **extra,
    )


def _listed(refused: dict[str, str], name: str, listing: Callable[[], list[T]]) -> list[T]:
    """``listing()``, or nothing with the ledger's refusal kept under ``name``."""
    try:
        return listing()
    except (PermissionDenied, NotFound) as exc:
        refused[name] = str(exc)
        return []


def _move_command(account_id: str, resource: str, level: str) -> c.SetServiceAccountPermission:
    """The API's ``PUT /v2/service_accounts/{id}/permission`` command."""
    return c.build(
        c.SetServiceAccountPermission,
        account_id=account_id,
        resource=resource.strip(),
        level=level_param(level),
    )


@router.post("/service-accounts/{account_id}/move", response_class=HTMLResponse)
def move_preview(
    request: Request,
    account_id: str,
    csrf: CsrfField = None,
    resource: FormText = "",
    level: FormText = "",
) -> Response:
    """The dry run of moving the account's permission: what it would revoke, and a form to
    confirm. Nothing is appended."""
    state = console_state(request)
    check_csrf(state, request, csrf)
    actor = logged_in(state, request)
    return _move_preview(request, actor, account_id, resource, level)


def _move_preview(
    request: Request,
    actor: Actor,
    account_id: str,
    resource: str,
    level: str,
    status: int = 200,
    changed: bool = False,
) -> HTMLResponse:
    ledger = console_state(request).ledger
    account = ledger.get_service_account(actor, account_id)
    command = _move_command(account_id, resource, level)
    preview = ledger.preview(command, actor)
    return page(
        "move_preview.html",
        status,
        request=request,
        title=f"Move the permission of {account.account_id}?",
        account=account,
        resource=command.resource,
        level=command.level.label,
        outcome=preview.outcome,
        events=len(preview.events),
        records=preview.records,
        withdrawn=_withdrawn(preview),
        changed=changed,
    )


def _withdrawn(preview: CommandPreview) -> str:
    """Everything a move would append (each event's type and stream: every token,
    credential and trust it would revoke or withdraw), as one digest. The confirm form
    carries its preview's, so that a move whose cascade changed since (a token issued or an
    issuer trusted meanwhile) is shown again rather than run."""
    appended = sorted(f"{record.event_type} {record.stream_id}" for record in preview.records)
    return hashlib.sha256("\n".join(appended).encode()).hexdigest()


@router.post("/service-accounts/{account_id}/move/confirm", response_class=HTMLResponse)
def move_confirm(
    request: Request,
    account_id: str,
    csrf: CsrfField = None,
    resource: FormText = "",
    level: FormText = "",
    previewed: FormText = "",
) -> Response:
    """Move the account's permission, cascade included, as the API's route does, if it
    withdraws what its preview showed; otherwise the new preview, to confirm again."""
    state = console_state(request)
    check_csrf(state, request, csrf)
    actor = logged_in(state, request)
    command = _move_command(account_id, resource, level)
    now = _withdrawn(state.ledger.preview(command, actor))
    if not hmac.compare_digest(now, previewed):
        return _move_preview(request, actor, account_id, resource, level, 409, changed=True)
    result = state.ledger.execute(command, actor)
    return _account(request, actor, account_id, moved=result)


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    actor_filter: Annotated[str, Query(alias="actor", max_length=400)] = "",
    subject: Text = "",
    event_type: Annotated[str, Query(alias="type", max_length=100)] = "",
    since: Annotated[str, Query(max_length=64)] = "",
    until: Annotated[str, Query(max_length=64)] = "",
    correlation_id: Annotated[str, Query(max_length=64)] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    oldest_first: Annotated[str, Query(max_length=5)] = "",
) -> Response:
    """The API's ``GET /v2/audit`` with the same filters, as a table."""
    state = console_state(request)
    actor = logged_in(state, request)
    query = AuditQuery(
        actor=actor_filter.strip() or None,
        subject=subject.strip() or None,
        event_type=event_type or None,
        since=moment(since or None, "since"),
        until=moment(until or None, "until"),
        correlation_id=correlation_id.strip() or None,
        limit=limit,
        oldest_first=bool(oldest_first),
    )
    return page(
        "audit.html",
        request=request,
        title="Audit search",
        entries=state.ledger.audit_search(actor, query),
        form={
            "actor": actor_filter,
            "subject": subject,
            "type": event_type,
            "since": since,
            "until": until,
            "correlation_id": correlation_id,
            "limit": limit,
            "oldest_first": bool(oldest_first),
        },
        event_types=sorted(e.event_types()),
    )


@router.get("/who-can", response_class=HTMLResponse)
def who_can_page(
    request: Request,
    resource: Text = "",
    level: Annotated[str, Query(max_length=100)] = "read",
    at: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """The API's ``GET /v2/audit/who-can``: who could do a level on a resource at a time."""
    state = console_state(request)
    actor = logged_in(state, request)
    answer = position = None
    if resource.strip():
        when = moment(at or None, "at")
        answer, position = state.ledger.who_can(
            actor, resource.strip(), level_param(level), at=when
        )
    return page(
        "who_can.html",
        request=request,
        title="Who can",
        answer=answer,
        position=position,
        form={"resource": resource, "level": level, "at": at},
        levels=LEVELS,
    )


@router.get("/log", response_class=HTMLResponse)
def log_page(request: Request) -> Response:
    state = console_state(request)
    logged_in(state, request)
    return _log(request)


@router.post("/log/verify", response_class=HTMLResponse)
def log_verify(request: Request, csrf: CsrfField = None) -> Response:
    """``tokenledger log verify``: the hash chain recomputed, then the stored Merkle tree."""
    state = console_state(request)
    check_csrf(state, request, csrf)
    actor = logged_in(state, request)
    # The check reads the whole log: one at a time per server process, so that repeated
    # clicks cannot keep every worker reading it.
    if not _CHAIN_CHECK.acquire(blocking=False):
        raise Conflict("a check of the chain is already running here: try again when it ends")
    try:
        check = state.ledger.check_log(actor)
    finally:
        _CHAIN_CHECK.release()
    return _log(request, check)


_CHAIN_CHECK = threading.Lock()


def _log(request: Request, check: LogCheck | None = None) -> HTMLResponse:
    """The log page; after a check, its report. No checkpoint is signed over a log the check
    found broken, nor over a tree missing a node (the page says why instead)."""
    state = console_state(request)
    store = state.ledger.store
    checkpoint = problem = None
    if check is not None and not check.ok:
        problem = "no checkpoint is shown over a log that failed its check"
    else:
        try:
            checkpoint = sign_checkpoint(store, signer(state)).as_json()
        except (StorageError, IntegrityViolation) as exc:
            problem = str(exc)
    return page(
        "log.html",
        request=request,
        title="The log",
        head=store.head(),
        checkpoint=checkpoint,
        checkpoint_problem=problem,
        check=check,
    )


#: Every method a browser or a script may send: the console answers each with a page.
_ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@router.api_route("", methods=[m for m in _ANY_METHOD if m != "GET"], response_class=HTMLResponse)
@router.api_route("/{unknown:path}", methods=_ANY_METHOD, response_class=HTMLResponse)
def no_such_page(request: Request, unknown: str = "") -> Response:
    """Any other address or method under ``/console``: a page saying so, with the console's
    headers (the API's own 404 and 405 are JSON). Last of the console's routes, so that it
    only answers what no page takes: an address no page has is 404; one a page has, asked
    with a method that page does not take (a GET of a form's POST address), 405."""
    if not unknown and request.method == "GET":
        return RedirectResponse("/console", status_code=303)
    address = request.scope["path"]
    allowed = _methods_at(address)
    if not allowed:
        return error_page(404, f"no console page {shown(address)}", request)
    answer = error_page(
        405, f"{shown(address)} takes {' and '.join(sorted(allowed))} only", request
    )
    answer.headers["Allow"] = ", ".join(sorted(allowed))
    return answer


def _methods_at(path: str) -> set[str]:
    """The methods the console's pages take at ``path`` (none: no page there)."""
    found: set[str] = set()
    for route in (*login.router.routes, *router.routes):
        if (
            isinstance(route, APIRoute)
            and route.endpoint is not no_such_page
            and route.path_regex.match(path)
        ):
            found |= route.methods or set()
    return found
