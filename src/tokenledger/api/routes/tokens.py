"""Tokens: ``/v2/service_accounts/{id}/tokens``, ``/v2/users/{id}/tokens`` and ``/v2/tokens``.

The same five calls under both kinds of principal: issue (the secret is in the
answer, once), list, revoke all, get one, revoke one. A token named under the
wrong principal is "not found". Under ``/v2/tokens``, a token by its id alone
(get, revoke) and ``tokenledger tokens verify`` (``POST /v2/tokens/verify``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Header, Path, Query, Response

from tokenledger.api.aruna import ArunaIssueTokenIn, aruna_token
from tokenledger.api.deps import (
    ERRORS,
    Correlation,
    State,
    command_fields,
    command_out,
    moment,
    run,
)
from tokenledger.api.introspection import MAX_HINT_LENGTH, MIN_POSITION_HEADER, min_position_of
from tokenledger.api.schemas import (
    CommandOut,
    GrantIn,
    IssuedTokenOut,
    IssueTokenIn,
    TokenOut,
    VerificationOut,
    VerifyIn,
    token_out,
)
from tokenledger.api.security import BearerCredentials, CurrentActor, bearer_secret, current_actor
from tokenledger.domain import commands as c
from tokenledger.domain.model import is_service_account_id
from tokenledger.domain.names import check_principal, check_token_principal, shown
from tokenledger.domain.permissions import Level
from tokenledger.domain.state import issued_token
from tokenledger.errors import NotFound, ValidationError
from tokenledger.store.chain import format_timestamp

__all__ = ["level_param", "principal_tokens_router", "router"]

router = APIRouter(prefix="/v2/tokens", tags=["tokens"], responses=ERRORS)


def _expires_at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(
            f"invalid expires_at {text[:40]!r}: expected an ISO 8601 time such as "
            "2030-01-31T12:00:00Z (without a zone: UTC)"
        ) from None


def _issue_fields(principal: str, body: IssueTokenIn) -> dict[str, Any]:
    return {
        "principal": principal,
        "grants": [g.model_dump() for g in body.grants],
        "role": body.role,
        "name": body.name,
        "expires_in": c.parse_duration(body.expires_in) if body.expires_in is not None else None,
        "expires_at": _expires_at(body.expires_at),
        "no_expiry": body.no_expiry,
        "parent_id": body.parent_id,
    }


def principal_tokens_router(prefix: str, parameter: str, tag: str) -> APIRouter:
    """The token calls under ``prefix/{parameter}/tokens``."""
    tokens = APIRouter(prefix=f"{prefix}/{{{parameter}}}/tokens", tags=[tag], responses=ERRORS)
    accounts = tag == "service_accounts"

    def checked(principal: str, check: Callable[[str], str] = check_principal) -> str:
        """A user id under /v2/users, a service account id under /v2/service_accounts."""
        if is_service_account_id(principal) != accounts:
            kind = "service account" if accounts else "user"
            raise NotFound(f"no {kind} {shown(principal)}")
        try:
            return check(principal)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    @tokens.post("", status_code=201, response_model=IssuedTokenOut, name=f"issue_{tag}_token")
    def issue(
        body: IssueTokenIn | ArunaIssueTokenIn,
        actor: CurrentActor,
        state: State,
        correlation: Correlation,
        response: Response,
        principal: str = Path(alias=parameter, max_length=400),
    ) -> IssuedTokenOut:
        """Issue a token; its secret is in this answer and nowhere else, ever. Aruna's body
        (``{"permission": {"projectId" ... "permissionLevel"}, "name", "expiresAt"}``) is
        taken too, and the answer carries Aruna's ``token`` and ``tokenSecret``."""
        if isinstance(body, ArunaIssueTokenIn):
            body = IssueTokenIn(
                grants=[GrantIn(**body.permission.grant())],
                name=body.name,
                expires_at=body.expiresAt,
            )
        # A token's principal may be a Dyff account id too (/v2/users/{account id}/tokens).
        principal = checked(principal, check_token_principal)
        command = c.build(c.IssueToken, **_issue_fields(principal, body))
        result = run(state, command, actor, correlation, response)
        issued, secret = result.issued, result.secret
        assert issued is not None
        assert secret is not None
        token = issued_token(issued)
        out = token_out(token, issued.issued_at)
        aruna = aruna_token(
            token.token_id,
            token.name,
            format_timestamp(token.issued_at),
            format_timestamp(token.expires_at) if token.expires_at else None,
            token.grants,
        )
        return IssuedTokenOut(
            **out.model_dump(),
            secret=secret,
            **command_fields(result),
            token=aruna,
            tokenSecret=secret,
            warning=result.outcome.warning,
        )

    @tokens.get("", response_model=list[TokenOut], name=f"list_{tag}_tokens")
    def list_(
        actor: CurrentActor,
        state: State,
        include_all: bool = Query(
            default=False, alias="all", description="Include revoked and expired tokens."
        ),
        at: str | None = Query(
            default=None, max_length=64, description="As they stood at this past time."
        ),
        principal: str = Path(alias=parameter, max_length=400),
    ) -> list[TokenOut]:
        """The principal's tokens (live ones unless ``all``; with ``at``, as they stood then,
        folded from the log); never their secrets."""
        when = moment(at, "at")
        found = state.ledger.tokens_of(
            actor, checked(principal), include_inactive=include_all, at=when
        )
        now = when or state.ledger.now()
        return [token_out(t, now) for t in found]

    @tokens.delete("", response_model=CommandOut, name=f"revoke_{tag}_tokens")
    def revoke_all(
        actor: CurrentActor,
        state: State,
        correlation: Correlation,
        response: Response,
        reason: str | None = Query(default=None, max_length=500),
        principal: str = Path(alias=parameter, max_length=400),
    ) -> CommandOut:
        """Revoke every live token of the principal (and the tokens derived from them)."""
        command = c.build(c.RevokeAllTokens, principal=checked(principal), reason=reason)
        return command_out(run(state, command, actor, correlation, response))

    @tokens.get("/{token_id}", response_model=TokenOut, name=f"get_{tag}_token")
    def get(
        token_id: str,
        actor: CurrentActor,
        state: State,
        principal: str = Path(alias=parameter, max_length=400),
    ) -> TokenOut:
        token = state.ledger.get_token(actor, token_id, owner=checked(principal))
        return token_out(token, state.ledger.now())

    @tokens.delete("/{token_id}", response_model=CommandOut, name=f"revoke_{tag}_token")
    def revoke(
        token_id: str,
        actor: CurrentActor,
        state: State,
        correlation: Correlation,
        response: Response,
        reason: str | None = Query(default=None, max_length=500),
        principal: str = Path(alias=parameter, max_length=400),
    ) -> CommandOut:
        """Revoke one token and every token derived from it."""
        command = c.build(
            c.RevokeToken, token_id=token_id, reason=reason, principal=checked(principal)
        )
        return command_out(run(state, command, actor, correlation, response))

    return tokens


