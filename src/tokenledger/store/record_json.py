"""A recorded event as JSON: the one shape ``log events`` prints and a dry run shows."""

from __future__ import annotations

from typing import Any

import msgspec

from tokenledger.errors import CorruptEvent
from tokenledger.store.chain import format_timestamp
from tokenledger.store.records import RecordedEvent

__all__ = ["record_dict"]


def record_dict(record: RecordedEvent) -> dict[str, Any]:
    """``record`` as a JSON-ready dict: every field of its envelope as the log holds it,
    ``data`` the event itself and ``recorded_at`` as the hash chain writes it (so that a
    reader can recompute the hash). ``CorruptEvent`` for a payload that is no JSON."""
    try:
        data = msgspec.json.decode(record.data)
    except msgspec.DecodeError as exc:
        raise CorruptEvent(record.position, str(exc)) from exc
    return {
        "position": record.position,
        "stream_id": record.stream_id,
        "stream_version": record.stream_version,
        "event_id": record.event_id,
        "event_type": record.event_type,
        "schema_version": record.schema_version,
        "recorded_at": format_timestamp(record.recorded_at),
        "actor": record.actor,
        "command_id": record.command_id,
        "correlation_id": record.correlation_id,
        "via": record.via,
        "data": data,
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }
