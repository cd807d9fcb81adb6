"""Projection handler for a credential's recorded uses (``TokenUsed``), registered on the
handlers' dispatch when ``projections.handlers`` loads."""

from __future__ import annotations

from tokenledger.domain.events import TokenUsed
from tokenledger.projections.handlers import _handle
from tokenledger.projections.schema import client_credentials, sessions, tokens
from tokenledger.projections.writes import Writes
from tokenledger.store.records import RecordedEvent

__all__: list[str] = []


@_handle.register
def _token_used(event: TokenUsed, writes: Writes, record: RecordedEvent) -> None:
    # At most one use per credential and interval is recorded, in time order
    # (``domain.decide_usage``), so the last event folded is the latest use: re-applying a
    # run of events in log order leaves the same value.
    used = {"last_used_at": event.last_used_at}
    if event.token_id is not None:
        writes.update(tokens, {"token_id": event.token_id}, used)
    elif event.client_id is not None:
        writes.update(client_credentials, {"client_id": event.client_id}, used)
    elif event.session_id is not None:
        writes.update(sessions, {"session_id": event.session_id}, used)
