"""The log's Merkle tree (RFC 9162) as stored: a few strata of node hashes beside the events.

The leaves are the events' canonical bytes (``canonical_envelope``), leaf *i* being the event
at position *i + 1*. ``merkle_nodes`` keeps the hash of every complete aligned subtree at the
levels that are multiples of ``STRATUM`` (4) from 4 up: one node per 16 leaves, one per 256,
one per 4096 and so on, about one row per 15 events. Everything else is folded on demand:

* a subtree below level 4 from its at most 15 events, read back and hashed;
* a subtree between two strata from the at most 8 stored nodes of the stratum below.

So a proof needs O(log n) stored nodes plus at most two blocks of 16 events (its leaf's and
the tree's right edge); ``StoredTree.prepare`` reads them with one statement for the nodes and
one for the events, sent together (one round trip on PostgreSQL). The append
writes, in its transaction and under the write lock, the nodes its events complete
(``extend``); ``TreeBuilder`` computes the same nodes from a stream of events, for the
migration that fills the table, ``replay`` (which rebuilds it) and the checks comparing it.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tokenledger.store.backends import backend_for
from tokenledger.store.chain import record_envelope
from tokenledger.store.driver import DriverStatement
from tokenledger.store.records import Head, RecordedEvent
from tokenledger.store.schema import events

__all__ = [
    "STRATUM",
    "NodeMismatch",
    "StoredTree",
    "TreeBuilder",
    "add_nodes",
    "entry_bytes",
    "extend",
    "first_mismatch",
    "is_stored_level",
    "leaf_hash",
    "merkle_nodes",
    "node_hash",
    "replace_nodes",
    "stored_nodes",
]

#: Stored levels are the multiples of this, from this up (16, 256, 4096 ... leaves).
STRATUM = 4

#: Not on the schema's ``metadata``: every table there but the log's is a projection's, and
#: the tree is the log's own (written by the append, rebuilt beside the projections).
tree_metadata = sa.MetaData()

merkle_nodes = sa.Table(
    "merkle_nodes",
    tree_metadata,
    sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("index", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
)

_LEVEL = merkle_nodes.c["level"]
_INDEX = merkle_nodes.c["index"]
_HASH = merkle_nodes.c["hash"]

#: (level, index, hash) of one complete aligned subtree.
Node = tuple[int, int, bytes]


# RFC 9162 §2.1.1's two hashes, as ``logproof`` (the verifier) has them. Written out here
# rather than imported: every command opens the event store, and the verifier brings in
# ``cryptography``, which a command that signs nothing should not pay to import.
# ``tests/test_log_tree.py`` holds them to ``logproof``'s.


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


#: The events' columns in ``RecordedEvent``'s order (a row builds one).
_EVENT_COLUMNS = tuple(events.c[name] for name in RecordedEvent.__struct_fields__)


def _record(row: Any) -> RecordedEvent:
    return RecordedEvent(*row)


def is_stored_level(level: int) -> bool:
    return level >= STRATUM and level % STRATUM == 0


def entry_bytes(record: RecordedEvent) -> bytes:
    """The leaf's bytes: exactly what the hash chain hashes for this event."""
    return record_envelope(record)


#: Slots of the fixed-shape reads below: a read asks for at most this many ranges, and a
#: slot left unused asks for an empty one.
_EVENT_RANGES = 2
_NODE_RANGES = 8


def _events_in_ranges(slots: int) -> DriverStatement:
    """The events of ``slots`` ranges of positions: ``eafterK < position <= euptoK``."""
    return DriverStatement(
        sa.select(*_EVENT_COLUMNS).where(
            sa.or_(
                *(
                    sa.and_(
                        events.c.position > sa.bindparam(f"eafter{k}"),
                        events.c.position <= sa.bindparam(f"eupto{k}"),
                    )
                    for k in range(slots)
                )
            )
        )
    )


def _nodes_in_ranges(slots: int) -> DriverStatement:
    """The nodes of ``slots`` ranges: ``level = levelK AND firstK <= index < endK``."""
    return DriverStatement(
        sa.select(_LEVEL, _INDEX, _HASH).where(
            sa.or_(
                *(
                    sa.and_(
                        sa.bindparam(f"level{k}") == _LEVEL,
                        sa.bindparam(f"first{k}") <= _INDEX,
                        sa.bindparam(f"end{k}") > _INDEX,
                    )
                    for k in range(slots)
                )
            )
        )
    )


