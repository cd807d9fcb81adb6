"""The standalone verifier (logproof.py): proofs, checkpoints, signed notes and its command line.

Published vectors anchor it to other implementations: the RFC 6962 reference tree's roots and
proofs (transparency-dev/merkle, proof/verify_test.go; see test_merkle.py) and the signed note
of golang.org/x/mod's sumdb/note tests (golang/mod, sumdb/note/note_test.go), whose Ed25519
signature is deterministic, so signing its text with its key must give its note byte for byte.
"""

from __future__ import annotations

import ast
import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from test_merkle import (
    REFERENCE_CONSISTENCY_PROOFS,
    REFERENCE_INCLUSION_PROOFS,
    REFERENCE_LEAVES,
    REFERENCE_ROOTS,
    entries_of,
    tree_of,
)
from tokenledger import logproof
from tokenledger.logproof import (
    EMPTY_ROOT,
    Checkpoint,
    ProofError,
    format_checkpoint,
    leaf_hash,
    open_checkpoint,
    open_note,
    sign_note,
    verifier_key,
    verify_consistency,
    verify_inclusion,
)

SOURCE = Path(logproof.__file__)

# golang/mod, sumdb/note/note_test.go (TestNewSigner, TestSign, TestOpen).
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqd"
    "ngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWL"
    "ox33WWd1RvMc+QQ=\n"
)

ORIGIN = "ledger.example/log"


def go_private_key() -> Ed25519PrivateKey:
    # A Go signer key is PRIVATE+KEY+<name>+<id>+base64(0x01 || 32-byte Ed25519 seed).
    seed = base64.b64decode(PETER_SKEY.split("+", 4)[4])
    assert seed[0] == 1
    return Ed25519PrivateKey.from_private_bytes(seed[1:])


def log_key(seed: int = 7) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


def log_vkey(seed: int = 7, name: str = ORIGIN) -> str:
    return verifier_key(name, log_key(seed).public_key())


def signed_checkpoint(size: int, root_hash: bytes, *, seed: int = 7, origin: str = ORIGIN) -> str:
    body = format_checkpoint(Checkpoint(origin, size, root_hash))
    return sign_note(body, origin, log_key(seed))


def flip(value: bytes, position: int = 0) -> bytes:
    return value[:position] + bytes([value[position] ^ 0x10]) + value[position + 1 :]


# --- the module stands alone ------------------------------------------------------------


