"""Rebuilding projections from the log: replace, check, or build a past state elsewhere.

A rebuild folds the whole log, in keyset pages (constant memory), into fresh
*shadow* tables beside the live ones (each page's new rows folded in memory and
loaded in bulk, ``projections.bulk``; keys and indexes built once at the end,
before the write lock is taken): where, and how it is swapped in, is the
backend's (``Backend.shadow``: an attached database file on SQLite, a sibling
schema on PostgreSQL), addressed through SQLAlchemy's ``schema_translate_map``
so that the very handlers the inline projections use write there. The live tables
keep serving meanwhile. At the end the rebuild takes the ledger's write lock,
folds the few events appended since, and then either swaps the shadow tables in
(one transaction: on PostgreSQL the tables change schema, on SQLite their
records are copied, index records included) or compares them with the live
ones. A rebuild killed midway leaves only the shadow behind, which the next run
discards before starting again.

Every event is checked against the hash chain as it is read (``read_verified``:
one pass over the log, not a second one before it), up to the head read under the
write lock. A broken chain raises ``ChainBroken`` naming the position before
anything is swapped in or compared: the shadow is discarded and the live tables
stay as they were, for projections built from a log the chain no longer vouches
for would pass forged events off as the ledger's state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tokenledger.errors import Conflict
from tokenledger.projections.gc_pause import gc_paused
from tokenledger.projections.projector import PROJECTIONS, Projection, Projector, projection_tables
from tokenledger.store import EventStore, RecordedEvent
from tokenledger.store.backend import WRITE_OPTION, Shadow, WriteStrategy
from tokenledger.store.backends import backend_for
from tokenledger.store.chain import ChainVerifier
from tokenledger.store.logtree import Node as TreeNode
from tokenledger.store.logtree import (
    TreeBuilder,
    entry_bytes,
    first_mismatch,
    leaf_hash,
    stored_nodes,
)
from tokenledger.store.logtree import add_nodes as add_tree_nodes
from tokenledger.store.logtree import replace_nodes as replace_tree_nodes
from tokenledger.store.mapper import decode_event
from tokenledger.store.schema import events

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "CheckReport",
    "Difference",
    "Progress",
    "RebuildReport",
    "build_into",
    "check",
    "rebuild",
]

#: Called with (events folded so far, events to fold in all).
Progress = Callable[[int, int], None]

DEFAULT_BATCH_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class RebuildReport:
    events: int
    position: int
    seconds: float


@dataclass(frozen=True, slots=True)
class Difference:
    """One row that differs: ``live`` or ``rebuilt`` is None when the row is missing there."""

    table: str
    key: tuple[Any, ...]
    live: tuple[Any, ...] | None
    rebuilt: tuple[Any, ...] | None


@dataclass(frozen=True, slots=True)
class CheckReport:
    events: int
    position: int
    seconds: float
    differences: list[Difference] = field(default_factory=list)
    #: True when more differences existed than were collected.
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return not self.differences


def rebuild(
    store: EventStore,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    projections: Sequence[Projection] = PROJECTIONS,
) -> RebuildReport:
    """Rebuild every projection from position 1 and swap the result in atomically."""
    started = time.perf_counter()
    chain = _chain_verifier()
    tree = _TreeNodes()
    with _shadow(store) as shadow:
        folded = _fold_into_shadow(store, shadow, batch_size, progress, projections, chain, tree)
        shadow.finish(projection_tables(projections))
        with _locked(shadow.connection):
            folded += _catch_up(store, shadow, projections, chain, tree)
            position = store.head().position
            shadow.swap_in(projection_tables(projections))
            with _untranslated(shadow.connection) as connection:
                replace_tree_nodes(connection, tree.sorted())
    return RebuildReport(events=folded, position=position, seconds=time.perf_counter() - started)


def check(
    store: EventStore,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    limit: int = 100,
    projections: Sequence[Projection] = PROJECTIONS,
) -> CheckReport:
    """Rebuild beside the live tables and report every row that differs (up to ``limit``)."""
    started = time.perf_counter()
    chain = _chain_verifier()
    tree = _TreeNodes()
    with _shadow(store) as shadow:
        folded = _fold_into_shadow(store, shadow, batch_size, progress, projections, chain, tree)
        with _locked(shadow.connection), store.engine.connect() as live:
            folded += _catch_up(store, shadow, projections, chain, tree)
            position = store.head().position
            differences, truncated = _compare(
                shadow.connection, live, projection_tables(projections), limit
            )
            if len(differences) < limit:
                mismatch = _tree_difference(live, tree)
                if mismatch is not None:
                    differences.append(mismatch)
            else:
                truncated = True
    return CheckReport(
        events=folded,
        position=position,
        seconds=time.perf_counter() - started,
        differences=differences,
        truncated=truncated,
    )


def build_into(
    store: EventStore,
    target: EventStore,
    *,
    until_position: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> RebuildReport:
    """Copy the log up to ``until_position`` into ``target`` and build its projections there.

    The target becomes a ledger as it was then: its events keep their hashes, so
    its chain verifies. A target that already holds a prefix of this log (an
    interrupted earlier run) is continued; any other non-empty target is refused.
    The chain is checked from position 1 up to the bound as the log is read (the
    prefix the target holds included: it is read again, not copied), so a broken
    chain stops the copy at the page before the break.
    """
    started = time.perf_counter()
    head = target.head()
    if head.position > until_position:
        raise Conflict(f"the target already holds {head.position} events, past {until_position}")
    if head.position:
        mine = next(store.read_all(from_position=head.position, until_position=head.position), None)
        if mine is None or mine.hash != head.hash:
            raise Conflict("the target holds another ledger's events: give an empty database")
    total = until_position - head.position
    folded = 0
    projector = Projector()
    tree = _TreeNodes()
    verified = store.read_verified(
        _chain_verifier(), until_position=until_position, batch_size=batch_size
    )
    # The target's tree is built from position 1: the prefix it holds is read again.
    records = (record for record in tree.fed(verified) if record.position > head.position)
    written = None  # the target's nodes are replaced once, then only added to
    for page in _pages(records, batch_size):
        with gc_paused(), target.engine.begin() as connection:
            connection.execute(events.insert(), [msgspec.structs.asdict(r) for r in page])
            if written is None:
                replace_tree_nodes(connection, tree.nodes)
            elif len(tree.nodes) > written:
                add_tree_nodes(connection, tree.nodes[written:])
            written = len(tree.nodes)
            pairs = [(r, decode_event(r)) for r in page]
            projector.apply(connection, pairs, strategy=WriteStrategy.BATCHED)
        folded += len(page)
        if progress:
            progress(folded, total)
    return RebuildReport(
        events=folded, position=until_position, seconds=time.perf_counter() - started
    )


# -- the shadow tables -----------------------------------------------------------------


def _compare(
    shadow: Connection, live: Connection, tables: Sequence[sa.Table], limit: int
) -> tuple[list[Difference], bool]:
    differences: list[Difference] = []
    for table in tables:
        query = sa.select(table).order_by(*table.primary_key.columns)
        rows = _merge_differences(table, live.execute(query), shadow.execute(query))
        for difference in rows:
            if len(differences) >= limit:
                return differences, True
            differences.append(difference)
    return differences, False


def _merge_differences(
    table: sa.Table, live: Iterator[Any], rebuilt: Iterator[Any]
) -> Iterator[Difference]:
    """Walk two key-ordered row streams together, yielding the rows not alike in both."""
    columns = list(table.columns)
    key_index = [columns.index(c) for c in table.primary_key.columns]

    def key_of(row: Any) -> tuple[Any, ...]:
        return tuple(row[i] for i in key_index)

    left, right = next(live, None), next(rebuilt, None)
    while left is not None or right is not None:
        if right is None or (left is not None and key_of(left) < key_of(right)):
            assert left is not None
            yield Difference(str(table.name), key_of(left), tuple(left), None)
            left = next(live, None)
        elif left is None or key_of(right) < key_of(left):
            yield Difference(str(table.name), key_of(right), None, tuple(right))
            right = next(rebuilt, None)
        else:
            if tuple(left) != tuple(right):
                yield Difference(str(table.name), key_of(left), tuple(left), tuple(right))
            left, right = next(live, None), next(rebuilt, None)


@contextmanager
def _shadow(store: EventStore) -> Iterator[Shadow]:
    """A connection writing to an empty shadow location; the shadow is removed afterwards.

    One rebuild at a time: a second one would discard the first one's shadow.
    """
    with (
        store.engine.connect() as connection,
        store.backend.shadow(connection, projection_tables()) as shadow,
    ):
        yield shadow


@contextmanager
def _locked(connection: Connection) -> Iterator[None]:
    """One transaction holding the ledger's write lock (no event can be appended meanwhile)."""
    connection.execution_options(**{WRITE_OPTION: True})  # SQLite: BEGIN IMMEDIATE
    try:
        with connection.begin():
            backend_for(connection).write_lock(connection)
            yield
    finally:
        connection.execution_options(**{WRITE_OPTION: False})


