"""Proof generation (store/merkle.py) against published vectors and the RFC's own definitions.

The reference here is RFC 9162 §2.1 read literally: MTH, PATH and SUBPROOF as recursive
functions over the list of leaves, and a verifier that walks the same recursion. Neither shares
code with store/merkle.py (aligned subtrees, iterative) or logproof.py (the RFC's bit-walking
verifier), so all three agreeing on every proof of every tree up to 70 leaves is evidence that
each of them is the RFC's algorithm.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenledger import logproof
from tokenledger.store.merkle import (
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    range_hash,
    root,
)

# The RFC 6962 reference tree used by the CT implementations: transparency-dev/merkle,
# proof/verify_test.go (`leaves`, `roots`, `inclusionProofs`, `consistencyProofs`), the same
# values as google/certificate-transparency's C++ and Go merkle tree tests.
REFERENCE_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
# REFERENCE_ROOTS[n - 1] is the root of the first n leaves.
REFERENCE_ROOTS = [
    bytes.fromhex(h)
    for h in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]


def _hashes(*hexes: str) -> list[bytes]:
    return [bytes.fromhex(h) for h in hexes]


# (leaf index, tree size, proof); the Go test numbers leaves from 1, these from 0.
REFERENCE_INCLUSION_PROOFS = [
    (0, 1, []),
    (
        0,
        8,
        _hashes(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        5,
        8,
        _hashes(
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (2, 3, _hashes("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (
        1,
        5,
        _hashes(
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
]

# (old size, new size, proof)
REFERENCE_CONSISTENCY_PROOFS = [
    (1, 1, []),
    (
        1,
        8,
        _hashes(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        6,
        8,
        _hashes(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (
        2,
        5,
        _hashes(
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
    (
        6,
        7,
        _hashes(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
]


# --- RFC 9162 §2.1, read literally ------------------------------------------------------


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def split_point(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(entries: list[bytes]) -> bytes:
    """MTH(D[n]) over the entries themselves (not their leaf hashes)."""
    if not entries:
        return sha256(b"")
    if len(entries) == 1:
        return sha256(b"\x00" + entries[0])
    k = split_point(len(entries))
    return sha256(b"\x01" + mth(entries[:k]) + mth(entries[k:]))


def path(m: int, entries: list[bytes]) -> list[bytes]:
    if len(entries) == 1:
        return []
    k = split_point(len(entries))
    if m < k:
        return [*path(m, entries[:k]), mth(entries[k:])]
    return [*path(m - k, entries[k:]), mth(entries[:k])]


def subproof(m: int, entries: list[bytes], whole: bool) -> list[bytes]:
    n = len(entries)
    if m == n:
        return [] if whole else [mth(entries)]
    k = split_point(n)
    if m <= k:
        return [*subproof(m, entries[:k], whole), mth(entries[k:])]
    return [*subproof(m - k, entries[k:], False), mth(entries[:k])]


def root_from_path(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes:
    """Undo PATH's recursion: the root the proof claims for ``leaf`` at ``index``."""
    if size == 1:
        assert proof == [], "proof longer than the tree is deep"
        return leaf
    assert proof, "proof shorter than the tree is deep"
    k = split_point(size)
    *rest, sibling = proof
    if index < k:
        return sha256(b"\x01" + root_from_path(index, k, leaf, rest) + sibling)
    return sha256(b"\x01" + sibling + root_from_path(index - k, size - k, leaf, rest))


def roots_from_subproof(
    m: int, n: int, proof: list[bytes], whole: bool, old_root: bytes
) -> tuple[bytes, bytes]:
    """Undo SUBPROOF's recursion: (MTH(D[0:m]), MTH(D[0:n])) of the subtree, from the proof."""
    if m == n:
        if whole:
            assert proof == [], "proof longer than SUBPROOF"
            return old_root, old_root
        assert len(proof) == 1, "proof length differs from SUBPROOF"
        return proof[0], proof[0]
    assert proof, "proof shorter than SUBPROOF"
    k = split_point(n)
    *rest, last = proof
    if m <= k:
        old, new = roots_from_subproof(m, k, rest, whole, old_root)
        return old, sha256(b"\x01" + new + last)
    old, new = roots_from_subproof(m - k, n - k, rest, False, old_root)
    return sha256(b"\x01" + last + old), sha256(b"\x01" + last + new)


