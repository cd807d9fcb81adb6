"""Merkle tree hashes and proofs for the log (RFC 9162 §2.1), from aligned subtrees.

Everything here is written against one question storage can answer cheaply: the hash of a
*complete aligned* subtree, ``subtree(start, end)`` = MTH(D[start:end]) where ``end - start``
is a power of two and ``start`` a multiple of it. Those are the nodes a log writes once, when
their last leaf arrives, and never changes (stored node hashes, or tiles). Any other range the
RFC's definitions need, such as the right edge of a tree whose size is not a power of two, is
folded from O(log n) of them, so an inclusion or consistency proof costs O(log n) lookups
whatever the tree's size.

Verification lives in ``tokenledger.logproof`` (the standalone verifier); this module only
produces what it checks, and takes its hash functions from there so the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable

from tokenledger.logproof import EMPTY_ROOT, HASH_SIZE, node_hash

__all__ = [
    "MemoryTree",
    "Subtree",
    "consistency_proof",
    "inclusion_proof",
    "range_hash",
    "root",
]

#: ``subtree(start, end)``: MTH(D[start:end]) of a complete aligned subtree.
Subtree = Callable[[int, int], bytes]


def _split(size: int) -> int:
    """k, the largest power of two smaller than ``size`` (> 1): where MTH splits D[size]."""
    return 1 << ((size - 1).bit_length() - 1)


def range_hash(start: int, end: int, subtree: Subtree) -> bytes:
    """MTH(D[start:end]) for a range whose start is aligned to its size's highest power of two.

    Such a range is the concatenation of complete aligned subtrees of decreasing sizes (one per
    bit of ``end - start``), and MTH folds them right to left: MTH(D[n]) splits at the largest
    power of two below n, which is exactly the first of them.
    """
    if end <= start:
        raise ValueError(f"empty range [{start}, {end})")
    pieces = []
    position = start
    for bit in reversed(range((end - start).bit_length())):
        width = 1 << bit
        if (end - start) & width:
            pieces.append(subtree(position, position + width))
            position += width
    folded = pieces[-1]
    for piece in reversed(pieces[:-1]):
        folded = node_hash(piece, folded)
    return folded


def root(size: int, subtree: Subtree) -> bytes:
    """MTH(D[0:size]), the root of the tree of the first ``size`` leaves."""
    if size < 0:
        raise ValueError(f"negative tree size {size}")
    return EMPTY_ROOT if size == 0 else range_hash(0, size, subtree)


def inclusion_proof(index: int, size: int, subtree: Subtree) -> list[bytes]:
    """PATH(index, D[0:size]) (RFC 9162 §2.1.3.1), deepest sibling first."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} is not in a tree of {size} leaves")
    siblings: list[bytes] = []  # from the root down; PATH lists them from the leaf up
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            siblings.append(range_hash(start + k, end, subtree))
            end = start + k
        else:
            siblings.append(subtree(start, start + k))
            start += k
    siblings.reverse()
    return siblings


def consistency_proof(old_size: int, new_size: int, subtree: Subtree) -> list[bytes]:
    """PROOF(old_size, D[0:new_size]) (RFC 9162 §2.1.4.1); empty when there is nothing to prove."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    nodes: list[bytes] = []  # from the root down, as SUBPROOF recurses
    start, end = 0, new_size
    whole_old_tree = True  # SUBPROOF's b: D[start:old_size] is still the whole old tree
    while old_size != end:
        k = _split(end - start)
        if old_size - start <= k:
            nodes.append(range_hash(start + k, end, subtree))
            end = start + k
        else:
            nodes.append(subtree(start, start + k))
            start += k
            whole_old_tree = False
    if not whole_old_tree:
        # SUBPROOF(m, D[m], false) = {MTH(D[m])}; when b is still true the verifier holds
        # that hash already (it is the old root) and the proof leaves it out.
        nodes.append(subtree(start, end))
    nodes.reverse()
    return nodes


class MemoryTree:
    """A tree held in memory: the leaf hashes and every complete aligned subtree's hash.

    ``levels[h][i]`` is the hash of the subtree of height ``h`` covering leaves
    ``[i * 2**h, (i + 1) * 2**h)``. An append completes the leaf and each subtree it closes,
    which is what a storage layer (or a replay rebuilding one) writes.
    """

    def __init__(self) -> None:
        self.levels: list[list[bytes]] = [[]]

    @classmethod
    def of(cls, leaf_hashes: list[bytes]) -> MemoryTree:
        tree = cls()
        for leaf in leaf_hashes:
            tree.append(leaf)
        return tree

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf; return the ``(level, index, hash)`` nodes it completed, the leaf first.

        One node on average, ``log2(size) + 1`` at most.
        """
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes, not {len(leaf_hash)}")
        index = self.size
        self.levels[0].append(leaf_hash)
        completed = [(0, index, leaf_hash)]
        level, current = 0, leaf_hash
        while index & 1:  # a right child: its parent is complete now
            current = node_hash(self.levels[level][index - 1], current)
            level, index = level + 1, index >> 1
            if level == len(self.levels):
                self.levels.append([])
            self.levels[level].append(current)
            completed.append((level, index, current))
        return completed

    def subtree(self, start: int, end: int) -> bytes:
        width = end - start
        if width <= 0 or width & (width - 1) or start % width:
            raise ValueError(f"[{start}, {end}) is not a complete aligned subtree")
        if end > self.size:
            raise ValueError(f"[{start}, {end}) is beyond the tree's {self.size} leaves")
        return self.levels[width.bit_length() - 1][start // width]

    def root(self, size: int | None = None) -> bytes:
        return root(self._size(size), self.subtree)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_proof(index, self._size(size), self.subtree)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        return consistency_proof(old_size, self._size(new_size), self.subtree)

    def _size(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise ValueError(f"size {size} is not within the tree's {self.size} leaves")
        return size