def test_the_verifier_imports_only_the_standard_library_and_cryptography() -> None:
    tree = ast.parse(SOURCE.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a relative import"
            assert node.module is not None
            imported.add(node.module.split(".")[0])
    foreign = {name for name in imported if name not in sys.stdlib_module_names}
    assert foreign == {"cryptography"}


# --- inclusion (RFC 9162 §2.1.3.2) ------------------------------------------------------


@pytest.mark.parametrize(("index", "size", "proof"), REFERENCE_INCLUSION_PROOFS)
def test_published_inclusion_proofs_verify(index: int, size: int, proof: list[bytes]) -> None:
    leaf = leaf_hash(REFERENCE_LEAVES[index])
    verify_inclusion(leaf, index, size, proof, REFERENCE_ROOTS[size - 1])


@pytest.mark.parametrize(("index", "size", "proof"), REFERENCE_INCLUSION_PROOFS[1:])
def test_published_inclusion_proofs_refuse_every_corruption(
    index: int, size: int, proof: list[bytes]
) -> None:
    # The probes of transparency-dev/merkle's corruptInclusionProof, each with its reason.
    leaf, tree_root = leaf_hash(REFERENCE_LEAVES[index]), REFERENCE_ROOTS[size - 1]
    some_hash = bytes.fromhex("abacaba0" + "00" * 28)
    misplaced = r"does not lead to the root|too (long|short)|not in a tree"
    probes: list[tuple[int, int, bytes, list[bytes], bytes, str]] = [
        (index - 1, size, leaf, proof, tree_root, misplaced),
        (index + 1, size, leaf, proof, tree_root, misplaced),
        (index ^ 2, size, leaf, proof, tree_root, misplaced),
        (index, size * 2, leaf, proof, tree_root, misplaced),
        (index, size // 2, leaf, proof, tree_root, misplaced),
        (index, size, leaf_hash(b"WrongLeaf"), proof, tree_root, "does not lead to the root"),
        (index, size, leaf, proof, EMPTY_ROOT, "does not lead to the root"),
        (index, size, leaf, proof, some_hash, "does not lead to the root"),
        (index, size, leaf, [*proof, b""], tree_root, f"hash {len(proof)} is 0 bytes, not 32"),
        (index, size, leaf, [*proof, tree_root], tree_root, "inclusion proof too long"),
        (index, size, leaf, [b"", *proof], tree_root, "proof hash 0 is 0 bytes, not 32"),
        (index, size, leaf, [tree_root, *proof], tree_root, "inclusion proof too long"),
        (index, size, leaf, proof[:-1], tree_root, "inclusion proof too short"),
        (index, size, leaf, [proof[0], some_hash, *proof[1:]], tree_root, "too long"),
    ]
    for number in range(len(proof)):
        corrupted = list(proof)
        corrupted[number] = flip(corrupted[number])
        probes.append((index, size, leaf, corrupted, tree_root, "does not lead to the root"))
    for probe_index, probe_size, probe_leaf, probe_proof, probe_root, reason in probes:
        with pytest.raises(ProofError, match=reason):
            verify_inclusion(probe_leaf, probe_index, probe_size, probe_proof, probe_root)


@pytest.mark.parametrize(
    ("index", "size", "reason"),
    [
        (0, 0, "index 0 is not in a tree of 0 entries"),
        (1, 1, "index 1 is not in a tree of 1 entries"),
        (8, 8, "index 8 is not in a tree of 8 entries"),
        (-1, 8, "index -1 is not in a tree of 8 entries"),
        (0, 2**64, "tree size 18446744073709551616 is not a tree size"),
    ],
)
def test_an_index_outside_the_tree_is_refused(index: int, size: int, reason: str) -> None:
    with pytest.raises(ProofError, match=reason):
        verify_inclusion(leaf_hash(b""), index, size, [], REFERENCE_ROOTS[0])


def test_a_single_entry_tree_needs_an_empty_proof_and_the_leaf_as_root() -> None:
    leaf = leaf_hash(b"data")
    verify_inclusion(leaf, 0, 1, [], leaf)
    with pytest.raises(ProofError, match="too long: 1 hashes, index 0 of 1 needs 0"):
        verify_inclusion(leaf, 0, 1, [leaf], leaf)
    with pytest.raises(ProofError, match="the root hash is 0 bytes"):
        verify_inclusion(leaf, 0, 1, [], b"")
    with pytest.raises(ProofError, match="the leaf hash is 0 bytes"):
        verify_inclusion(b"", 0, 1, [], leaf)


def test_every_tampering_with_every_inclusion_proof_of_a_tree_is_refused() -> None:
    size = 13
    entries = entries_of(size)
    tree = tree_of(entries)
    tree_root = tree.root()
    for index in range(size):
        leaf, proof = leaf_hash(entries[index]), tree.inclusion_proof(index)
        for number, digest in enumerate(proof):
            for position in range(32):
                corrupted = list(proof)
                corrupted[number] = flip(digest, position)
                with pytest.raises(ProofError, match="does not lead to the root"):
                    verify_inclusion(leaf, index, size, corrupted, tree_root)
        for position in range(32):
            with pytest.raises(ProofError, match="does not lead to the root"):
                verify_inclusion(flip(leaf, position), index, size, proof, tree_root)
            with pytest.raises(ProofError, match="does not lead to the root"):
                verify_inclusion(leaf, index, size, proof, flip(tree_root, position))
        for other in range(size):
            if other != index:
                with pytest.raises(ProofError, match=r"does not lead|too long|too short"):
                    verify_inclusion(leaf, other, size, proof, tree_root)
        # A root does not commit to its tree's size (the signed checkpoint does): the proof
        # still fits a size whose path has the same shape, but no size that needs more or
        # fewer hashes.
        for other_size in range(index + 1, 40):
            if logproof.inclusion_proof_length(index, other_size) != len(proof):
                with pytest.raises(ProofError, match=r"too long|too short"):
                    verify_inclusion(leaf, index, other_size, proof, tree_root)
        with pytest.raises(ProofError, match="too short"):
            verify_inclusion(leaf, index, size, proof[:-1], tree_root)
        with pytest.raises(ProofError, match="too long"):
            verify_inclusion(leaf, index, size, [*proof, proof[-1]], tree_root)


# --- consistency (RFC 9162 §2.1.4.2) ----------------------------------------------------


@pytest.mark.parametrize(("old", "new", "proof"), REFERENCE_CONSISTENCY_PROOFS)
def test_published_consistency_proofs_verify(old: int, new: int, proof: list[bytes]) -> None:
    verify_consistency(old, new, REFERENCE_ROOTS[old - 1], REFERENCE_ROOTS[new - 1], proof)


@pytest.mark.parametrize(("old", "new", "proof"), REFERENCE_CONSISTENCY_PROOFS[1:])
def test_published_consistency_proofs_refuse_every_corruption(
    old: int, new: int, proof: list[bytes]
) -> None:
    # The probes of transparency-dev/merkle's corruptConsistencyProof.
    old_root, new_root = REFERENCE_ROOTS[old - 1], REFERENCE_ROOTS[new - 1]
    wrong = leaf_hash(b"WrongRoot")
    probes: list[tuple[int, int, bytes, bytes, list[bytes]]] = [
        (old - 1, new, old_root, new_root, proof),
        (old + 1, new, old_root, new_root, proof),
        (old ^ 2, new, old_root, new_root, proof),
        (old, new * 2, old_root, new_root, proof),
        (old, new // 2, old_root, new_root, proof),
        (old, new, wrong, new_root, proof),
        (old, new, old_root, wrong, proof),
        (old, new, new_root, old_root, proof),
        (old, new, old_root, new_root, []),
        (old, new, old_root, new_root, [*proof, old_root]),
        (old, new, old_root, new_root, [*proof, new_root]),
        (old, new, old_root, new_root, [old_root, *proof]),
        (old, new, old_root, new_root, [new_root, *proof]),
        (old, new, old_root, new_root, [proof[0], *proof]),
        (old, new, old_root, new_root, proof[:-1]),
    ]
    for number in range(len(proof)):
        corrupted = list(proof)
        corrupted[number] = flip(corrupted[number])
        probes.append((old, new, old_root, new_root, corrupted))
    for probe in probes:
        with pytest.raises(ProofError, match=r"consistency proof|larger than new size|differ"):
            verify_consistency(*probe)


@pytest.mark.parametrize(
    ("old", "new", "old_root", "new_root", "proof", "reason"),
    [
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [], None),
        (0, 5, EMPTY_ROOT, REFERENCE_ROOTS[4], [], None),
        (5, 5, REFERENCE_ROOTS[4], REFERENCE_ROOTS[4], [], None),
        (1, 0, REFERENCE_ROOTS[0], EMPTY_ROOT, [], "old size 1 is larger than new size 0"),
        (6, 5, REFERENCE_ROOTS[5], REFERENCE_ROOTS[4], [], "old size 6 is larger than new"),
        (5, 5, REFERENCE_ROOTS[4], REFERENCE_ROOTS[5], [], "the two roots differ"),
        (5, 5, REFERENCE_ROOTS[4], REFERENCE_ROOTS[4], [EMPTY_ROOT], "too long: 1 hashes"),
        (0, 5, EMPTY_ROOT, REFERENCE_ROOTS[4], [EMPTY_ROOT], "too long: 1 hashes, 0 to 5"),
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], "too long"),
        (0, 5, REFERENCE_ROOTS[0], REFERENCE_ROOTS[4], [], "not the empty tree's root"),
        (1, 2, REFERENCE_ROOTS[0], REFERENCE_ROOTS[1], [], "is empty: 1 to 2 needs 1 hashes"),
        (2, 5, REFERENCE_ROOTS[1], REFERENCE_ROOTS[4], [EMPTY_ROOT], "too short: 1 hashes, 2"),
        (6, 8, b"x", REFERENCE_ROOTS[7], [], "the old root hash is 1 bytes"),
        (-1, 8, EMPTY_ROOT, REFERENCE_ROOTS[7], [], "old size -1 is not a tree size"),
    ],
)
def test_consistency_edge_cases(
    old: int,
    new: int,
    old_root: bytes,
    new_root: bytes,
    proof: list[bytes],
    reason: str | None,
) -> None:
    if reason is None:
        verify_consistency(old, new, old_root, new_root, proof)
    else:
        with pytest.raises(ProofError, match=reason):
            verify_consistency(old, new, old_root, new_root, proof)