def _chain_verifier() -> ChainVerifier:
    # The payloads are not decoded twice: ``decode_event`` reads each one and reports one
    # that is not an event (``CorruptEvent``, an integrity violation too).
    return ChainVerifier(check_payload=False)


def _fold_into_shadow(
    store: EventStore,
    shadow: Shadow,
    batch_size: int,
    progress: Progress | None,
    projections: Sequence[Projection],
    chain: ChainVerifier,
    tree: _TreeNodes,
) -> int:
    total = store.head().position
    folded = 0
    projector = Projector(projections)
    verified = tree.fed(store.read_verified(chain, batch_size=batch_size))
    for page in _pages(verified, batch_size):
        with gc_paused(), shadow.connection.begin():
            pairs = [(r, decode_event(r)) for r in page]
            projector.apply_in_bulk(shadow.connection, pairs)
        folded += len(page)
        if progress:
            progress(folded, max(total, folded))
    return folded


def _catch_up(
    store: EventStore,
    shadow: Shadow,
    projections: Sequence[Projection],
    chain: ChainVerifier,
    tree: _TreeNodes,
) -> int:
    """Fold what was appended since the first pass (called under the write lock). That pass
    folded exactly the events ``chain`` verified, so reading on from where the chain stands
    both continues the fold and keeps the chain checked up to the head."""
    projector = Projector(projections)
    records = list(tree.fed(store.read_verified(chain)))
    projector.apply(shadow.connection, [(r, decode_event(r)) for r in records])
    return len(records)


