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
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tokenledger.clock import Clock, SystemClock, ensure_utc
from tokenledger.errors import IntegrityViolation, ValidationError, WrongExpectedVersion
from tokenledger.store import logtree
from tokenledger.store.backend import WRITE_OPTION, Backend, WriteStrategy, write_strategy
from tokenledger.store.backends import backend_for
from tokenledger.store.chain import (
    ChainBroken,
    ChainVerifier,
    canonical_envelope,
    chain_hash,
    saved_head_problem,
)
from tokenledger.store.driver import DriverStatement
from tokenledger.store.records import EMPTY_HEAD, Head, PendingEvent, RecordedEvent, uuid7
from tokenledger.store.schema import UTCDateTime, events

__all__ = [
    "EVENT_COLUMNS",
    "ChainReport",
    "EventStore",
    "WriteTransaction",
    "read_head",
    "stored_events_read",
    "to_record",
]

DEFAULT_BATCH_SIZE = 1000

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
    events.c.via,
)


# The statements every command runs, on the driver's cursor (see ``store.driver``).
_READ_HEAD = DriverStatement(
    sa.select(events.c.position, events.c.hash, events.c.recorded_at)
    .order_by(events.c.position.desc())
    .limit(1)
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


# -- reading the log for verification --------------------------------------------------
#
# The chain is checked on the values exactly as stored. Reading through the usual
# converters would fail on a tampered value (SQLite's timestamp text 'yesterday', an
# integer where a time belongs) before its position could be named, so the timestamp is
# read raw and converted here without ever raising; what does not convert is handed on as
# it is and named by ``ChainVerifier``.


_RAW_EVENT_COLUMNS = tuple(
    sa.type_coerce(column, sa.String()).label(column.key)
    if column is events.c.recorded_at
    else column
    for column in EVENT_COLUMNS
)


@cache
def _verification_query(bounded: bool, positions_only: bool = False) -> DriverStatement:
    """A keyset page of stored rows from ``:from_position`` (up to ``:until_position`` if
    ``bounded``: without a bound the query is the one ``read_all`` runs, planned alike).
    ``positions_only``: when a page cannot be read, its positions alone can (an integer
    key), and then its events one by one, to find the one the driver refuses."""
    conditions = [events.c.position >= sa.bindparam("from_position")]
    if bounded:
        conditions.append(events.c.position <= sa.bindparam("until_position"))
    columns = (events.c.position,) if positions_only else _RAW_EVENT_COLUMNS
    return DriverStatement(
        sa.select(*columns)
        .where(*conditions)
        .order_by(events.c.position)
        .limit(sa.bindparam("limit")),
        prepare=False,
    )


_RECORDED_AT = EVENT_COLUMNS.index(events.c.recorded_at)


def _as_stored(row: Sequence[Any], to_time: Callable[[Any], Any]) -> RecordedEvent:
    values = list(row)
    values[_RECORDED_AT] = to_time(values[_RECORDED_AT])
    return RecordedEvent(*values)


def _first_line(error: BaseException) -> str:
    orig = getattr(error, "orig", None) or error
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


def _read_failed(connection: Connection, error: BaseException) -> bool:
    """Whether ``error`` is the database or driver refusing to read a value, rather than a lost
    connection (which must surface as what it is, not as a broken chain)."""
    if isinstance(error, sa.exc.DBAPIError):
        return not error.connection_invalidated
    if not isinstance(error, connection.dialect.loaded_dbapi.Error):
        return False
    dbapi_connection = connection.connection.dbapi_connection
    return not connection.dialect.is_disconnect(error, dbapi_connection, None)


def _verification_page(
    engine: Engine, params: dict[str, Any]
) -> tuple[list[tuple[Any, ...]], tuple[int, str] | None]:
    """One page of stored rows; if one cannot be read, the rows before it and its position
    with the driver's reason."""
    bounded = "until_position" in params
    with engine.connect() as connection:
        try:
            return _verification_query(bounded).all(connection, params), None
        except Exception as error:
            if not _read_failed(connection, error):
                raise
    # On a connection of its own: after a failed statement PostgreSQL would refuse the next.
    with engine.connect() as connection:
        rows: list[tuple[Any, ...]] = []
        for (position,) in _verification_query(bounded, positions_only=True).all(
            connection, params
        ):
            one = {"from_position": position, "limit": 1}
            try:
                rows.extend(_verification_query(bounded=False).all(connection, one))
            except Exception as error:
                if not _read_failed(connection, error):
                    raise
                return rows, (position, _first_line(error))
        return rows, None


@contextmanager
def stored_events_read(engine: sa.Engine) -> Iterator[None]:
    """Around reading events: a stored value the drivers cannot convert back (a forged time,
    text that is no UTF-8, a number where text belongs) is evidence the log was altered.
    Said in one line that points at ``log verify`` (which names the position), never a
    traceback."""
    # The driver's own DataError comes through its fast paths unwrapped by SQLAlchemy.
    driver_error = getattr(engine.dialect.loaded_dbapi, "DataError", sa.exc.DataError)
    try:
        yield
    except (ValueError, TypeError, OverflowError, sa.exc.DataError, driver_error) as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
        raise IntegrityViolation(
            f"a stored event cannot be read ({detail}): the log was altered; "
            "'tokenledger log verify' names the position"
        ) from exc


def to_record(row: Any) -> RecordedEvent:
    # The selected columns are in the order of RecordedEvent's fields.
    return RecordedEvent(*row)


def read_head(connection: Connection) -> Head:
    row = _READ_HEAD.first(connection)
    if row is None:
        return EMPTY_HEAD
    return Head(position=row[0], hash=row[1], recorded_at=row[2])


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
        via: str | None = None,
        backend: Backend | None = None,
    ) -> None:
        self.connection = connection
        self.backend = backend or backend_for(connection)
        self.actor = actor
        self.via = via
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

    def write_strategy(self, events: int, *, wanted: WriteStrategy | None = None) -> WriteStrategy:
        """How a write of ``events`` events goes in this transaction (``write_strategy``)."""
        return write_strategy(self.backend, self.connection, events, wanted=wanted)

    def new_stream(self, stream_id: str) -> None:
        """Declare a stream the caller has just named with a fresh random id (a token minted by
        this command): its version is taken to be 0 without reading the log. Should it exist
        after all, the log's unique (stream, version) key refuses the append."""
        self._stream_versions.setdefault(stream_id, 0)

    def stream_versions(self, stream_ids: Iterable[str]) -> dict[str, int]:
        """Current version of each stream (0 for a stream with no events)."""
        wanted = [s for s in dict.fromkeys(stream_ids) if s not in self._stream_versions]
        if wanted:
            found = self.backend.stream_versions(self.connection, wanted)
            for stream_id in wanted:
                self._stream_versions[stream_id] = found.get(stream_id, 0)
        return {s: self._stream_versions[s] for s in stream_ids}

    def append(
        self,
        pending: Sequence[PendingEvent],
        *,
        expected_versions: Mapping[str, int] | None = None,
        strategy: WriteStrategy | None = None,
    ) -> list[RecordedEvent]:
        """Give each event the next position and stream version, chain it and insert it.

        ``strategy``: the write's, when the caller chose it for more than this append (a
        command's events and their rows); by default chosen for the append's size."""
        if not pending:
            return []
        versions = self.stream_versions([e.stream_id for e in pending])
        for stream_id, expected in (expected_versions or {}).items():
            actual = self.stream_versions([stream_id])[stream_id]
            if actual != expected:
                raise WrongExpectedVersion(stream_id, expected, actual)
        position, prev_hash = self._head.position, self._head.hash
        recorded: list[RecordedEvent] = []
        leaves: list[bytes] = []  # the Merkle tree's leaves: the same bytes the chain hashes
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
                via=self.via,
            )
            hash_ = chain_hash(prev_hash, envelope)
            leaves.append(logtree.leaf_hash(envelope))
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
                    via=self.via,
                )
            )
            prev_hash = hash_
        if strategy is None:
            strategy = self.write_strategy(len(recorded))
        before = self._head
        after = Head(position=position, hash=prev_hash, recorded_at=self.recorded_at)
        # The events, the announcement and the tree's nodes need no answer before the commit:
        # one round trip for all of them where the write is pipelined (inside a command's
        # pipeline this adds nothing).
        pipelined = strategy is WriteStrategy.PIPELINED
        with self.backend.pipeline(self.connection) if pipelined else nullcontext():
            self.backend.insert_events(
                self.connection, recorded, bulk=strategy is WriteStrategy.BULK
            )
            # Every append goes through here: subscribers elsewhere hear of it at commit.
            self.backend.announce_head(self.connection, position)
            # The tree's new nodes, in this transaction: a preview (``preview_command``)
            # builds its records here too, on a read transaction that must write nothing.
            if self.connection.get_execution_options().get(WRITE_OPTION):
                logtree.extend(self.connection, before, after, leaves)
        self._stream_versions.update(versions)
        self._head = after
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
        self.backend = backend_for(engine)
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
        via: str | None = None,
    ) -> Iterator[WriteTransaction]:
        """A write transaction holding the ledger's lock; commits when the block ends cleanly.

        ``via``: what the actor acted through (a token id, client id or session id, never a
        secret), recorded on each event the transaction appends."""
        command_id = command_id or uuid7()
        with (
            self.engine.connect().execution_options(**{WRITE_OPTION: True}) as connection,
            connection.begin(),
        ):
            self.backend.write_lock(connection)
            yield WriteTransaction(
                connection,
                backend=self.backend,
                clock=self.clock,
                actor=actor,
                command_id=command_id,
                correlation_id=correlation_id or command_id,
                via=via,
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
        via: str | None = None,
    ) -> list[RecordedEvent]:
        """Append events in one transaction of their own."""
        with self.transaction(
            actor=actor, command_id=command_id, correlation_id=correlation_id, via=via
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
            # A stream id the database cannot hold is bad input (refused when bound, before
            # any row is read); only the rows' values are the log's.
            rows = connection.execute(query)
            with stored_events_read(self.engine):
                return [to_record(row) for row in rows]

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
            with self.engine.connect() as connection, stored_events_read(self.engine):
                page = [to_record(row) for row in page_query.all(connection, params)]
            yield from page
            if len(page) < batch_size:
                return
            next_position = page[-1].position + 1

    # -- integrity ---------------------------------------------------------

    def read_verified(
        self,
        verifier: ChainVerifier,
        *,
        until_position: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> Iterator[RecordedEvent]:
        """The events after ``verifier``'s position, in log order, each yielded only once it has
        verified; ``ChainBroken`` at the first that does not.

        Keyset pages, so memory stays constant. A rebuild folds what this yields: it reads
        the log once, and never folds an event the chain does not vouch for. Continuing
        with the same verifier later (under a lock, say) picks up where it stopped.
        """
        to_time = self.backend.stored_time
        while True:
            params = {"from_position": verifier.position + 1, "limit": batch_size}
            if until_position is not None:
                params["until_position"] = until_position
            rows, unreadable = _verification_page(self.engine, params)
            for row in rows:
                record = _as_stored(row, to_time)
                verifier.follow(record)
                yield record
            if unreadable is not None:
                verifier.unreadable(*unreadable)
            if len(rows) < batch_size:
                return

    def verify_chain(
        self, *, expected_head: Head | None = None, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> ChainReport:
        """Recompute the hash chain from the start and name the first position that breaks it.

        Any stored value is answered with a report, never an exception: a value of the
        wrong type, or one the driver cannot read, breaks the chain at its position. With
        ``expected_head`` (a head exported earlier), also report a log that no longer
        reaches that position or holds a different event there; a head that no log could
        have had (``saved_head_problem``) is refused with ``ValidationError``.
        """
        if expected_head is not None:
            problem = saved_head_problem(expected_head)
            if problem is not None:
                raise ValidationError(f"the saved head is impossible: {problem}")
        verifier = ChainVerifier(expected_head=expected_head)
        try:
            for _ in self.read_verified(verifier, batch_size=batch_size):
                pass
            verifier.finish()
        except ChainBroken as broken:
            return ChainReport(
                ok=False,
                events_checked=verifier.checked,
                head=verifier.head,
                first_bad_position=broken.position,
                problem=broken.problem,
            )
        return ChainReport(ok=True, events_checked=verifier.checked, head=verifier.head)
