"""``/v2/audit`` and ``/v2/tokens/{token_id}/explain``: who did what, when and why."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query

from tokenledger.api.deps import ERRORS, State
from tokenledger.api.security import CurrentActor
from tokenledger.clock import checked_utc
from tokenledger.domain.names import shown
from tokenledger.errors import ValidationError
from tokenledger.projections.audit_queries import AuditQuery

__all__ = ["router"]

router = APIRouter(tags=["audit"], responses=ERRORS)

#: The most entries one HTTP call returns (the CLI allows more).
MAX_HTTP_LIMIT = 1000


def _moment(text: str | None, name: str) -> datetime | None:
    """A time bound in UTC; malformed or beyond the span the ledger holds: a 400."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(
            f"invalid {name} {shown(text)}: expected an ISO 8601 time such as "
            "2030-01-31T12:00:00Z (without a zone: UTC)"
        ) from None
    return checked_utc(moment, name)


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
        since=_moment(since, "since"),
        until=_moment(until, "until"),
        correlation_id=correlation_id,
        limit=limit,
        oldest_first=oldest_first,
    )
    return [entry.to_dict() for entry in state.ledger.audit_search(actor, query)]


@router.get("/v2/tokens/{token_id}/explain", response_model=dict[str, Any])
def explain(token_id: str, actor: CurrentActor, state: State) -> dict[str, Any]:
    """Who issued the token with which grants, what changed since, and why it was revoked."""
    return state.ledger.explain_token(actor, token_id).to_dict()
