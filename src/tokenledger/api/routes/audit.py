"""``/v2/audit`` and ``/v2/tokens/{token_id}/explain``: who did what, when and why."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from fastapi import APIRouter, Query

from tokenledger.api.deps import ERRORS, State, moment
from tokenledger.api.routes.tokens import level_param
from tokenledger.api.security import CurrentActor
from tokenledger.projections.audit_queries import AuditEntry, AuditQuery
from tokenledger.store.chain import format_timestamp

__all__ = ["router"]

router = APIRouter(tags=["audit"], responses=ERRORS)

#: The most entries one HTTP call returns (the CLI allows more).
MAX_HTTP_LIMIT = 1000


def entry_out(entry: AuditEntry) -> dict[str, Any]:
    """An entry as the CLI prints it, with the rest of its place in the log (its stream's
    version and its link in the hash chain), so that a client holds the whole record."""
    record = entry.record
    return {
        **entry.to_dict(),
        "stream_version": record.stream_version,
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


@router.get("/v2/audit", response_model=list[dict[str, Any]])
def search(
    actor: CurrentActor,
    state: State,
    actor_filter: str | None = Query(
        default=None, alias="actor", max_length=400, description="operator:NAME, email or id."
    ),
    subject: str | None = Query(
        default=None, max_length=400, description="An org, user, account, resource or token id."
    ),
    event_type: str | None = Query(
        default=None, alias="type", max_length=100, description="e.g. TokenRevoked"
    ),
    since: str | None = Query(default=None, max_length=64, description="ISO 8601, inclusive."),
    until: str | None = Query(default=None, max_length=64, description="ISO 8601, exclusive."),
    correlation_id: str | None = Query(default=None, max_length=64),
    limit: int = Query(default=50, ge=1, le=MAX_HTTP_LIMIT),
    oldest_first: bool = False,
) -> list[dict[str, Any]]:
    """The events matching every filter given, newest first: those about the caller, and
    those concerning orgs the caller may read as a whole (admins, auditors)."""
    query = AuditQuery(
        actor=actor_filter,
        subject=subject,
        event_type=event_type,
        since=moment(since, "since"),
        until=moment(until, "until"),
        correlation_id=correlation_id,
        limit=limit,
        oldest_first=oldest_first,
    )
    return [entry_out(entry) for entry in state.ledger.audit_search(actor, query)]


@router.get("/v2/tokens/{token_id}/explain", response_model=dict[str, Any])
def explain(token_id: str, actor: CurrentActor, state: State) -> dict[str, Any]:
    """Who issued the token with which grants, what changed since, and why it was revoked."""
    explanation = state.ledger.explain_token(actor, token_id)
    revocation, cause = explanation.revocation, explanation.root_cause
    return {
        **explanation.to_dict(),
        "story": [entry_out(entry) for entry in explanation.story],
        "revocation": entry_out(revocation) if revocation is not None else None,
        "root_cause": entry_out(cause) if cause is not None else None,
    }


@router.get("/v2/audit/who-can", response_model=dict[str, Any])
def who_can(
    actor: CurrentActor,
    state: State,
    resource: str = Query(max_length=400, description="A resource path."),
    level: str = Query(max_length=100, description="read, append, write or admin."),
    at: str | None = Query(default=None, max_length=64, description="ISO 8601; default now."),
) -> dict[str, Any]:
    """Every principal and every usable token that could do ``level`` on ``resource`` at
    ``at`` (now by default), each with the grant path that allows it, as ``tokenledger
    audit who-can``: for an operator and whoever may read the resource's whole org."""
    when = moment(at, "at")
    answer, position = state.ledger.who_can(actor, resource, level_param(level), at=when)
    shown_at = when if when is not None else state.ledger.now()
    return {
        **msgspec.to_builtins(answer, builtin_types=(datetime,)),
        "at": format_timestamp(shown_at),
        "as_of_position": position,
    }