def test_every_tampering_with_every_consistency_proof_of_a_tree_is_refused() -> None:
    size = 21
    tree = tree_of(entries_of(size))
    new_root = tree.root()
    for old_size in range(1, size):
        old_root, proof = tree.root(old_size), tree.consistency_proof(old_size)
        for number, digest in enumerate(proof):
            for position in range(0, 32, 3):
                corrupted = list(proof)
                corrupted[number] = flip(digest, position)
                with pytest.raises(ProofError, match=r"does not lead to the (old|new) root"):
                    verify_consistency(old_size, size, old_root, new_root, corrupted)
        for position in range(0, 32, 3):
            with pytest.raises(ProofError, match=r"does not lead to the (old|new) root"):
                verify_consistency(old_size, size, flip(old_root, position), new_root, proof)
            with pytest.raises(ProofError, match="does not lead to the new root"):
                verify_consistency(old_size, size, old_root, flip(new_root, position), proof)
        for other in range(1, 30):
            if other not in (old_size, size):
                with pytest.raises(ProofError, match=r"consistency proof|larger|differ"):
                    verify_consistency(other, size, old_root, new_root, proof)
            # As for inclusion, only the checkpoint binds the new size.
            if other > old_size and (
                logproof.consistency_proof_length(old_size, other) != len(proof)
            ):
                with pytest.raises(ProofError, match=r"too long|too short"):
                    verify_consistency(old_size, other, old_root, new_root, proof)
        with pytest.raises(ProofError, match=r"too short|is empty"):
            verify_consistency(old_size, size, old_root, new_root, proof[:-1])
        with pytest.raises(ProofError, match="too long"):
            verify_consistency(old_size, size, old_root, new_root, [*proof, proof[-1]])


