"""Questions about the ledger at a moment or during a window, answered from the temporal
projection (``projections.temporal_view``, ``projections.temporal_window``): who could do
a level on a resource (``audit who-can``) and which tokens were usable during a window
(``tokens live``). Who may ask is ``domain.authority``'s; who could act, ``domain.who_can``
(through the token answer's own rule).
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from sqlalchemy.engine import Connection

from tokenledger.clock import ensure_utc
from tokenledger.domain.authority import (
    as_listed,
    as_seen_by,
    authorise_token_window,
    authorise_who_can,
    judge_token,
)
from tokenledger.domain.model import Actor, TokenView
from tokenledger.domain.names import check_token_holder, resource_path
from tokenledger.domain.permissions import Level
from tokenledger.domain.who_can import WhoCan, ancestors, who_can
from tokenledger.errors import ValidationError
from tokenledger.projections.temporal_view import position_on, view_at, view_on
from tokenledger.projections.temporal_window import (
    change_moments,
    resource_existed,
    tokens_alive_during,
)
from tokenledger.service.reading import Reader, valid, within_log

__all__ = ["LiveToken", "live_tokens", "who_can_at"]


class LiveToken(msgspec.Struct, frozen=True, kw_only=True):
    """A token usable during a window: as it stood at ``usable_at``, the first moment of the
    window when it was."""

    token: TokenView
    usable_at: datetime


def who_can_at(
    reader: Reader, actor: Actor, resource: str, level: Level, at: datetime | None = None
) -> tuple[WhoCan, int]:
    """Who could do ``level`` on ``resource`` at ``at`` (now by default), and the log
    position that answer reflects."""
    resource = valid(resource_path, resource)
    if level is Level.NONE:
        raise ValidationError("level none is no permission: ask for read, append, write or admin")
    now = reader.now()
    with reader.view() as view:
        authorise_who_can(view, actor, resource, now)
        exists_now = view.resource(resource) is not None
    if at is None and not exists_now:
        raise ValidationError(f"unknown resource {resource}")
    moment = now if at is None else within_log(reader, ensure_utc(at), "the moment")
    with view_at(reader.store, moment) as then:
        if at is not None:  # asked about a past moment: when the resource existed then
            _require_existed(then.connection, resource, then.position, then.position)
        return who_can(then, resource, level, moment), then.position


def live_tokens(
    reader: Reader,
    actor: Actor,
    start: datetime,
    end: datetime,
    *,
    principal: str | None = None,
    resource: str | None = None,
) -> list[LiveToken]:
    """The tokens usable at some moment of ``[start, end]`` (of ``principal``; allowing at
    least read on ``resource``), by id, each as it stood when it first was."""
    principal = valid(check_token_holder, principal) if principal is not None else None
    resource = valid(resource_path, resource) if resource is not None else None
    start, end = ensure_utc(start), ensure_utc(end)
    if end <= start:
        raise ValidationError(
            f"empty window: it ends ({end.isoformat()}) no later than it starts"
            f" ({start.isoformat()})"
        )
    now = reader.now()
    with reader.view() as view:
        authorise_token_window(view, actor, principal, resource, now)
    within_log(reader, start, "window start")
    within_log(reader, end, "window end")
    with reader.store.engine.connect() as connection:
        if resource is not None:  # whether it exists now or not: it must have during the window
            first, last = position_on(connection, start), position_on(connection, end)
            _require_existed(connection, resource, first, last)
        found = []
        for token_id, holder in _candidates(connection, start, end, principal, resource):
            live = _first_usable(connection, token_id, holder, start, end, resource)
            if live is not None:
                found.append(live)
    with reader.view() as view:
        return [
            msgspec.structs.replace(live, token=seen)
            for live in found
            if (seen := as_seen_by(view, actor, live.token, now)) is not None
        ]


def _candidates(
    connection: Connection,
    start: datetime,
    end: datetime,
    principal: str | None,
    resource: str | None,
) -> list[tuple[str, str]]:
    if resource is None:
        return tokens_alive_during(
            connection, start, end, principals=[principal] if principal else None
        )
    return tokens_alive_during(
        connection,
        start,
        end,
        principals=[principal] if principal else None,
        resources=ancestors(resource),
    )


def _first_usable(
    connection: Connection,
    token_id: str,
    principal: str,
    start: datetime,
    end: datetime,
    resource: str | None,
) -> LiveToken | None:
    """The token at the first moment of the window when its answer (``judge_token``, the
    one rule) made it usable (allowing read on ``resource``), else None."""
    for moment in [start, *change_moments(connection, start, end, token_id, principal)]:
        then = view_on(connection, moment)
        token = then.token(token_id)
        if token is None:
            continue
        answer = judge_token(then, token, moment)
        if not answer.usable:
            continue
        if resource is not None and answer.level_on(resource) < Level.READ:
            continue
        return LiveToken(token=as_listed([token], then)[0], usable_at=moment)
    return None


def _require_existed(connection: Connection, resource: str, first: int, last: int) -> None:
    """A resource is asked about only for when it existed: before its creation, or between a
    deletion and its creation again, it is unknown. One deleted since may be asked about for
    when it existed: an incident is often looked into after the resource is gone."""
    if not resource_existed(connection, resource, first, last):
        raise ValidationError(f"unknown resource {resource}")
