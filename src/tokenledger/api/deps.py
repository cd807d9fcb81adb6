"""Shared pieces of the route modules: dependencies, running a command, error documentation."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from fastapi import Depends, Response

from tokenledger.api.dry_run import dry_run_requested
from tokenledger.api.schemas import CommandOut, ErrorOut, EventOut
from tokenledger.api.security import CORRELATION_HEADER, correlation_id
from tokenledger.api.state import ApiState, api_state
from tokenledger.clock import checked_utc
from tokenledger.domain import commands as c
from tokenledger.domain.model import Actor
from tokenledger.domain.names import shown
from tokenledger.errors import ValidationError
from tokenledger.service import CommandResult
from tokenledger.service.commands import PreviewReady
from tokenledger.store.chain import format_timestamp

__all__ = ["ERRORS", "Correlation", "State", "command_fields", "command_out", "moment", "run"]

State = Annotated[ApiState, Depends(api_state)]
Correlation = Annotated[str | None, Depends(correlation_id)]

#: The error answers every authenticated call may give, for the OpenAPI document.
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Invalid input (the ledger's validation rules)."},
    401: {"model": ErrorOut, "description": "Missing, invalid, revoked or expired token."},
    403: {"model": ErrorOut, "description": "The token's effective grants do not allow this."},
    404: {"model": ErrorOut, "description": "No such org, user, resource, account or token."},
    409: {"model": ErrorOut, "description": "Contradicts the ledger's current state."},
    503: {"model": ErrorOut, "description": "The database is unreachable or not migrated."},
}


def run(
    state: ApiState,
    command: c.Command,
    actor: Actor,
    correlation: str | None,
    response: Response,
) -> CommandResult:
    """Execute ``command`` for ``actor``; the answer carries the correlation id as a header too.

    With ``?dry_run=true``, preview it instead: ``PreviewReady`` ends the route, and the
    app answers with the events it would append (``api.dry_run``)."""
    if dry_run_requested():
        raise PreviewReady(state.ledger.preview(command, actor, correlation_id=correlation))
    result = state.ledger.execute(command, actor, correlation_id=correlation)
    response.headers[CORRELATION_HEADER] = result.correlation_id
    return result


def command_out(result: CommandResult) -> CommandOut:
    return CommandOut(**command_fields(result))


def command_fields(result: CommandResult) -> dict[str, Any]:
    """What every answer of a mutating call holds: ids, revocations, and the events (so that
    a client, the command line above all, shows what a command did as it would locally)."""
    return {
        "correlation_id": result.correlation_id,
        "revoked": result.revoked,
        "revoked_client_ids": list(result.outcome.revoked_client_ids),
        "revoked_access_key_ids": list(result.outcome.revoked_access_key_ids),
        "command_id": result.command_id,
        "log_position": result.records[-1].position if result.records else None,
        "events": [
            EventOut(
                position=record.position,
                event_id=record.event_id,
                event_type=record.event_type,
                stream_id=record.stream_id,
                recorded_at=format_timestamp(record.recorded_at),
                data=msgspec.to_builtins(event, enc_hook=_other_time),
            )
            for record, event in zip(result.records, result.events, strict=True)
        ],
    }


def _other_time(value: Any) -> Any:
    """A datetime subclass (a test clock's), written as msgspec writes a datetime."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


def moment(text: str | None, name: str) -> datetime | None:
    """A time parameter in UTC; malformed or beyond the span the ledger holds: a 400."""
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(
            f"invalid {name} {shown(text)}: expected an ISO 8601 time such as "
            "2030-01-31T12:00:00Z (without a zone: UTC)"
        ) from None
    return checked_utc(parsed, name)