# --- signed notes against golang.org/x/mod/sumdb/note ------------------------------------


def test_signing_the_go_example_gives_the_go_note_byte_for_byte() -> None:
    key = go_private_key()
    assert verifier_key("PeterNeumann", key.public_key()) == PETER_VKEY
    assert logproof.key_id("PeterNeumann", key.public_key()).hex() == "c74f20a3"
    assert sign_note(GO_TEXT, "PeterNeumann", key) == GO_TEXT + "\n" + PETER_SIG


def test_the_go_note_opens_with_its_key_ignoring_signatures_by_other_keys() -> None:
    assert open_note(GO_TEXT + "\n" + PETER_SIG, PETER_VKEY) == GO_TEXT
    assert open_note(GO_TEXT + "\n" + PETER_SIG + ENOCH_SIG, PETER_VKEY) == GO_TEXT
    assert open_note(GO_TEXT + "\n" + ENOCH_SIG + PETER_SIG, ENOCH_VKEY) == GO_TEXT
    # A broken signature by a key we were not asked about is none of our business.
    broken_enoch = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    assert open_note(GO_TEXT + "\n" + PETER_SIG + broken_enoch, PETER_VKEY) == GO_TEXT


@pytest.mark.parametrize(
    ("note", "reason"),
    [
        (GO_TEXT + "\n" + ENOCH_SIG, "no signature by the key PeterNeumann\\+c74f20a3"),
        (
            GO_TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:],
            "signature by PeterNeumann\\+c74f20a3 does not verify",
        ),
        (
            GO_TEXT.replace("cryptography", "cryptographY") + "\n" + PETER_SIG,
            "does not verify",
        ),
        # The same name with another key ID is another key: ignored, so nothing verifies.
        (GO_TEXT + "\n" + PETER_SIG.replace("x08g", "xxxx"), "no signature by the key"),
        (GO_TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "CarmenSandiego"), "no signature"),
        # The malformed notes of TestOpen.
        (GO_TEXT, "no empty line before its signatures"),
        (GO_TEXT + "\n", "does not end in a newline"),
        (GO_TEXT + "\n" + PETER_SIG[:-1], "does not end in a newline"),
        ("\x01" + GO_TEXT + "\n" + PETER_SIG, "control character"),
        ("\ud800" + GO_TEXT + "\n" + PETER_SIG, "not valid UTF-8"),
        (GO_TEXT + "\n" + "— Bad Name x08go/ZJku\n", "not base64"),
        (GO_TEXT + "\n" + PETER_SIG + "Unexpected line.\n", "not starting with an em dash"),
        (GO_TEXT + "\n" + PETER_SIG * 101, "more than 100 signatures"),
        (GO_TEXT + "\n" + "— PeterNeumann AAAA\n", "signature by PeterNeumann is too short"),
        (GO_TEXT + "\n" + "— PeterNeumann AB==\n", "not canonical base64"),
        ("x" * 300_000 + "\n\n" + PETER_SIG, "larger than 262144 bytes"),
    ],
)
def test_notes_that_do_not_verify_are_refused_with_the_reason(note: str, reason: str) -> None:
    with pytest.raises(ProofError, match=reason):
        open_note(note, PETER_VKEY)


