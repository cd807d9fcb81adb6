"""The append-only event store.

Guarantees (see ``docs/architecture.md``):

* one global order: ``position`` is gap-free and strictly increasing in commit
  order, because every writer holds the ledger's write lock from before it
  reads the head until it commits;
* each stream's versions are 1, 2, 3, ... and ``expected_version`` checks are
  made under that lock;
* every event extends the SHA-256 hash chain, and ``recorded_at`` never goes
  backwards along the log, so "the state at time T" is a prefix of the log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Engine

from tokenledger.clock import Clock, SystemClock, ensure_utc
from tokenledger.errors import ValidationError, WrongExpectedVersion
from tokenledger.store.chain import canonical_envelope, chain_hash
from tokenledger.store.driver import DriverStatement, copy_rows, in_pipeline
from tokenledger.store.engine import WRITE_OPTION
from tokenledger.store.records import EMPTY_HEAD, Head, PendingEvent, RecordedEvent, uuid7
from tokenledger.store.schema import UTCDateTime, events

__all__ = [
    "EVENT_COLUMNS",
    "ChainReport",
    "EventStore",
    "WriteTransaction",
    "acquire_write_lock",
    "read_head",
    "to_record",
]

DEFAULT_BATCH_SIZE = 1000
# Bound on the number of parameters in one "stream IN (...)" query (SQLite; PostgreSQL
# binds the whole list as one array).
_STREAM_QUERY_CHUNK = 500
# PostgreSQL: from this many events on, an append is loaded with COPY, the server's bulk
# path (a cascade, a copied log), rather than as an INSERT per row.
_COPY_EVENTS = 100

EVENT_COLUMNS = (
    events.c.position,
    events.c.stream_id,
    events.c.stream_version,
    events.c.event_id,
    events.c.event_type,
    events.c.schema_version,
    events.c.data,
    events.c.recorded_at,
    events.c.actor,
    events.c.command_id,
    events.c.correlation_id,
    events.c.prev_hash,
    events.c.hash,
)


# The statements every command runs, on the driver's cursor (see ``store.driver``).
_READ_HEAD = DriverStatement(
    sa.select(events.c.position, events.c.hash, events.c.recorded_at)
    .order_by(events.c.position.desc())
    .limit(1)
)
_WRITE_LOCK = DriverStatement(
    sa.text("SELECT pg_advisory_xact_lock(7236712, 'events'::regclass::oid::int4)")
)
_EVENT_KEYS = tuple(column.key for column in EVENT_COLUMNS)
_INSERT_EVENTS = DriverStatement(events.insert(), column_keys=_EVENT_KEYS)


# PostgreSQL: the latest version of each stream in the array ``ids``, one statement
# whatever the number of streams. Not prepared: a plan made generic while the log was
# small (a sequential scan) would be kept as the log grows, each call then reading it all.
_STREAM_VERSIONS_ANY = DriverStatement(
    sa.select(events.c.stream_id, sa.func.max(events.c.stream_version))
    .where(events.c.stream_id == sa.any_(sa.bindparam("ids", type_=ARRAY(sa.String()))))
    .group_by(events.c.stream_id),
    prepare=False,
)


@cache
def _stream_versions_query(count: int) -> DriverStatement:
    """The latest version of each of ``count`` streams (bound as ``s0``, ``s1``, ...)."""
    names = [sa.bindparam(f"s{i}", type_=sa.String()) for i in range(count)]
    return DriverStatement(
        sa.select(events.c.stream_id, sa.func.max(events.c.stream_version))
        .where(events.c.stream_id.in_(names))
        .group_by(events.c.stream_id),
        prepare=False,
    )


@cache
def _page_query(bounds: tuple[str, ...]) -> DriverStatement:
    """One keyset page of the log from ``:from_position``, within the named bounds."""
    conditions = [events.c.position >= sa.bindparam("from_position")]
    if "until_position" in bounds:
        conditions.append(events.c.position <= sa.bindparam("until_position"))
    if "since" in bounds:
        conditions.append(events.c.recorded_at >= sa.bindparam("since", type_=UTCDateTime()))
    if "until" in bounds:
        conditions.append(events.c.recorded_at < sa.bindparam("until", type_=UTCDateTime()))
    return DriverStatement(
        sa.select(*EVENT_COLUMNS)
        .where(*conditions)
        .order_by(events.c.position)
        .limit(sa.bindparam("limit")),
        prepare=False,  # time ranges: planned for the values given
    )


def to_record(row: Any) -> RecordedEvent:
    # The selected columns are in the order of RecordedEvent's fields.
    return RecordedEvent(*row)


def read_head(connection: Connection) -> Head:
    row = _READ_HEAD.first(connection)
    if row is None:
        return EMPTY_HEAD
    return Head(position=row[0], hash=row[1], recorded_at=row[2])


def acquire_write_lock(connection: Connection) -> None:
    """Take the ledger's write lock for the rest of the transaction.

    SQLite already holds it: the transaction began with BEGIN IMMEDIATE. On
    PostgreSQL a transaction-level advisory lock, keyed by this ledger's
    ``events`` table, serialises writers without blocking readers (unlike
    ``LOCK TABLE``, it does not queue behind autovacuum either).
    """
    if connection.dialect.name == "postgresql":
        _WRITE_LOCK.execute(connection).close()


class WriteTransaction:
    """One command's transaction: holds the write lock, appends, commits or rolls back together.

    ``connection`` is exposed so that inline projections are written in the
    same transaction as the events they fold.
    """

    def __init__(
        self,
        connection: Connection,
        *,
        clock: Clock,
        actor: str,
        command_id: str,
        correlation_id: str,
    ) -> None:
        self.connection = connection
        self.actor = actor
        self.command_id = command_id
        self.correlation_id = correlation_id
        self._head = read_head(connection)
        now = ensure_utc(clock.now())
        # Never earlier than the event before: time travel by timestamp then
        # always selects a prefix of the log.
        last = self._head.recorded_at
        self.recorded_at = now if last is None or now >= last else last
        self._stream_versions: dict[str, int] = {}

    @property
    def head(self) -> Head:
        return self._head

    def new_stream(self, stream_id: str) -> None:
        """Declare a stream the caller has just named with a fresh random id (a token minted by
        this command): its version is taken to be 0 without reading the log. Should it exist
        after all, the log's unique (stream, version) key refuses the append."""
        self._stream_versions.setdefault(stream_id, 0)

    def stream_versions(self, stream_ids: Iterable[str]) -> dict[str, int]:
        """Current version of each stream (0 for a stream with no events)."""
        wanted = [s for s in dict.fromkeys(stream_ids) if s not in self._stream_versions]
        if wanted and self.connection.dialect.name == "postgresql":
            found = dict(_STREAM_VERSIONS_ANY.all(self.connection, {"ids": wanted}))
            for stream_id in wanted:
                self._stream_versions[stream_id] = found.get(stream_id, 0)
            wanted = []
        for start in range(0, len(wanted), _STREAM_QUERY_CHUNK):
            chunk = wanted[start : start + _STREAM_QUERY_CHUNK]
            params = {f"s{i}": stream_id for i, stream_id in enumerate(chunk)}
            found = dict(_stream_versions_query(len(chunk)).all(self.connection, params))
            for stream_id in chunk:
                self._stream_versions[stream_id] = found.get(stream_id, 0)
        return {s: self._stream_versions[s] for s in stream_ids}

    def append(
        self,
        pending: Sequence[PendingEvent],
        *,
        expected_versions: Mapping[str, int] | None = None,
    ) -> list[RecordedEvent]:
        """Give each event the next position and stream version, chain it and insert it."""
        if not pending:
            return []
        versions = self.stream_versions([e.stream_id for e in pending])
        for stream_id, expected in (expected_versions or {}).items():
            actual = self.stream_versions([stream_id])[stream_id]
            if actual != expected:
                raise WrongExpectedVersion(stream_id, expected, actual)
        position, prev_hash = self._head.position, self._head.hash
        recorded: list[RecordedEvent] = []
        for event in pending:
            if not event.stream_id:
                raise ValidationError("an event needs a stream id")
            position += 1
            version = versions[event.stream_id] + 1
            versions[event.stream_id] = version
            envelope = canonical_envelope(
                position=position,
                stream_id=event.stream_id,
                stream_version=version,
                event_id=event.event_id,
                event_type=event.event_type,
                schema_version=event.schema_version,
                recorded_at=self.recorded_at,
                actor=self.actor,
                command_id=self.command_id,
                correlation_id=self.correlation_id,
                data=event.data,
            )
            hash_ = chain_hash(prev_hash, envelope)
            recorded.append(
                RecordedEvent(
                    position=position,
                    stream_id=event.stream_id,
                    stream_version=version,
                    event_id=event.event_id,
                    event_type=event.event_type,
                    schema_version=event.schema_version,
                    data=event.data,
                    recorded_at=self.recorded_at,
                    actor=self.actor,
                    command_id=self.command_id,
                    correlation_id=self.correlation_id,
                    prev_hash=prev_hash,
                    hash=hash_,
                )
            )
            prev_hash = hash_
        if (
            len(recorded) >= _COPY_EVENTS
            and self.connection.dialect.name == "postgresql"
            and not in_pipeline(self.connection)  # COPY cannot run in a pipeline
        ):
            # RecordedEvent's fields are the columns, in order.
            copy_rows(
                self.connection, events, _EVENT_KEYS, [msgspec.structs.astuple(r) for r in recorded]
            )
        else:
            _INSERT_EVENTS.executemany_rows(
                self.connection, [msgspec.structs.asdict(r) for r in recorded]
            )
        self._stream_versions.update(versions)
        self._head = Head(position=position, hash=prev_hash, recorded_at=self.recorded_at)
        return recorded


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The outcome of checking the hash chain."""

    ok: bool
    events_checked: int
    head: Head
    first_bad_position: int | None = None
    problem: str | None = None


class EventStore:
    """Append to and read from the ledger's log."""

    def __init__(self, engine: Engine, *, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock: Clock = clock or SystemClock()
        self._commit_listeners: list[Callable[[], None]] = []

    def on_commit(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after each write transaction of this store commits (e.g. to drop
        cached answers the new events may have changed)."""
        self._commit_listeners.append(listener)

    # -- writing -----------------------------------------------------------

    @contextmanager
    def transaction(
        self,
        *,
        actor: str,
        command_id: str | None = None,
        correlation_id: str | None = None,
    ) -> Iterator[WriteTransaction]:
        """A write transaction holding the ledger's lock; commits when the block ends cleanly."""
        command_id = command_id or uuid7()
        with (
            self.engine.connect().execution_options(**{WRITE_OPTION: True}) as connection,
            connection.begin(),
        ):
            acquire_write_lock(connection)
            yield WriteTransaction(
                connection,
                clock=self.clock,
                actor=actor,
                command_id=command_id,
                correlation_id=correlation_id or command_id,
            )
        # Reached only once the transaction committed.
        for listener in self._commit_listeners:
            listener()

    def append(
        self,
        pending: Sequence[PendingEvent],
        *,
        actor: str,
        expected_versions: Mapping[str, int] | None = None,
        command_id: str | None = None,
        correlation_id: str | None = None,
    ) -> list[RecordedEvent]:
        """Append events in one transaction of their own."""
        with self.transaction(
            actor=actor, command_id=command_id, correlation_id=correlation_id
        ) as tx:
            return tx.append(pending, expected_versions=expected_versions)

    # -- reading -----------------------------------------------------------

    def head(self) -> Head:
        with self.engine.connect() as connection:
            return read_head(connection)

    def read_stream(self, stream_id: str, *, from_version: int = 1) -> list[RecordedEvent]:
        query = (
            sa.select(*EVENT_COLUMNS)
            .where(events.c.stream_id == stream_id, events.c.stream_version >= from_version)
            .order_by(events.c.stream_version)
        )
        with self.engine.connect() as connection:
            return [to_record(row) for row in connection.execute(query)]

    def read_all(
        self,
        *,
        from_position: int = 1,
        until_position: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> Iterator[RecordedEvent]:
        """Events in log order, fetched in keyset pages so memory stays constant.

        ``until_position`` is inclusive; ``since`` is inclusive and ``until``
        exclusive, both compared with ``recorded_at``.
        """
        bounds: dict[str, Any] = {}
        if until_position is not None:
            bounds["until_position"] = until_position
        if since is not None:
            bounds["since"] = ensure_utc(since)
        if until is not None:
            bounds["until"] = ensure_utc(until)
        page_query = _page_query(tuple(sorted(bounds)))
        next_position = max(from_position, 1)
        while True:
            params = {**bounds, "from_position": next_position, "limit": batch_size}
            with self.engine.connect() as connection:
                page = [to_record(row) for row in page_query.all(connection, params)]
            yield from page
            if len(page) < batch_size:
                return
            next_position = page[-1].position + 1

    # -- integrity ---------------------------------------------------------

    def verify_chain(
        self, *, expected_head: Head | None = None, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> ChainReport:
        """Recompute the hash chain from the start and name the first position that breaks it.

        With ``expected_head`` (a head exported earlier), also report a log that
        no longer reaches that position or holds a different event there.
        """
        prev_hash = EMPTY_HEAD.hash
        expected_position = 1
        checked = 0
        head = EMPTY_HEAD

        def broken(position: int, problem: str) -> ChainReport:
            return ChainReport(
                ok=False,
                events_checked=checked,
                head=head,
                first_bad_position=position,
                problem=problem,
            )

        for record in self.read_all(batch_size=batch_size):
            if record.position != expected_position:
                return broken(expected_position, f"position {expected_position} is missing")
            if record.prev_hash != prev_hash:
                return broken(record.position, "prev_hash does not match the previous event")
            envelope = canonical_envelope(
                position=record.position,
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
            )
            if chain_hash(prev_hash, envelope) != record.hash:
                return broken(record.position, "hash does not match the event's contents")
            try:
                msgspec.json.decode(record.data)
            except msgspec.DecodeError as exc:
                return broken(record.position, f"payload is not valid JSON ({exc})")
            if (
                expected_head is not None
                and record.position == expected_head.position
                and record.hash != expected_head.hash
            ):
                return broken(record.position, "differs from the saved head: history was rewritten")
            prev_hash = record.hash
            expected_position += 1
            checked += 1
            head = Head(position=record.position, hash=record.hash, recorded_at=record.recorded_at)
        if expected_head is not None and head.position < expected_head.position:
            return broken(
                head.position + 1,
                f"the log ends at position {head.position} but the saved head is at "
                f"{expected_head.position}: the log was truncated",
            )
        return ChainReport(ok=True, events_checked=checked, head=head)