def independently_verify_inclusion(
    entry: bytes, index: int, size: int, proof: list[bytes], expected_root: bytes
) -> None:
    assert root_from_path(index, size, sha256(b"\x00" + entry), proof) == expected_root


def independently_verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> None:
    if old_size in (0, new_size):
        assert proof == []
        return
    assert roots_from_subproof(old_size, new_size, proof, True, old_root) == (old_root, new_root)


def entries_of(size: int) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(size)]


def tree_of(entries: list[bytes]) -> MemoryTree:
    return MemoryTree.of([logproof.leaf_hash(e) for e in entries])


# --- published vectors ------------------------------------------------------------------


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_of_the_reference_tree_are_the_published_ones(size: int) -> None:
    tree = tree_of(REFERENCE_LEAVES)
    assert tree.root(size) == REFERENCE_ROOTS[size - 1]
    assert root(size, tree.subtree) == REFERENCE_ROOTS[size - 1]
    assert mth(REFERENCE_LEAVES[:size]) == REFERENCE_ROOTS[size - 1]


def test_the_empty_tree_has_the_hash_of_nothing_as_root() -> None:
    assert MemoryTree().root() == bytes.fromhex(
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


@pytest.mark.parametrize(("index", "size", "expected"), REFERENCE_INCLUSION_PROOFS)
def test_inclusion_proofs_of_the_reference_tree_are_the_published_ones(
    index: int, size: int, expected: list[bytes]
) -> None:
    assert tree_of(REFERENCE_LEAVES).inclusion_proof(index, size) == expected


@pytest.mark.parametrize(("old", "new", "expected"), REFERENCE_CONSISTENCY_PROOFS)
def test_consistency_proofs_of_the_reference_tree_are_the_published_ones(
    old: int, new: int, expected: list[bytes]
) -> None:
    assert tree_of(REFERENCE_LEAVES).consistency_proof(old, new) == expected


# --- every proof of every small tree ----------------------------------------------------

SIZES = range(1, 71)


@pytest.mark.parametrize("size", SIZES)
def test_every_inclusion_proof_is_the_rfcs_and_verifies(size: int) -> None:
    entries = entries_of(size)
    tree = tree_of(entries)
    tree_root = tree.root()
    assert tree_root == mth(entries)
    for index in range(size):
        proof = tree.inclusion_proof(index)
        assert proof == path(index, entries)
        independently_verify_inclusion(entries[index], index, size, proof, tree_root)
        logproof.verify_inclusion(logproof.leaf_hash(entries[index]), index, size, proof, tree_root)


@pytest.mark.parametrize("size", SIZES)
def test_every_consistency_proof_is_the_rfcs_and_verifies(size: int) -> None:
    entries = entries_of(size)
    tree = tree_of(entries)
    new_root = tree.root()
    for old_size in range(size + 1):
        proof = tree.consistency_proof(old_size)
        expected = [] if old_size == 0 else subproof(old_size, entries, True)
        assert proof == expected
        old_root = tree.root(old_size)
        assert old_root == mth(entries[:old_size])
        independently_verify_consistency(old_size, size, old_root, new_root, proof)
        logproof.verify_consistency(old_size, size, old_root, new_root, proof)


def test_proofs_for_an_earlier_size_are_those_of_the_tree_at_that_size() -> None:
    entries = entries_of(40)
    tree = tree_of(entries)
    for size in (1, 13, 32, 39):
        smaller = tree_of(entries[:size])
        assert tree.root(size) == smaller.root()
        for index in range(size):
            assert tree.inclusion_proof(index, size) == smaller.inclusion_proof(index)
        for old_size in range(size + 1):
            assert tree.consistency_proof(old_size, size) == smaller.consistency_proof(old_size)


# --- what storage is asked for ----------------------------------------------------------


class CountingSubtrees:
    """A subtree callback that refuses anything but a complete aligned subtree, and counts."""

    def __init__(self, tree: MemoryTree) -> None:
        self.tree = tree
        self.calls = 0

    def __call__(self, start: int, end: int) -> bytes:
        width = end - start
        assert width > 0
        assert width & (width - 1) == 0, f"[{start}, {end}) is not a power of two wide"
        assert start % width == 0, f"[{start}, {end}) is not aligned"
        assert end <= self.tree.size
        self.calls += 1
        return self.tree.subtree(start, end)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 8, 9, 100, 1000, 1023, 1024, 1025, 4097])