@pytest.mark.parametrize(
    ("vkey", "reason"),
    [
        ("PeterNeumann", "not <name>\\+<key ID>\\+<key>"),
        ("PeterNeumann+c74f20a3", "not <name>\\+<key ID>\\+<key>"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "ID does not"),
        ("PeterNeumanN+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "ID does not"),
        ("PeterNeumann+c74f20+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 hex digits"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T", "not base64"),
        # golang/mod's own manglings: a key of the wrong length, an unknown algorithm.
        (
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
            "not canonical base64",
        ),
        ("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "not an Ed25519"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "a space"),
        ("+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "empty"),
    ],
)
def test_malformed_verifier_keys_are_refused(vkey: str, reason: str) -> None:
    with pytest.raises(ProofError, match=reason):
        open_note(GO_TEXT + "\n" + PETER_SIG, vkey)


def test_every_truncation_of_the_go_verifier_key_is_refused() -> None:
    # As TestNewVerifier: no strict substring of a key is a key.
    for start in range(len(PETER_VKEY)):
        for end in range(start + 1, len(PETER_VKEY) + 1):
            if (start, end) != (0, len(PETER_VKEY)):
                with pytest.raises(ProofError):
                    logproof.parse_verifier_key(PETER_VKEY[start:end])


# --- checkpoints ------------------------------------------------------------------------


def test_a_checkpoint_is_the_c2sp_note_text() -> None:
    root_hash = REFERENCE_ROOTS[7]
    encoded = base64.b64encode(root_hash).decode()
    assert format_checkpoint(Checkpoint(ORIGIN, 8, root_hash)) == f"{ORIGIN}\n8\n{encoded}\n"
    assert (
        format_checkpoint(Checkpoint(ORIGIN, 0, EMPTY_ROOT, ("ext one", "ext two")))
        == f"{ORIGIN}\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\next one\next two\n"
    )


def test_a_signed_checkpoint_opens_to_what_was_signed() -> None:
    checkpoint = Checkpoint(ORIGIN, 8, REFERENCE_ROOTS[7], ("extension",))
    note = sign_note(format_checkpoint(checkpoint), ORIGIN, log_key())
    assert open_checkpoint(note, log_vkey(), ORIGIN) == checkpoint
    assert open_checkpoint(note, log_vkey()) == checkpoint


def test_a_cosigned_checkpoint_opens_with_either_key() -> None:
    note = signed_checkpoint(8, REFERENCE_ROOTS[7])
    witness = Ed25519PrivateKey.from_private_bytes(b"w" * 32)
    cosigned = sign_note(note.split("\n\n")[0] + "\n", "witness.example", witness)
    cosigned = cosigned + note.split("\n\n")[1]
    assert open_checkpoint(cosigned, log_vkey(), ORIGIN).size == 8
    witness_vkey = verifier_key("witness.example", witness.public_key())
    assert open_checkpoint(cosigned, witness_vkey, ORIGIN).size == 8


@pytest.mark.parametrize(
    ("note", "vkey", "reason"),
    [
        (signed_checkpoint(8, REFERENCE_ROOTS[7], seed=9), log_vkey(), "no signature by the key"),
        (
            signed_checkpoint(8, REFERENCE_ROOTS[7], seed=9),
            log_vkey(seed=9),
            None,
        ),
        (
            signed_checkpoint(8, REFERENCE_ROOTS[7], origin="other.example/log"),
            log_vkey(name="other.example/log"),
            "checkpoint is for origin 'other.example/log', expected 'ledger.example/log'",
        ),
        (
            signed_checkpoint(8, REFERENCE_ROOTS[7]).replace("\n8\n", "\n9\n"),
            log_vkey(),
            "does not verify",
        ),
        (
            signed_checkpoint(8, REFERENCE_ROOTS[7]).replace(ORIGIN + "\n", ORIGIN + "X\n", 1),
            log_vkey(),
            "does not verify",
        ),
    ],
)
def test_checkpoints_signed_by_another_key_or_for_another_origin_or_changed_are_refused(
    note: str, vkey: str, reason: str | None
) -> None:
    if reason is None:
        assert open_checkpoint(note, vkey, ORIGIN).size == 8
    else:
        with pytest.raises(ProofError, match=reason):
            open_checkpoint(note, vkey, ORIGIN)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (f"{ORIGIN}\n8\n", "fewer than 3 lines"),
        (f"{ORIGIN}\n08\n{base64.b64encode(EMPTY_ROOT).decode()}\n", "size '08' is not"),
        (f"{ORIGIN}\n-1\n{base64.b64encode(EMPTY_ROOT).decode()}\n", "size '-1' is not"),
        (f"{ORIGIN}\n{2**64}\n{base64.b64encode(EMPTY_ROOT).decode()}\n", "is not a decimal"),
        (f"{ORIGIN}\n8\n{base64.b64encode(b'short').decode()}\n", "root hash is 5 bytes"),
        (f"{ORIGIN}\n8\nnot base64!\n", "root hash is not base64"),
        (f"{ORIGIN}\n8\n{base64.b64encode(EMPTY_ROOT).decode()}\n\next\n", "an empty line"),
    ],
)
def test_malformed_checkpoints_are_refused_even_when_signed(body: str, reason: str) -> None:
    note = sign_note(body, ORIGIN, log_key())
    with pytest.raises(ProofError, match=reason):
        open_checkpoint(note, log_vkey(), ORIGIN)


def test_what_cannot_be_a_checkpoint_or_note_is_not_produced() -> None:
    with pytest.raises(ValueError, match="origin"):
        format_checkpoint(Checkpoint("", 1, EMPTY_ROOT))
    with pytest.raises(ValueError, match="origin"):
        format_checkpoint(Checkpoint("a\nb", 1, EMPTY_ROOT))
    with pytest.raises(ValueError, match="root hash"):
        format_checkpoint(Checkpoint(ORIGIN, 1, b"x"))
    with pytest.raises(ValueError, match="extension"):
        format_checkpoint(Checkpoint(ORIGIN, 1, EMPTY_ROOT, ("",)))
    with pytest.raises(ValueError, match="tree size"):
        format_checkpoint(Checkpoint(ORIGIN, -1, EMPTY_ROOT))
    with pytest.raises(ValueError, match="key name"):
        sign_note("text\n", "a+b", log_key())
    with pytest.raises(ValueError, match="newline"):
        sign_note("text", ORIGIN, log_key())


# --- the command line -------------------------------------------------------------------


@pytest.fixture
def standalone(tmp_path: Path) -> Path:
    """The verifier copied alone into an empty directory, as an auditor would."""
    directory = tmp_path / "auditor"
    directory.mkdir()
    return Path(shutil.copy(SOURCE, directory / "logproof.py"))


def run(script: Path | None, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = (
        [sys.executable, str(script)] if script else [sys.executable, "-m", "tokenledger.logproof"]
    )
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, cwd=cwd, check=False, timeout=60
    )


def one_line(result: subprocess.CompletedProcess[str], prefix: str) -> str:
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    assert lines[0].startswith(prefix), result.stdout
    return lines[0]


@pytest.fixture
def log_files(tmp_path: Path) -> dict[str, Path]:
    """A log of 21 entries: entry 9, its proof and checkpoint at 21, a checkpoint at 13."""
    entries = entries_of(21)
    tree = tree_of(entries)
    files = {
        "entry": tmp_path / "entry.bin",
        "inclusion": tmp_path / "inclusion.json",
        "checkpoint": tmp_path / "checkpoint.txt",
        "old": tmp_path / "old.txt",
        "consistency": tmp_path / "consistency.json",
        "bundle": tmp_path / "bundle.json",
    }
    note = signed_checkpoint(21, tree.root())
    files["entry"].write_bytes(entries[9])
    files["inclusion"].write_text(
        json.dumps(logproof.inclusion_json(9, 21, tree.inclusion_proof(9)))
    )
    files["checkpoint"].write_text(note)
    files["old"].write_text(signed_checkpoint(13, tree.root(13)))
    files["consistency"].write_text(
        json.dumps(logproof.consistency_json(13, 21, tree.consistency_proof(13)))
    )
    files["bundle"].write_text(
        json.dumps(logproof.bundle_json(entries[9], 9, 21, tree.inclusion_proof(9), note))
    )
    return files


def test_the_standalone_copy_verifies_an_inclusion_proof(
    standalone: Path, log_files: dict[str, Path], tmp_path: Path
) -> None:
    args = ["--proof", str(log_files["inclusion"]), "--checkpoint", str(log_files["checkpoint"])]
    result = run(
        standalone,
        "inclusion",
        "--entry",
        str(log_files["entry"]),
        "--index",
        "9",
        *args,
        "--key",
        log_vkey(),
        cwd=standalone.parent,
    )
    assert result.returncode == 0
    line = one_line(result, "OK: entry 9 ")
    assert f"is in {ORIGIN} at size 21" in line

    leaf = leaf_hash(log_files["entry"].read_bytes()).hex()
    result = run(
        standalone,
        "inclusion",
        "--leaf-hash",
        leaf,
        *args,
        "--key",
        log_vkey(),
        cwd=standalone.parent,
    )
    assert result.returncode == 0
    one_line(result, "OK: entry 9 ")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("other entry", "FAILED: inclusion proof does not lead to the root"),
        ("other index", "FAILED: --index 8 is not the proof's index 9"),
        ("other key", "FAILED: note has no signature by the key"),
        ("other origin", "FAILED: checkpoint is for origin 'ledger.example/log', expected"),
        ("truncated proof", "FAILED: inclusion proof too short: 4 hashes, index 9 of 21 needs 5"),
        ("proof for another size", "FAILED: the proof is for a tree of 20 entries, the checkpoint"),
        ("missing checkpoint", "FAILED: cannot read the checkpoint"),
        ("proof not json", "FAILED: the inclusion proof"),
        ("bad leaf hash", "FAILED: --leaf-hash is not hex"),
    ],
)
def test_the_command_line_refuses_a_failing_inclusion_with_exit_6(
    standalone: Path, log_files: dict[str, Path], tmp_path: Path, change: str, reason: str
) -> None:
    entry, proof, checkpoint = log_files["entry"], log_files["inclusion"], log_files["checkpoint"]
    extra: list[str] = []
    key = log_vkey()
    leaf = ["--entry", str(entry)]
    document = json.loads(proof.read_text())
    if change == "other entry":
        entry.write_bytes(b"entry 10")
    elif change == "other index":
        extra = ["--index", "8"]
    elif change == "other key":
        key = log_vkey(seed=8)
    elif change == "other origin":
        extra = ["--origin", "elsewhere.example/log"]
    elif change == "truncated proof":
        document["hashes"] = document["hashes"][:-1]
        proof.write_text(json.dumps(document))
    elif change == "proof for another size":
        document["tree_size"] = 20
        proof.write_text(json.dumps(document))
    elif change == "missing checkpoint":
        checkpoint.unlink()
    elif change == "proof not json":
        proof.write_text("{not json")
    elif change == "bad leaf hash":
        leaf = ["--leaf-hash", "zz"]
    result = run(
        standalone,
        "inclusion",
        *leaf,
        "--proof",
        str(proof),
        "--checkpoint",
        str(checkpoint),
        "--key",
        key,
        *extra,
        cwd=tmp_path,
    )
    assert result.returncode == 6
    assert one_line(result, "FAILED: ").startswith(reason)


