"""Turning domain events into stored records and back."""

from __future__ import annotations

from datetime import datetime

import msgspec

from tokenledger.domain.events import Event, EventUnion
from tokenledger.errors import CorruptEvent
from tokenledger.store.records import PendingEvent, RecordedEvent

__all__ = ["decode_event", "to_pending"]


def _encode_other(value: object) -> object:
    # datetime subclasses (a test clock's, for one) are not encoded natively.
    if isinstance(value, datetime):
        return value.isoformat()
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


_encoder = msgspec.json.Encoder(enc_hook=_encode_other)
_decoder: msgspec.json.Decoder[EventUnion] = msgspec.json.Decoder(EventUnion)


def to_pending(event: Event) -> PendingEvent:
    return PendingEvent(
        stream_id=event.stream_id,
        event_type=type(event).__struct_config__.tag,  # type: ignore[arg-type]
        schema_version=event.SCHEMA_VERSION,
        data=_encoder.encode(event),
    )


def decode_event(record: RecordedEvent) -> EventUnion:
    try:
        return _decoder.decode(record.data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CorruptEvent(record.position, str(exc)) from exc
