"""The SHA-256 hash chain that makes the log tamper-evident.

``hash = SHA-256(prev_hash || canonical envelope)``, where the canonical
envelope is the JSON array of the envelope fields (in a fixed order, the
timestamp as ISO 8601 UTC with microseconds) followed by a newline and the
payload's exact stored bytes. The position is part of the envelope, so moving,
dropping or inserting an event breaks the chain at that point.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from functools import lru_cache

import msgspec

__all__ = ["canonical_envelope", "chain_hash", "format_timestamp"]

_encode = msgspec.json.encode


@lru_cache(maxsize=1024)
def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a ``Z``: the one form hashed and printed."""
    # Remembered: a transaction's events share one timestamp, and each is hashed with it
    # (a cascade's thousands, a copied log's millions). Aware times are equal exactly when
    # they are the same instant, which is all the text depends on.
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds") + "Z"


def canonical_envelope(
    *,
    position: int,
    stream_id: str,
    stream_version: int,
    event_id: str,
    event_type: str,
    schema_version: int,
    recorded_at: datetime,
    actor: str,
    command_id: str,
    correlation_id: str,
    data: bytes,
) -> bytes:
    header = _encode(
        [
            position,
            stream_id,
            stream_version,
            event_id,
            event_type,
            schema_version,
            format_timestamp(recorded_at),
            actor,
            command_id,
            correlation_id,
        ]
    )
    return header + b"\n" + data


def chain_hash(prev_hash: str, envelope: bytes) -> str:
    digest = hashlib.sha256(bytes.fromhex(prev_hash))
    digest.update(envelope)
    return digest.hexdigest()
