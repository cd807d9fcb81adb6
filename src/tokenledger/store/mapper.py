"""Turning domain events into stored records and back."""

from __future__ import annotations

from datetime import datetime
from typing import cast

import msgspec

from tokenledger.domain.events import Event, EventUnion, event_types
from tokenledger.errors import CorruptEvent
from tokenledger.store.records import PendingEvent, RecordedEvent
from tokenledger.store.upcasting import upcast

__all__ = ["decode_event", "to_pending"]


def _encode_other(value: object) -> object:
    # datetime subclasses (a test clock's, for one) are not encoded natively.
    if isinstance(value, datetime):
        return value.isoformat()
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


_encoder = msgspec.json.Encoder(enc_hook=_encode_other)
_decoder: msgspec.json.Decoder[EventUnion] = msgspec.json.Decoder(EventUnion)
_current_versions = {tag: cls.SCHEMA_VERSION for tag, cls in event_types().items()}


def to_pending(event: Event) -> PendingEvent:
    return PendingEvent(
        stream_id=event.stream_id,
        event_type=type(event).__struct_config__.tag,  # type: ignore[arg-type]
        schema_version=event.SCHEMA_VERSION,
        data=_encoder.encode(event),
    )


def decode_event(record: RecordedEvent) -> EventUnion:
    """The domain event a record holds, upcast to the current shape when it is older."""
    current = _current_versions.get(record.event_type)
    if current is None:
        raise CorruptEvent(record.position, f"unknown event type {record.event_type!r}")
    try:
        if record.schema_version == current:
            return _decoder.decode(record.data)
        if record.schema_version > current:
            raise CorruptEvent(
                record.position,
                f"{record.event_type} v{record.schema_version} is newer than this version "
                f"of TokenLedger reads (v{current}): upgrade TokenLedger",
            )
        payload = msgspec.json.decode(record.data)
        if not isinstance(payload, dict):
            raise CorruptEvent(record.position, "the payload is not a JSON object")
        payload = upcast(record.event_type, record.schema_version, current, payload)
        return cast("EventUnion", msgspec.convert(payload, EventUnion))
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        raise CorruptEvent(record.position, str(exc)) from exc
