"""The SHA-256 hash chain that makes the log tamper-evident.

``hash = SHA-256(prev_hash || canonical envelope)``, where the canonical
envelope is the JSON array of the envelope fields (in a fixed order, the
timestamp as ISO 8601 UTC with microseconds) followed by a newline and the
payload's exact stored bytes. The position is part of the envelope, so moving,
dropping or inserting an event breaks the chain at that point.

``via`` (what the command acted through: a token id, client id or session id) joined
the envelope later. It is hashed only when present, as an eleventh element after the
correlation id: an event without one (the operator's, or any recorded before ``via``
was kept) hashes exactly as it always did, so every existing log verifies unchanged,
while a ``via`` added to, changed on or removed from a later event breaks the chain
there.

``ChainVerifier`` follows the chain one stored event at a time (constant memory)
and raises ``ChainBroken`` naming the first position that breaks it, whatever
the stored values are: a value of another type than the ledger writes (a payload
turned into text, a NULL, a timestamp that is not a time) is a break at its
position, never a crash.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import msgspec

from tokenledger.domain.names import shown
from tokenledger.errors import IntegrityViolation
from tokenledger.store.records import GENESIS_HASH, Head, RecordedEvent

__all__ = [
    "MAX_POSITION",
    "ChainBroken",
    "ChainVerifier",
    "canonical_envelope",
    "chain_hash",
    "format_timestamp",
    "record_envelope",
    "saved_head_problem",
]

#: The largest position the log can hold (a signed 64-bit ``BIGINT``).
MAX_POSITION = 2**63 - 1

_HEX_DIGITS = frozenset("0123456789abcdef")

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
    via: str | None = None,
) -> bytes:
    fields: list[object] = [
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
    if via is not None:  # absent: the envelope as it was before ``via`` was kept
        fields.append(via)
    return _encode(fields) + b"\n" + data


def record_envelope(record: RecordedEvent, position: int | None = None) -> bytes:
    """The bytes the chain hashes (and the Merkle tree's leaf) for a stored record, at
    ``position`` (by default its own)."""
    return canonical_envelope(
        position=record.position if position is None else position,
        stream_id=record.stream_id,
        stream_version=record.stream_version,
        event_id=record.event_id,
        event_type=record.event_type,
        schema_version=record.schema_version,
        recorded_at=record.recorded_at,
        actor=record.actor,
        command_id=record.command_id,
        correlation_id=record.correlation_id,
        data=record.data,
        via=record.via,
    )


def chain_hash(prev_hash: str, envelope: bytes) -> str:
    digest = hashlib.sha256(bytes.fromhex(prev_hash))
    digest.update(envelope)
    return digest.hexdigest()


class ChainBroken(IntegrityViolation):
    """The log breaks the hash chain at ``position``."""

    def __init__(self, position: int, problem: str) -> None:
        super().__init__(f"chain broken at position {position}: {problem}")
        self.position = position
        self.problem = problem


def saved_head_problem(head: Head) -> str | None:
    """Why ``head`` cannot be a head that ``log head --json`` printed, or None if it can be.

    An empty log's head is position 0 with the genesis hash (64 zeros), and every log
    extends it; any other head names an event, at a position from 1 on, by its SHA-256.
    """
    position, hash_ = head.position, head.hash
    if type(position) is not int or not 0 <= position <= MAX_POSITION:
        return f"the position must be a whole number from 0 to {MAX_POSITION}"
    if not _is_digest(hash_):
        return "the hash must be 64 lowercase hexadecimal digits (a SHA-256)"
    if position == 0 and (hash_ != GENESIS_HASH or head.recorded_at is not None):
        return "a head at position 0 is the empty log's: hash 64 zeros and no time"
    if position > 0 and hash_ == GENESIS_HASH:
        return "the hash of 64 zeros is the empty log's, whose head is at position 0"
    return None


class ChainVerifier:
    """Follows the hash chain event by event, from position 1, in constant memory.

    ``follow`` takes each stored event in log order, with its values as read from the
    database (the types are checked here, not assumed), and raises ``ChainBroken`` at
    the first one that is out of place, holds a value of the wrong type, or does not
    hash to its stored hash. With ``expected_head`` (a head saved earlier) the event at
    that position must be the saved one, and ``finish`` reports a log that no longer
    reaches it. ``check_payload`` also requires each payload to be a JSON object; a
    rebuild leaves that to its own decoding of every payload, which reports the same.
    """

    __slots__ = ("_check_payload", "_expected", "checked", "hash", "position", "recorded_at")

    def __init__(self, *, expected_head: Head | None = None, check_payload: bool = True) -> None:
        self._expected = expected_head
        self._check_payload = check_payload
        self.position = 0
        self.hash = GENESIS_HASH
        self.recorded_at: datetime | None = None
        self.checked = 0

    @property
    def head(self) -> Head:
        """The last event that verified (the empty log's head before the first)."""
        return Head(position=self.position, hash=self.hash, recorded_at=self.recorded_at)

    def follow(self, record: RecordedEvent) -> None:
        """Check the next event of the log; raise ``ChainBroken`` if it breaks the chain."""
        expected = self.position + 1
        position = record.position
        if position != expected or type(position) is not int:
            if type(position) is int and position > expected:
                raise ChainBroken(expected, f"position {expected} is missing")
            raise ChainBroken(expected, f"the next event's position is {_described(position)}")
        if record.prev_hash != self.hash:
            raise ChainBroken(position, "prev_hash does not match the previous event")
        # One test for the common case; the diagnosis only when it fails. The hash alone
        # would not do: a value of another type can encode to the same bytes (a BLOB
        # stream id is encoded as the base64 text it could have been written as).
        if not (
            type(record.stream_id) is str
            and type(record.stream_version) is int
            and type(record.event_id) is str
            and type(record.event_type) is str
            and type(record.schema_version) is int
            and type(record.data) is bytes
            and isinstance(record.recorded_at, datetime)
            and record.recorded_at.tzinfo is not None
            and type(record.actor) is str
            and type(record.command_id) is str
            and type(record.correlation_id) is str
            and (record.via is None or type(record.via) is str)
        ):
            raise ChainBroken(position, _type_problem(record))
        # At the position the chain expects, not the one the row claims: a row moved to
        # another position does not verify.
        envelope = record_envelope(record, position)
        if chain_hash(self.hash, envelope) != record.hash:
            if not _is_digest(record.hash):
                raise ChainBroken(position, f"hash holds {_described(record.hash)}, not a SHA-256")
            raise ChainBroken(position, "hash does not match the event's contents")
        if self._check_payload:
            try:
                payload = msgspec.json.decode(record.data)
            except msgspec.DecodeError as exc:
                raise ChainBroken(position, f"payload is not valid JSON ({exc})") from None
            if not isinstance(payload, dict):
                raise ChainBroken(position, "payload is not a JSON object")
        saved = self._expected
        if saved is not None and position == saved.position and record.hash != saved.hash:
            raise ChainBroken(position, "differs from the saved head: history was rewritten")
        self.position = position
        self.hash = record.hash
        self.recorded_at = record.recorded_at
        self.checked += 1

    def unreadable(self, position: int, reason: str) -> None:
        """The event stored at ``position`` cannot even be read (the driver refuses one of its
        values): the chain breaks there, unless an earlier position is already missing."""
        expected = self.position + 1
        if position > expected:
            raise ChainBroken(expected, f"position {expected} is missing")
        raise ChainBroken(position, f"a stored value cannot be read ({shown(reason)})")

    def finish(self) -> None:
        """The log has ended: with a saved head, it must have reached that head's position."""
        saved = self._expected
        if saved is not None and self.position < saved.position:
            raise ChainBroken(
                self.position + 1,
                f"the log ends at position {self.position} but the saved head is at "
                f"{saved.position}: the log was truncated",
            )


# The type each column's value must have, as the ledger writes it.
_EXPECTED_TYPES: tuple[tuple[str, type, str], ...] = (
    ("stream_id", str, "text"),
    ("stream_version", int, "an integer"),
    ("event_id", str, "text"),
    ("event_type", str, "text"),
    ("schema_version", int, "an integer"),
    ("data", bytes, "bytes"),
    ("actor", str, "text"),
    ("command_id", str, "text"),
    ("correlation_id", str, "text"),
)
#: Columns that may also hold NULL.
_NULLABLE = frozenset({"via"})


def _is_digest(value: Any) -> bool:
    """Whether ``value`` is a SHA-256 as the chain writes it: 64 lowercase hex digits."""
    return type(value) is str and len(value) == len(GENESIS_HASH) and _HEX_DIGITS.issuperset(value)


def _type_problem(record: RecordedEvent) -> str:
    for name, expected, said in (*_EXPECTED_TYPES, ("via", str, "text or NULL")):
        value = getattr(record, name)
        if value is None and name in _NULLABLE:
            continue
        if type(value) is not expected:
            return f"{name} holds {_described(value)}, not {said}"
    return f"recorded_at holds {_described(record.recorded_at)}, not a time in UTC"


def _described(value: Any) -> str:
    """A stored value's type and, cut short and escaped, the value itself."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return f"text {shown(value)}"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"{len(value)} bytes"
    if isinstance(value, datetime):
        return f"a time without a time zone ({value.isoformat()})"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    return f"{type(value).__name__} {shown(repr(value))}"