def _pages(records: Iterator[RecordedEvent], size: int) -> Iterator[list[RecordedEvent]]:
    page: list[RecordedEvent] = []
    for record in records:
        page.append(record)
        if len(page) >= size:
            yield page
            page = []
    if page:
        yield page


# -- the log's Merkle tree -------------------------------------------------------------
#
# The tree's stored nodes (``store.logtree``) are rebuilt in the same pass over the log as
# the projections: each verified event's leaf is folded in, and the nodes (about one per 15
# events) are kept in memory and written under the write lock, replacing the table's rows.


class _TreeNodes:
    def __init__(self) -> None:
        self.builder = TreeBuilder()
        self.nodes: list[TreeNode] = []

    def fed(self, records: Iterator[RecordedEvent]) -> Iterator[RecordedEvent]:
        for record in records:
            self.nodes.extend(self.builder.append(leaf_hash(entry_bytes(record))))
            yield record

    def sorted(self) -> list[TreeNode]:
        return sorted(self.nodes, key=lambda node: node[:2])


@contextmanager
def _untranslated(connection: Connection) -> Iterator[Connection]:
    """The shadow's connection (and its transaction, which holds the lock) writing to the live
    tables for a while: the tree is not a projection and has no shadow copy."""
    translated = connection.get_execution_options().get("schema_translate_map")
    connection.execution_options(schema_translate_map=None)
    try:
        yield connection
    finally:
        connection.execution_options(schema_translate_map=translated)


def _tree_difference(connection: Connection, tree: _TreeNodes) -> Difference | None:
    """The first stored node that is not what the events make it, as a row difference."""
    mismatch = first_mismatch(stored_nodes(connection), tree.sorted())
    if mismatch is None:
        return None
    key = (mismatch.level, mismatch.index)
    stored = {n[:2]: n[2] for n in stored_nodes(connection)}
    expected = {n[:2]: n[2] for n in tree.nodes}
    return Difference(
        "merkle_nodes",
        key,
        (stored[key].hex(),) if key in stored else None,
        (expected[key].hex(),) if key in expected else None,
    )
