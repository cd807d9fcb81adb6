"""``GET /v2/events/stream``: the log as Server-Sent Events, from a checkpoint on, as it grows.

Each event the caller may see (``service.audit.visible_events``, the rule ``/v2/audit``
follows) is one message::

    id: <position>
    event: <event type>
    data: <the event as a CloudEvents 1.0 JSON object, on one line>

Events it may not see are skipped, and the stream still says how far it has read: after a
batch whose last event was not sent, and first of all on connecting, comes::

    id: <position>
    event: position
    data: {"position": <position>, "head": <the log's head>}

(``head`` only in the first), so a checkpoint (``Last-Event-ID``) moves past what the caller
cannot see. While nothing is committed, a comment line (``: keep-alive``) is sent every
``HEARTBEAT`` seconds. A client resumes with ``?after=N`` or, on reconnecting, with the
``Last-Event-ID`` header, which wins when both are given; one beyond the log's head is
answered 425. The caller's credential is judged again, from the projections, before each batch
and at each keep-alive: once it is no longer usable the stream ends without sending the batch
(and a reconnection is answered 401).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

import msgspec
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from tokenledger.api.deps import ERRORS, State
from tokenledger.api.security import (
    BearerCredentials,
    CurrentActor,
    authenticate_bearer,
    bearer_secret,
)
from tokenledger.api.state import ApiState
from tokenledger.domain.model import Actor
from tokenledger.errors import LedgerError, PositionNotReached, ValidationError
from tokenledger.projections.audit_queries import AuditEntry, cloudevent
from tokenledger.service.audit import visible_events
from tokenledger.store import RecordedEvent
from tokenledger.store.mapper import decode_event

__all__ = ["HEARTBEAT", "router"]

router = APIRouter(tags=["audit"], responses=ERRORS)

#: Beyond any position a log reaches, and within what a database's bigint holds.
MAX_POSITION = 2**62

#: Seconds between keep-alive comments while nothing is committed.
HEARTBEAT = 15.0

_MEDIA_TYPE = "text/event-stream"


@router.get(
    "/v2/events/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {_MEDIA_TYPE: {}}, "description": "Server-Sent Events."}},
)
async def stream(
    request: Request,
    actor: CurrentActor,
    credentials: BearerCredentials,
    state: State,
    after: Annotated[
        str | None,
        Query(max_length=20, description="Resume after this log position (default 0)."),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", max_length=20, description="Wins over after."),
    ] = None,
) -> StreamingResponse:
    """The events the caller may see after a position, then each as it is committed (see
    the module's docstring for the wire format)."""
    start = _resume_point(after, last_event_id)
    secret = bearer_secret(credentials)
    head = (await asyncio.to_thread(state.ledger.store.head)).position
    if start > head:
        # A checkpoint the log has not reached (a client of a log since restored to an
        # earlier point, say) would wait in silence while new events took its positions.
        raise PositionNotReached(start, head)
    return StreamingResponse(
        _messages(request, state, secret, actor, start, head),
        media_type=_MEDIA_TYPE,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _resume_point(after: str | None, last_event_id: str | None) -> int:
    """``Last-Event-ID`` if given (it wins), else ``after``, else 0: each a log position."""
    if last_event_id is not None and last_event_id.strip():
        return _position_named(last_event_id, "Last-Event-ID")
    if after is not None and after.strip():
        return _position_named(after, "after")
    return 0


def _position_named(given: str, name: str) -> int:
    text = given.strip()
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_POSITION:
        raise ValidationError(f"{name} must be a log position (0 or more)")
    return int(text)


async def _messages(
    request: Request, state: ApiState, secret: str, actor: Actor, start: int, head: int
) -> AsyncIterator[str]:
    subscription = state.ledger.subscribe(start)
    try:
        yield _position(start, head)
        while not await request.is_disconnected():
            batch = await subscription.next_batch_async(timeout=HEARTBEAT)
            try:
                # Judged from the projections, not the worker's cache: they already hold
                # what this batch holds (the credential's own revocation included), which
                # the cache's follower may not have applied yet.
                actor = await asyncio.to_thread(
                    authenticate_bearer, state, secret, read_through=True
                )
                if not batch:  # an expired credential's stream ends too
                    yield ": keep-alive\n\n"
                    continue
                shown = await asyncio.to_thread(_visible, state, actor, batch)
            except LedgerError:  # the credential is no longer usable, or the database went
                return
            for entry in shown:
                yield _message(entry, state.settings.issuer)
            last = batch[-1].position
            if not shown or shown[-1].record.position != last:
                yield _position(last)
    finally:
        subscription.close()


def _visible(state: ApiState, actor: Actor, batch: list[RecordedEvent]) -> list[AuditEntry]:
    """The batch's events ``actor`` may see."""
    entries = [AuditEntry(record, decode_event(record)) for record in batch]
    with visible_events(state.ledger, actor) as may_see_it:
        return [entry for entry in entries if may_see_it(entry.event)]


def _message(entry: AuditEntry, source: str) -> str:
    data = msgspec.json.encode(cloudevent(entry, source)).decode()
    return f"id: {entry.record.position}\nevent: {entry.record.event_type}\ndata: {data}\n\n"


def _position(position: int, head: int | None = None) -> str:
    data: dict[str, int] = {"position": position}
    if head is not None:
        data["head"] = head
    return f"id: {position}\nevent: position\ndata: {msgspec.json.encode(data).decode()}\n\n"