# The reads of a proof have a fixed shape, compiled once and run on the driver's cursor: a
# proof needs its nodes in a few runs of 16 siblings and its events in at most two blocks
# of 16 (its leaf's and the tree's right edge), and a statement built anew for each proof
# (an IN list of its own length) costs more to build and plan than to run.
_EVENTS_IN_RANGES = _events_in_ranges(_EVENT_RANGES)
_NODES_IN_RANGES = _nodes_in_ranges(_NODE_RANGES)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _event_params(blocks: Sequence[int]) -> dict[str, int]:
    """Each of ``blocks`` (block b: positions 16b + 1 .. 16b + 16) in a slot."""
    params = {}
    for k in range(_EVENT_RANGES):
        block = blocks[k] if k < len(blocks) else None
        params[f"eafter{k}"] = 0 if block is None else block * _BLOCK
        params[f"eupto{k}"] = 0 if block is None else (block + 1) * _BLOCK
    return params


def _node_params(groups: Sequence[tuple[int, int]]) -> dict[str, int]:
    """Each of ``groups`` ((level, g): that level's indexes 16g .. 16g + 15) in a slot."""
    params = {}
    for k in range(_NODE_RANGES):
        level, group = groups[k] if k < len(groups) else (-1, 0)
        params[f"level{k}"], params[f"first{k}"] = level, group * _BLOCK
        params[f"end{k}"] = (group + 1) * _BLOCK
    return params


def _fold(hashes: Sequence[bytes]) -> bytes:
    """The root of a complete tree over ``hashes`` (a power of two of them)."""
    level = list(hashes)
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


class TreeMissing(LookupError):
    """A node or event the stored tree needs is not there (the table is incomplete)."""