def test_proofs_ask_storage_for_logarithmically_many_aligned_subtrees(size: int) -> None:
    tree = tree_of(entries_of(size))
    bound = 2 * size.bit_length() + 2
    for index in {0, size // 3, size // 2, size - 1}:
        subtrees = CountingSubtrees(tree)
        inclusion_proof(index, size, subtrees)
        assert subtrees.calls <= bound
    for old_size in {1, size // 3, size // 2, size - 1}:
        subtrees = CountingSubtrees(tree)
        consistency_proof(old_size, size, subtrees)
        assert subtrees.calls <= bound
    subtrees = CountingSubtrees(tree)
    root(size, subtrees)
    assert subtrees.calls == bin(size).count("1")


def test_a_range_hash_folds_aligned_subtrees_into_the_mth_of_the_range() -> None:
    entries = entries_of(64)
    tree = tree_of(entries)
    for start, end in [(0, 64), (32, 63), (48, 61), (40, 41), (8, 15)]:
        assert range_hash(start, end, tree.subtree) == mth(entries[start:end])


# --- appending --------------------------------------------------------------------------


def test_each_append_returns_exactly_the_subtrees_it_completed() -> None:
    entries = entries_of(70)
    tree = MemoryTree()
    written: dict[tuple[int, int], bytes] = {}
    for number, entry in enumerate(entries, start=1):
        completed = tree.append(logproof.leaf_hash(entry))
        assert completed[0] == (0, number - 1, logproof.leaf_hash(entry))
        for level, index, digest in completed:
            assert (level, index) not in written, "a node was completed twice"
            width = 1 << level
            assert (index + 1) * width == number, "a node completed before its last leaf"
            assert digest == mth(entries[index * width : (index + 1) * width])
            written[(level, index)] = digest
        # Every complete aligned subtree of the tree so far has been handed out.
        expected = {
            (level, index)
            for level in range(number.bit_length())
            for index in range(number >> level)
        }
        assert set(written) == expected


def test_appends_complete_one_node_each_on_average() -> None:
    tree = MemoryTree()
    counts = [len(tree.append(bytes(32))) for _ in range(1024)]
    assert sum(counts) == 2 * 1024 - 1
    assert max(counts) == 11


def test_a_memory_tree_refuses_what_it_cannot_answer() -> None:
    tree = tree_of(entries_of(10))
    with pytest.raises(ValueError, match="32 bytes"):
        tree.append(b"short")
    with pytest.raises(ValueError, match="not a complete aligned subtree"):
        tree.subtree(1, 3)
    with pytest.raises(ValueError, match="not a complete aligned subtree"):
        tree.subtree(0, 3)
    with pytest.raises(ValueError, match="beyond"):
        tree.subtree(8, 16)
    with pytest.raises(ValueError, match="not in a tree of 10"):
        tree.inclusion_proof(10)
    with pytest.raises(ValueError, match="not in a tree of 0"):
        tree.inclusion_proof(0, 0)
    with pytest.raises(ValueError, match="within the tree"):
        tree.root(11)
    with pytest.raises(ValueError, match="from size 5 to 4"):
        tree.consistency_proof(5, 4)
    with pytest.raises(ValueError, match="from size -1"):
        tree.consistency_proof(-1)


# --- property: random sizes -------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(data=st.data(), size=st.integers(min_value=1, max_value=3000))
def test_proofs_of_random_trees_verify_both_ways(data: st.DataObject, size: int) -> None:
    entries = entries_of(size)
    tree = tree_of(entries)
    tree_root = tree.root()
    assert tree_root == mth(entries)

    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    proof = tree.inclusion_proof(index)
    independently_verify_inclusion(entries[index], index, size, proof, tree_root)
    logproof.verify_inclusion(logproof.leaf_hash(entries[index]), index, size, proof, tree_root)

    old_size = data.draw(st.integers(min_value=0, max_value=size), label="old_size")
    old_root = tree.root(old_size)
    assert old_root == mth(entries[:old_size])
    proof = tree.consistency_proof(old_size)
    independently_verify_consistency(old_size, size, old_root, tree_root, proof)
    logproof.verify_consistency(old_size, size, old_root, tree_root, proof)