@router.get("/live", response_model=list[dict[str, Any]])
def live_tokens(
    actor: CurrentActor,
    state: State,
    start: str = Query(alias="from", max_length=64, description="ISO 8601: the window's start."),
    end: str = Query(alias="to", max_length=64, description="ISO 8601: the window's end."),
    principal: str | None = Query(default=None, max_length=400),
    resource: str | None = Query(default=None, max_length=400),
) -> list[dict[str, Any]]:
    """The tokens usable at any moment of ``[from, to]`` (of ``principal``; allowing at least
    read on ``resource``), each as it stood when it first was and that moment
    (``usable_at``), as ``tokenledger tokens live --during FROM..TO``. (Declared before
    ``/{token_id}``, which would take ``live`` for an id.)"""
    window_start, window_end = moment(start, "from"), moment(end, "to")
    assert window_start is not None  # required
    assert window_end is not None
    found = state.ledger.live_tokens(
        actor, window_start, window_end, principal=principal, resource=resource
    )
    return [msgspec.to_builtins(live, builtin_types=(datetime,)) for live in found]


@router.get("/{token_id}", response_model=TokenOut)
def get_token(token_id: str, actor: CurrentActor, state: State) -> TokenOut:
    """One token by its public id, whoever it belongs to (if the caller may see it)."""
    return token_out(state.ledger.get_token(actor, token_id), state.ledger.now())


@router.delete("/{token_id}", response_model=CommandOut)
def revoke_token(
    token_id: str,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
    reason: str | None = Query(default=None, max_length=500),
) -> CommandOut:
    """Revoke one token by its public id, whoever it belongs to (as ``tokenledger tokens
    revoke``), and every token derived from it."""
    command = c.build(c.RevokeToken, token_id=token_id, reason=reason)
    return command_out(run(state, command, actor, correlation, response))


@router.post("/verify", response_model=VerificationOut, response_model_exclude_none=True)
def verify(
    body: VerifyIn,
    credentials: BearerCredentials,
    state: State,
    min_position: Annotated[
        str | None, Header(alias=MIN_POSITION_HEADER, max_length=MAX_HINT_LENGTH)
    ] = None,
) -> VerificationOut:
    """Is ``token`` active, and does it allow ``level`` (default read) on ``resource``? As
    ``tokenledger tokens verify``: a no says why (``reason``); with ``at``, the answer as of
    that past time, read from the temporal projection.

    Any active credential may ask, as for introspection; so may the token itself (presented
    as the Bearer), whatever its state: its holder may always learn why it is refused.
    """
    if bearer_secret(credentials) != body.token.strip():
        current_actor(credentials, state)
    if body.level is not None and body.resource is None:
        raise ValidationError("level needs resource")
    wanted = level_param(body.level) if body.level is not None else None
    when = moment(body.at, "at")
    if when is None:
        answer, position = state.ledger.answers.verify_at_least(
            body.token,
            min_position_of(body.min_position, min_position),
            resource=body.resource,
            level=wanted,
        )
        return VerificationOut(**msgspec.to_builtins(answer), log_position=position)
    if body.min_position is not None or min_position is not None:
        raise ValidationError("min_position asks of the current answer: it takes no at")
    answer, position = state.ledger.verify_at(
        body.token, when, resource=body.resource, level=wanted
    )
    return VerificationOut(
        **msgspec.to_builtins(answer), at=format_timestamp(when), as_of_position=position
    )


def level_param(text: str) -> Level:
    """A level named in a request; an unknown one is a 400 naming the levels."""
    try:
        return Level.parse(text)
    except ValueError:
        names = ", ".join(level.label for level in Level)
        raise ValidationError(f"unknown level {shown(text)}: use one of {names}") from None