class StoredTree:
    """Answers ``subtree(start, end)`` for ``store.merkle`` from the stored strata and events.

    ``prepare`` runs the proof's algorithm once with stand-in hashes to learn every subtree
    it asks for (the algorithms never branch on a hash), then reads what those need in two
    queries; the real run is then answered from memory.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._nodes: dict[tuple[int, int], bytes] = {}
        self._records: dict[int, RecordedEvent] = {}
        self._leaves: dict[int, bytes] = {}

    def prepare(self, *plans: Iterable[tuple[int, int]], positions: Iterable[int] = ()) -> None:
        """Read what the subtrees of ``plans`` need, and the events at ``positions``
        (``record``): whole blocks of 16 events and runs of 16 nodes, all sent at once (one
        round trip where the backend has pipelines)."""
        blocks = {(position - 1) // _BLOCK for position in positions}
        groups: set[tuple[int, int]] = set()
        for plan in plans:
            for start, end in plan:
                level = (end - start).bit_length() - 1
                if level < STRATUM:
                    blocks.add(start // _BLOCK)
                elif is_stored_level(level):
                    groups.add((level, (start >> level) // _BLOCK))
                else:
                    below = level - level % STRATUM
                    # At most 8 nodes of the stratum below, all children of one node above.
                    groups.add((below, (start >> below) // _BLOCK))
        connection = self.connection
        with backend_for(connection).pipeline(connection):
            node_reads = [
                _NODES_IN_RANGES.all_later(connection, _node_params(chunk))
                for chunk in _chunks(sorted(groups), _NODE_RANGES)
            ]
            event_reads = [
                _EVENTS_IN_RANGES.all_later(connection, _event_params(chunk))
                for chunk in _chunks(sorted(blocks), _EVENT_RANGES)
            ]
            for read in node_reads:
                self._nodes.update(((level, index), bytes(h)) for level, index, h in read())
            for read in event_reads:
                for row in read():
                    record = _record(row)
                    self._records[record.position] = record
                    self._leaves[record.position] = leaf_hash(entry_bytes(record))

    def record(self, position: int) -> RecordedEvent:
        """The event at ``position``, read by ``prepare``."""
        try:
            return self._records[position]
        except KeyError:
            raise TreeMissing(f"the event at position {position} is missing") from None

    def subtree(self, start: int, end: int) -> bytes:
        level = (end - start).bit_length() - 1
        if level < STRATUM:
            return _fold([self._leaf(p) for p in range(start + 1, end + 1)])
        if is_stored_level(level):
            return self._node(level, start >> level)
        below = level - level % STRATUM
        return _fold([self._node(below, i) for i in range(start >> below, end >> below)])

    def _leaf(self, position: int) -> bytes:
        try:
            return self._leaves[position]
        except KeyError:
            raise TreeMissing(f"the event at position {position} is missing") from None

    def _node(self, level: int, index: int) -> bytes:
        try:
            return self._nodes[(level, index)]
        except KeyError:
            raise TreeMissing(
                f"the tree's node at level {level}, index {index} is missing"
            ) from None

    # -- what the proofs ask for ----------------------------------------------------------

    def root(self, size: int) -> bytes:
        from tokenledger.store import merkle

        self.prepare(_plan(lambda s: merkle.root(size, s)))
        return merkle.root(size, self.subtree)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """The proof of leaf ``index``; its event is then ``record(index + 1)``."""
        from tokenledger.store import merkle

        self.prepare(_plan(lambda s: merkle.inclusion_proof(index, size, s)), positions=[index + 1])
        return merkle.inclusion_proof(index, size, self.subtree)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        from tokenledger.store import merkle

        self.prepare(_plan(lambda s: merkle.consistency_proof(old_size, new_size, s)))
        return merkle.consistency_proof(old_size, new_size, self.subtree)


_STAND_IN = b"\x00" * 32


def _plan(run: object) -> list[tuple[int, int]]:
    asked: list[tuple[int, int]] = []

    def record(start: int, end: int) -> bytes:
        asked.append((start, end))
        return _STAND_IN

    run(record)  # type: ignore[operator]
    return asked


# -- building the strata -----------------------------------------------------------------


class TreeBuilder:
    """Folds leaves in log order and yields the stored-level nodes each completes.

    Holds one pending hash per level (O(log n) memory), like a compact range."""

    def __init__(self, size: int = 0, pending: Sequence[bytes | None] = ()) -> None:
        self.size = size
        self._pending: list[bytes | None] = list(pending)

    def append(self, leaf: bytes) -> list[Node]:
        index = self.size
        self.size += 1
        completed: list[Node] = []
        level, current = 0, leaf
        while index & 1:
            left = self._pending[level]
            assert left is not None
            self._pending[level] = None
            current = node_hash(left, current)
            level, index = level + 1, index >> 1
            if is_stored_level(level):
                completed.append((level, index, current))
        if level == len(self._pending):
            self._pending.append(None)
        self._pending[level] = current
        return completed

    def extend(self, leaves: Iterable[bytes]) -> list[Node]:
        nodes: list[Node] = []
        for leaf in leaves:
            nodes.extend(self.append(leaf))
        return nodes


# -- the append ---------------------------------------------------------------------------

#: Per engine: the leaf hashes of the last, incomplete block of 16, tagged with the head they
#: end at. Used only when the head read under the write lock is that head, so another
#: process's appends (or a rolled-back transaction) make it read the block back instead.
_BLOCKS: weakref.WeakKeyDictionary[Engine, tuple[Head, list[bytes]]] = weakref.WeakKeyDictionary()

_BLOCK = 1 << STRATUM

# The append's statements run on the driver's cursor (``store.driver``): inside a command's
# PostgreSQL pipeline a read through SQLAlchemy's result layer would find no rows, while the
# driver's fetch syncs the pipeline and answers.
_EVENTS_BETWEEN = DriverStatement(
    sa.select(*_EVENT_COLUMNS)
    .where(events.c.position > sa.bindparam("after"), events.c.position <= sa.bindparam("upto"))
    .order_by(events.c.position),
    prepare=False,
)
_NODES_BETWEEN = DriverStatement(
    sa.select(_INDEX, _HASH)
    .where(
        sa.bindparam("level") == _LEVEL,
        sa.bindparam("first") <= _INDEX,
        sa.bindparam("end") > _INDEX,
    )
    .order_by(_INDEX),
    prepare=False,
)
_INSERT_NODE = DriverStatement(
    merkle_nodes.insert().values(
        level=sa.bindparam("level"), index=sa.bindparam("index"), hash=sa.bindparam("hash")
    ),
    column_keys=("level", "index", "hash"),
)


def extend(connection: Connection, before: Head, after: Head, leaves: Sequence[bytes]) -> None:
    """Write the stored-level nodes that the leaves appended after ``before`` complete.

    Called by the append, in its transaction, under the write lock: ``leaves`` are the leaf
    hashes of positions ``before.position + 1 .. after.position``."""
    start = before.position
    engine = connection.engine
    cached = _BLOCKS.get(engine)
    block_start = start - start % _BLOCK
    if cached is not None and cached[0] == before and len(cached[1]) == start - block_start:
        block = list(cached[1])
    elif start == block_start:
        block = []
    else:
        rows = _EVENTS_BETWEEN.all(connection, {"after": block_start, "upto": start})
        block = [leaf_hash(entry_bytes(_record(row))) for row in rows]
    new_nodes: dict[tuple[int, int], bytes] = {}
    position = start
    for leaf in leaves:
        block.append(leaf)
        position += 1
        if position % _BLOCK == 0:
            new_nodes[(STRATUM, position // _BLOCK - 1)] = _fold(block)
            block = []
            _complete_upper(connection, position, new_nodes)
    _BLOCKS[engine] = (after, block)
    if new_nodes:
        _INSERT_NODE.executemany(
            connection,
            [{"level": lv, "index": ix, "hash": h} for (lv, ix), h in new_nodes.items()],
        )


def _complete_upper(
    connection: Connection, size: int, new_nodes: dict[tuple[int, int], bytes]
) -> None:
    """Once ``size`` leaves are in, the nodes of levels 8, 12 ... whose last leaf is its last."""
    level = 2 * STRATUM
    while size % (1 << level) == 0:
        below = level - STRATUM
        end = size >> below
        first = end - _BLOCK
        stored = {
            index: bytes(hash_)
            for index, hash_ in _NODES_BETWEEN.all(
                connection, {"level": below, "first": first, "end": end}
            )
        }
        children = [new_nodes.get((below, i)) or stored[i] for i in range(first, end)]
        new_nodes[(level, (size >> level) - 1)] = _fold(children)
        level += STRATUM


# -- rebuilding and checking --------------------------------------------------------------


def replace_nodes(connection: Connection, nodes: Iterable[Node]) -> None:
    """Make ``nodes`` the table's rows (in the caller's transaction)."""
    connection.execute(merkle_nodes.delete())
    add_nodes(connection, nodes)


def add_nodes(connection: Connection, nodes: Iterable[Node]) -> None:
    batch: list[dict[str, object]] = []
    for level, index, hash_ in nodes:
        batch.append({"level": level, "index": index, "hash": hash_})
        if len(batch) >= 10_000:
            connection.execute(merkle_nodes.insert(), batch)
            batch = []
    if batch:
        connection.execute(merkle_nodes.insert(), batch)


def stored_nodes(connection: Connection) -> Iterator[Node]:
    """Every stored node, in (level, index) order."""
    result = connection.execute(sa.select(_LEVEL, _INDEX, _HASH).order_by(_LEVEL, _INDEX))
    for level, index, hash_ in result:
        yield level, index, bytes(hash_) if hash_ is not None else b""


@dataclass(frozen=True, slots=True)
class NodeMismatch:
    """The first stored node that is not what the events make it (or is missing, or extra)."""

    level: int
    index: int
    problem: str

    def __str__(self) -> str:
        return f"tree node at level {self.level}, index {self.index}: {self.problem}"


def first_mismatch(stored: Iterable[Node], expected: Iterable[Node]) -> NodeMismatch | None:
    """Compare two (level, index)-ordered node streams; the first difference, if any."""
    stored_iter, expected_iter = iter(stored), iter(expected)
    left, right = next(stored_iter, None), next(expected_iter, None)
    while left is not None or right is not None:
        if right is None or (left is not None and left[:2] < right[:2]):
            assert left is not None
            return NodeMismatch(left[0], left[1], "stored but no such subtree of the log exists")
        if left is None or right[:2] < left[:2]:
            return NodeMismatch(right[0], right[1], "missing from the stored tree")
        if left[2] != right[2]:
            return NodeMismatch(
                left[0], left[1], "its stored hash does not match the events it covers"
            )
        left, right = next(stored_iter, None), next(expected_iter, None)
    return None
