"""``/v2/audit``, ``/v2/tokens/{token_id}/explain``, ``/v2/audit/blast-radius/{token_id}``
(and its ``/revoke``) and ``/v2/audit/who-can``: who did what, when and why, what a token
reached, revoking what of it is live, and who could do what at a moment."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from tokenledger.api.deps import ERRORS, Correlation, State, command_out, moment, run
from tokenledger.api.routes.log import signer
from tokenledger.api.routes.tokens import level_param
from tokenledger.api.schemas import CommandOut
from tokenledger.api.security import CurrentActor
from tokenledger.api.state import ApiState
from tokenledger.errors import NotFound
from tokenledger.projections.audit_queries import AuditEntry, AuditQuery, Explanation
from tokenledger.service.log_proofs import explanation_proofs
from tokenledger.store.chain import format_timestamp

__all__ = ["RevokeRadiusIn", "router"]

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
def explain(
    token_id: str,
    actor: CurrentActor,
    state: State,
    proof: Annotated[
        bool,
        Query(
            description="Also a proof bundle of each event cited ('proofs'), against a signed "
            "checkpoint of the log now, for 'logproof bundle'."
        ),
    ] = False,
) -> dict[str, Any]:
    """Who issued the token with which grants, what changed since, and why it was revoked."""
    explanation = state.ledger.explain_token(actor, token_id)
    return explanation_out(state, explanation, proof=proof)


def explanation_out(state: ApiState, explanation: Explanation, *, proof: bool) -> dict[str, Any]:
    """A token's explanation as the API answers it, each entry a whole record; with
    ``proof``, a proof bundle of each event it cites (``proofs``)."""
    revocation, cause = explanation.revocation, explanation.root_cause
    document = {
        **explanation.to_dict(),
        "story": [entry_out(entry) for entry in explanation.story],
        "revocation": entry_out(revocation) if revocation is not None else None,
        "root_cause": entry_out(cause) if cause is not None else None,
    }
    if proof:
        document["proofs"] = explanation_proofs(state.ledger.store, signer(state), explanation)
    return document


@router.get("/v2/audit/blast-radius/{token_id}", response_model=dict[str, Any])
def blast_radius(token_id: str, actor: CurrentActor, state: State) -> dict[str, Any]:
    """Everything done through the token, transitively: the tokens and credentials it issued
    (for anyone) or derived and what those reached in turn (``credentials``, each with its
    ``source`` and ``live``), the commands acted through any of them and what they changed
    (``commands``), and the live ones (``live_tokens``, ``live_credentials``); what ``POST
    .../revoke`` withdraws (``withdrawals``) and leaves (``by_hand``). For whoever may see the
    token, as its story; of it, what the caller could see through the listings, the rest
    counted (``hidden_credentials``, ``hidden_changes``)."""
    return state.ledger.blast_radius(actor, token_id).to_dict()


class RevokeRadiusIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: Annotated[str, Field(max_length=500)] | None = None


@router.post("/v2/audit/blast-radius/{token_id}/revoke", response_model=CommandOut)
def revoke_blast_radius(
    token_id: str,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
    body: RevokeRadiusIn | None = None,
) -> CommandOut:
    """Withdraw every live thing of the token's blast radius the caller may withdraw, in one
    command (one correlation id, all or nothing): its tokens and the tokens derived from them,
    its client and S3 credentials and issuer trusts, the webhooks and endpoint trusts made
    through it. ``?dry_run=true`` answers the events it would append. What the caller may not
    see or withdraw is left (the ``GET`` lists it); nothing left is 404."""
    found = state.ledger.blast_radius(actor, token_id)
    command = found.revocation(body.reason if body is not None else None)
    if command is None:
        raise NotFound(f"nothing live in the blast radius of {token_id}: nothing to revoke")
    return command_out(run(state, command, actor, correlation, response))


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
