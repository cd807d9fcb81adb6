"""Old event versions are read as the current shape; the stored bytes never change."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tokenledger.domain.events import TokenIssued
from tokenledger.domain.permissions import Grant
from tokenledger.errors import CorruptEvent
from tokenledger.store import RecordedEvent
from tokenledger.store.mapper import decode_event, to_pending
from tokenledger.store.upcasting import upcast

V1_TOKEN_ISSUED = (
    b'{"type":"TokenIssued","token_id":"tok_AAAAAAAAAAAAAAAA","principal":"bob@acme.io",'
    b'"kind":"personal","secret_hash":"' + b"ab" * 32 + b'","grants":[{"resource":"acme",'
    b'"level":"read"}],"name":null,"issued_at":"2026-01-02T03:04:05.000006Z",'
    b'"expires_at":null,"parent_id":null}'
)


def record(data: bytes, event_type: str = "TokenIssued", version: int = 1) -> RecordedEvent:
    return RecordedEvent(
        position=7,
        stream_id="token:tok_AAAAAAAAAAAAAAAA",
        stream_version=1,
        event_id="e",
        event_type=event_type,
        schema_version=version,
        data=data,
        recorded_at=datetime(2026, 1, 2, tzinfo=UTC),
        actor="operator:x",
        command_id="c",
        correlation_id="c",
        prev_hash="0" * 64,
        hash="0" * 64,
    )


def test_a_v1_token_issued_reads_as_v2() -> None:
    event = decode_event(record(V1_TOKEN_ISSUED))
    assert isinstance(event, TokenIssued)
    assert event.issued_by is None
    assert event.grants == (Grant("acme", "read"),)
    assert event.issued_at == datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)


def test_new_events_are_written_at_the_current_version() -> None:
    event = decode_event(record(V1_TOKEN_ISSUED))
    pending = to_pending(event)
    assert pending.schema_version == TokenIssued.SCHEMA_VERSION == 2
    assert b'"issued_by":null' in pending.data


def test_unknown_versions_and_types_are_reported_not_guessed() -> None:
    with pytest.raises(CorruptEvent, match="newer than this version"):
        decode_event(record(V1_TOKEN_ISSUED, version=3))
    with pytest.raises(CorruptEvent, match="unknown event type"):
        decode_event(record(b"{}", event_type="SomethingElse"))
    with pytest.raises(CorruptEvent, match="position 7"):
        decode_event(record(b'{"type":"TokenIssued"}'))


def test_upcast_refuses_a_gap_in_the_chain() -> None:
    with pytest.raises(ValueError, match="no upcaster"):
        upcast("UserCreated", 1, 2, {})