def test_the_command_line_verifies_and_refuses_consistency(
    standalone: Path, log_files: dict[str, Path], tmp_path: Path
) -> None:
    args = [
        "--old",
        str(log_files["old"]),
        "--new",
        str(log_files["checkpoint"]),
        "--proof",
        str(log_files["consistency"]),
        "--key",
        log_vkey(),
    ]
    result = run(standalone, "consistency", *args, cwd=tmp_path)
    assert result.returncode == 0
    assert one_line(result, "OK: ").startswith(f"OK: {ORIGIN} at size 21")

    document = json.loads(log_files["consistency"].read_text())
    digest = bytearray(base64.b64decode(document["hashes"][1]))
    digest[5] ^= 1
    document["hashes"][1] = base64.b64encode(bytes(digest)).decode()
    log_files["consistency"].write_text(json.dumps(document))
    result = run(standalone, "consistency", *args, cwd=tmp_path)
    assert result.returncode == 6
    one_line(result, "FAILED: consistency proof does not lead to the")

    # The checkpoints the wrong way round: the proof is not for them.
    swapped = [*args]
    swapped[1], swapped[3] = swapped[3], swapped[1]
    result = run(standalone, "consistency", *swapped, cwd=tmp_path)
    assert result.returncode == 6
    one_line(result, "FAILED: the proof is from size 13 to 21, the checkpoints are at 21 and 13")


def test_a_proof_bundle_verifies_with_the_module_and_refuses_a_changed_entry(
    log_files: dict[str, Path], tmp_path: Path
) -> None:
    bundle = log_files["bundle"]
    result = run(None, "bundle", str(bundle), "--key", log_vkey(), cwd=tmp_path)
    assert result.returncode == 0
    one_line(result, "OK: entry 9 ")

    document = json.loads(bundle.read_text())
    document["entry"] = base64.b64encode(b"entry 99").decode()
    bundle.write_text(json.dumps(document))
    result = run(None, "bundle", str(bundle), "--key", log_vkey(), cwd=tmp_path)
    assert result.returncode == 6
    one_line(result, "FAILED: inclusion proof does not lead to the root")


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ([], "FAILED: the bundle .* is not a JSON object"),
        ("[" * 100_000, "FAILED: the bundle .* is not JSON"),
        ('{"entry": ' + "9" * 5000 + "}", "FAILED: the bundle .* is not JSON"),
        ({"inclusion": {}, "checkpoint": ""}, "FAILED: the bundle's 'entry' is not a base64"),
        ({"entry": "", "checkpoint": ""}, "FAILED: the bundle's 'inclusion' is not a JSON"),
        ({"entry": "", "inclusion": {}}, "FAILED: the bundle's 'checkpoint' is not a string"),
    ],
)
def test_malformed_bundles_fail_with_the_reason(
    document: object, reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "bundle.json"
    if isinstance(document, str):
        bundle.write_text(document)  # not JSON, or JSON that json.dumps would not write
    else:
        bundle.write_text(json.dumps(document))
    assert logproof.main(["bundle", str(bundle), "--key", log_vkey()]) == 6
    assert re.fullmatch(reason + ".*\n", capsys.readouterr().out)


@pytest.mark.parametrize(
    ("inclusion", "reason"),
    [
        ({"index": True, "tree_size": 1, "hashes": []}, "'index' is not an integer"),
        ({"index": 0, "tree_size": "1", "hashes": []}, "'tree_size' is not an integer"),
        ({"index": 0, "tree_size": 2**64, "hashes": []}, "is not a tree size"),
        ({"index": 0, "tree_size": 1, "hashes": "x"}, "'hashes' is not a list"),
        ({"index": 0, "tree_size": 1, "hashes": ["AAAA"]}, "hash 0 is 3 bytes"),
    ],
)
def test_malformed_proofs_in_a_bundle_fail_with_the_reason(
    inclusion: dict[str, object], reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "bundle.json"
    note = signed_checkpoint(1, leaf_hash(b"x"))
    bundle.write_text(json.dumps({"entry": "eA==", "inclusion": inclusion, "checkpoint": note}))
    assert logproof.main(["bundle", str(bundle), "--key", log_vkey()]) == 6
    output = capsys.readouterr().out
    assert output.startswith("FAILED: ")
    assert reason in output
    assert output.count("\n") == 1
