"""Verify TokenLedger's log proofs: one self-contained file an auditor can copy and run.

This module imports only the standard library and ``cryptography`` (for Ed25519), never the
rest of TokenLedger, so it can be read and run on its own::

    python logproof.py inclusion --entry entry.bin --proof proof.json \\
        --checkpoint checkpoint.txt --key VKEY
    python logproof.py consistency --old old.txt --new new.txt --proof proof.json --key VKEY
    python logproof.py bundle bundle.json --key VKEY

(or ``python -m tokenledger.logproof ...``). Each prints ``OK: ...`` and exits 0 when the proof
holds, or prints ``FAILED: <reason>`` and exits 6 when anything does not (a malformed or
unreadable file included).

**The tree.** The log is an RFC 9162 (Certificate Transparency v2) Merkle tree whose leaves are
the events' canonical bytes, in log order: ``leaf_hash(entry) = SHA-256(0x00 || entry)``,
``node_hash(l, r) = SHA-256(0x01 || l || r)``, and the root of the empty tree is
``SHA-256("")``. Inclusion and consistency proofs are verified exactly as RFC 9162 §2.1.3.2 and
§2.1.4.2 say, with the cases the RFC leaves to the caller settled as in other CT verifiers: a
consistency proof from a tree to itself, or from the empty tree, is empty.

**Checkpoints.** A tree head is a C2SP checkpoint (https://c2sp.org/tlog-checkpoint): the note
text is the origin line, the tree size in decimal, the base64 root hash and any extension lines,
each ending in a newline. It travels as a C2SP signed note (https://c2sp.org/signed-note): the
text, an empty line, then signature lines ``— <key name> <base64(key ID || signature)>``. The
signature is Ed25519 over the text; the key ID is the first 4 bytes of
``SHA-256(key name || "\\n" || 0x01 || public key)``. A verifier key (``--key``) is the text
``<name>+<hex key ID>+<base64(0x01 || public key)>``. Signatures by other keys are ignored, as
the spec requires; a note with no valid signature by the given key is refused. ``--origin``
(default: the key's name) is the origin the checkpoint must name.

**Proof files** (JSON; hashes are standard base64 of 32 bytes)::

    inclusion:   {"index": 5, "tree_size": 8, "hashes": ["...", "..."]}
    consistency: {"old_size": 6, "new_size": 8, "hashes": ["...", "..."]}

An inclusion proof's ``tree_size`` must be the checkpoint's size, and a consistency proof's sizes
must be the two checkpoints' sizes. ``--index`` may repeat the proof's index; it must agree.

**Proof bundle** (what ``audit explain --proof`` emits: everything needed to check one event)::

    {"entry": "<base64 of the event's canonical bytes>",
     "inclusion": {"index": 5, "tree_size": 8, "hashes": [...]},
     "checkpoint": "<the signed checkpoint note, as text>"}

Other keys in a bundle are ignored and not verified. ``bundle`` also takes a whole
``audit explain --proof`` document (its ``story``, ``revocation`` and ``root_cause`` entries
and a ``proofs`` list of bundles, each with its ``position``) and succeeds only if every event
the document cites has exactly one bundle that verifies, every bundle is of a cited event, all
are against one checkpoint, and each entry says of its event what the proven bytes say (its
position, stream, event id, type, time, actor, command, correlation and ``via``, and each
payload value the stored payload also holds), printing one ``OK`` line per event. Proofs of
inclusion cannot show that a story leaves no event out.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_NOTE_BYTES",
    "Checkpoint",
    "ProofError",
    "VerifierKey",
    "bundle_json",
    "consistency_json",
    "consistency_proof_length",
    "format_checkpoint",
    "inclusion_json",
    "inclusion_proof_length",
    "key_id",
    "leaf_hash",
    "main",
    "node_hash",
    "open_checkpoint",
    "open_note",
    "parse_checkpoint",
    "parse_verifier_key",
    "sign_note",
    "verifier_key",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32

#: MTH({}): the root of the empty tree (RFC 9162 §2.1.1).
EMPTY_ROOT = hashlib.sha256(b"").digest()

#: Exit status of the command line when a proof does not hold.
EXIT_FAILED = 6

#: The largest note accepted. The spec asks verifiers to take at least 16 signatures, and a
#: post-quantum one is nearly 5 kB: 256 KiB leaves room for those while refusing a note
#: large enough to be an attack on the verifier.
MAX_NOTE_BYTES = 256 * 1024
#: As golang.org/x/mod/sumdb/note: more signature lines than this is a malformed note.
MAX_SIGNATURES = 100
#: The largest proof, checkpoint or bundle file read (a bundle carries one event's bytes).
MAX_FILE_BYTES = 16 * 1024 * 1024
#: Tree sizes are unsigned 64-bit integers (RFC 9162 ``uint64 tree_size``).
MAX_TREE_SIZE = 2**64 - 1

_ED25519_TYPE = b"\x01"
_ED25519_SIGNATURE_SIZE = 64
_SIGNATURE_PREFIX = "\N{EM DASH} "
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")
_KEY_ID_HEX = re.compile(r"[0-9a-fA-F]{8}")


class ProofError(Exception):
    """A proof, checkpoint, note or key that does not verify; the message says what failed."""


# --- the tree's hashes (RFC 9162 §2.1.1) ------------------------------------------------


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _short(digest: bytes) -> str:
    return digest.hex()[:16]


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, not {HASH_SIZE}")


def _check_proof_hashes(proof: Sequence[bytes]) -> None:
    for number, value in enumerate(proof):
        _check_hash(value, f"proof hash {number}")


def _check_size(value: int, what: str) -> None:
    if not 0 <= value <= MAX_TREE_SIZE:
        raise ProofError(f"{what} {value} is not a tree size (0 to 2^64-1)")


# --- inclusion (RFC 9162 §2.1.3.2) ------------------------------------------------------


def inclusion_proof_length(index: int, tree_size: int) -> int:
    """How many hashes PATH(index, D[tree_size]) has: one per level below the root."""
    inner = (index ^ (tree_size - 1)).bit_length()
    return inner + bin(index >> inner).count("1")


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``tree_size`` with ``root``."""
    _check_size(tree_size, "tree size")
    if not 0 <= index < tree_size:
        raise ProofError(f"index {index} is not in a tree of {tree_size} entries")
    _check_hash(leaf_hash, "the leaf hash")
    _check_hash(root, "the root hash")
    _check_proof_hashes(proof)
    expected = inclusion_proof_length(index, tree_size)
    fn, sn = index, tree_size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError(
                f"inclusion proof too long: {len(proof)} hashes, "
                f"index {index} of {tree_size} needs {expected}"
            )
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(
            f"inclusion proof too short: {len(proof)} hashes, "
            f"index {index} of {tree_size} needs {expected}"
        )
    if r != root:
        raise ProofError(
            f"inclusion proof does not lead to the root: computed {_short(r)}..., "
            f"expected {_short(root)}..."
        )


# --- consistency (RFC 9162 §2.1.4.2) ----------------------------------------------------


def consistency_proof_length(old_size: int, new_size: int) -> int:
    """How many hashes PROOF(old_size, D[new_size]) has (0 < old_size < new_size)."""
    level = (old_size & -old_size).bit_length() - 1  # the old tree's last complete subtree
    fn, sn = (old_size - 1) >> level, (new_size - 1) >> level
    inner = (fn ^ sn).bit_length()
    border = bin(fn >> inner).count("1")
    return inner + border + (0 if old_size == 1 << level else 1)


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``new_size`` with ``new_root`` extends the one of ``old_size``."""
    _check_size(old_size, "old size")
    _check_size(new_size, "new size")
    _check_hash(old_root, "the old root hash")
    _check_hash(new_root, "the new root hash")
    _check_proof_hashes(proof)
    if old_size > new_size:
        raise ProofError(f"old size {old_size} is larger than new size {new_size}")
    if old_size == new_size or old_size == 0:
        _verify_trivial_consistency(old_size, new_size, old_root, new_root, proof)
        return
    expected = consistency_proof_length(old_size, new_size)
    if not proof:
        raise ProofError(
            f"consistency proof is empty: {old_size} to {new_size} needs {expected} hashes"
        )
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(
                f"consistency proof too long: {len(proof)} hashes, "
                f"{old_size} to {new_size} needs {expected}"
            )
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(
            f"consistency proof too short: {len(proof)} hashes, "
            f"{old_size} to {new_size} needs {expected}"
        )
    if fr != old_root:
        raise ProofError(
            f"consistency proof does not lead to the old root: computed {_short(fr)}..., "
            f"expected {_short(old_root)}..."
        )
    if sr != new_root:
        raise ProofError(
            f"consistency proof does not lead to the new root: computed {_short(sr)}..., "
            f"expected {_short(new_root)}..."
        )


def _verify_trivial_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    # RFC 9162 verifies only 0 < old < new; a tree is consistent with itself, and every tree
    # with the empty one, with nothing to prove, so any hash given as proof is a forgery.
    if proof:
        raise ProofError(
            f"consistency proof too long: {len(proof)} hashes, {old_size} to {new_size} needs 0"
        )
    if old_size == 0 and old_root != EMPTY_ROOT:
        raise ProofError("the old root is not the empty tree's root, yet the old size is 0")
    if old_size == new_size and old_root != new_root:
        raise ProofError(f"the two roots differ, yet both trees have {old_size} entries")


# --- checkpoints (https://c2sp.org/tlog-checkpoint) -------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()


def format_checkpoint(checkpoint: Checkpoint) -> str:
    """The checkpoint's note text: origin, size, base64 root, extension lines, each + newline."""
    if not checkpoint.origin or _has_control(checkpoint.origin):
        raise ValueError("the origin must be one non-empty line")
    if not 0 <= checkpoint.size <= MAX_TREE_SIZE:
        raise ValueError(f"{checkpoint.size} is not a tree size")
    if len(checkpoint.root_hash) != HASH_SIZE:
        raise ValueError(f"the root hash must be {HASH_SIZE} bytes")
    for line in checkpoint.extensions:
        if not line or _has_control(line):
            raise ValueError("each extension must be one non-empty line")
    lines = [
        checkpoint.origin,
        str(checkpoint.size),
        base64.b64encode(checkpoint.root_hash).decode("ascii"),
        *checkpoint.extensions,
    ]
    return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str, origin: str | None = None) -> Checkpoint:
    """Read a checkpoint's note text (already verified); ``origin``, if given, must match."""
    if not text.endswith("\n"):
        raise ProofError("checkpoint text does not end in a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise ProofError("checkpoint has fewer than 3 lines (origin, size, root hash)")
    if any(not line for line in lines):
        raise ProofError("checkpoint has an empty line")
    found_origin, size_line, root_line, *extensions = lines
    if origin is not None and found_origin != origin:
        raise ProofError(
            f"checkpoint is for origin {_quote(found_origin)}, expected {_quote(origin)}"
        )
    if not _DECIMAL.fullmatch(size_line) or int(size_line) > MAX_TREE_SIZE:
        raise ProofError(f"checkpoint size {_quote(size_line)} is not a decimal tree size")
    root = _b64decode(root_line, "checkpoint root hash")
    _check_hash(root, "checkpoint root hash")
    return Checkpoint(found_origin, int(size_line), root, tuple(extensions))


def open_checkpoint(note: str, vkey: str, origin: str | None = None) -> Checkpoint:
    """Verify the signed checkpoint ``note`` by the key ``vkey`` and return what it says."""
    return parse_checkpoint(open_note(note, vkey), origin)


# --- signed notes (https://c2sp.org/signed-note) ----------------------------------------


@dataclass(frozen=True)
class VerifierKey:
    name: str
    key_id: bytes
    public_key: Ed25519PublicKey


def _raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    digest = hashlib.sha256(
        name.encode() + b"\n" + _ED25519_TYPE + _raw_public_key(public_key)
    ).digest()
    return digest[:4]


def verifier_key(name: str, public_key: Ed25519PublicKey) -> str:
    """The vkey text ``<name>+<hex key ID>+<base64(0x01 || public key)>``."""
    _check_key_name(name, ValueError)
    encoded = base64.b64encode(_ED25519_TYPE + _raw_public_key(public_key)).decode("ascii")
    return f"{name}+{key_id(name, public_key).hex()}+{encoded}"


def parse_verifier_key(vkey: str) -> VerifierKey:
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise ProofError("verifier key is not <name>+<key ID>+<key>")
    name, id_hex, encoded = parts
    _check_key_name(name, ProofError)
    if not _KEY_ID_HEX.fullmatch(id_hex):
        raise ProofError("verifier key's ID is not 8 hex digits")
    raw = _b64decode(encoded, "verifier key")
    if raw[:1] != _ED25519_TYPE:
        raise ProofError("verifier key is not an Ed25519 key (type 0x01)")
    if len(raw) != 33:
        raise ProofError("verifier key's Ed25519 key is not 32 bytes")
    try:
        public_key = Ed25519PublicKey.from_public_bytes(raw[1:])
    except ValueError:
        raise ProofError("verifier key is not a valid Ed25519 key") from None
    if key_id(name, public_key) != bytes.fromhex(id_hex):
        raise ProofError("verifier key's ID does not match its name and key")
    return VerifierKey(name, bytes.fromhex(id_hex), public_key)


def sign_note(body: str, key_name: str, private_key: Ed25519PrivateKey) -> str:
    """``body`` + an empty line + one Ed25519 signature line by ``key_name``."""
    _check_key_name(key_name, ValueError)
    if not body.endswith("\n") or _has_control(body.replace("\n", "")):
        raise ValueError("a note's text must end in a newline and hold no control characters")
    public_key = private_key.public_key()
    signature = private_key.sign(body.encode())
    encoded = base64.b64encode(key_id(key_name, public_key) + signature).decode("ascii")
    return f"{body}\n{_SIGNATURE_PREFIX}{key_name} {encoded}\n"


def open_note(note: str, vkey: str) -> str:
    """Return the text of ``note`` once its signature by ``vkey`` verifies.

    Signatures by other keys (another name or key ID) are ignored; a signature by this key
    that does not verify refuses the whole note, as the spec recommends.
    """
    key = parse_verifier_key(vkey)
    text, signatures = _split_note(note)
    verified = False
    for name, signed_id, signature in signatures:
        if name != key.name or signed_id != key.key_id:
            continue
        try:
            if len(signature) != _ED25519_SIGNATURE_SIZE:
                raise InvalidSignature
            key.public_key.verify(signature, text.encode())
        except InvalidSignature:
            raise ProofError(
                f"the signature by {key.name}+{key.key_id.hex()} does not verify"
            ) from None
        verified = True
    if not verified:
        raise ProofError(f"note has no signature by the key {key.name}+{key.key_id.hex()}")
    return text


def _split_note(note: str) -> tuple[str, list[tuple[str, bytes, bytes]]]:
    try:
        size = len(note.encode("utf-8"))
    except UnicodeEncodeError:
        raise ProofError("note is not valid UTF-8") from None
    if size > MAX_NOTE_BYTES:
        raise ProofError(f"note is larger than {MAX_NOTE_BYTES} bytes")
    if _has_control(note.replace("\n", "")):
        raise ProofError("note holds a control character")
    split = note.rfind("\n\n")
    if split < 0:
        raise ProofError("note has no empty line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block.endswith("\n"):
        raise ProofError("note's last signature line does not end in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise ProofError(f"note has more than {MAX_SIGNATURES} signatures")
    return text, [_parse_signature_line(line) for line in lines]


def _parse_signature_line(line: str) -> tuple[str, bytes, bytes]:
    if not line.startswith(_SIGNATURE_PREFIX):
        raise ProofError("note has a signature line not starting with an em dash and a space")
    name, _, encoded = line[len(_SIGNATURE_PREFIX) :].partition(" ")
    _check_key_name(name, ProofError)
    raw = _b64decode(encoded, f"signature by {name}")
    if len(raw) < 5:
        raise ProofError(f"signature by {name} is too short")
    return name, raw[:4], raw[4:]


def _check_key_name(name: str, error: type[Exception]) -> None:
    if not name or "+" in name or any(c.isspace() for c in name) or _has_control(name):
        raise error(f"key name {_quote(name)} is empty or holds a space or a plus")


def _quote(text: str) -> str:
    # Shown in one-line errors: quoted (escaping anything unprintable) and cut short.
    return repr(text if len(text) <= 80 else text[:80] + "...")


def _has_control(text: str) -> bool:
    # The spec forbids every ASCII control character but newline, which callers remove first.
    return any(ord(c) < 0x20 for c in text)


def _b64decode(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProofError(f"{what} is not base64") from None
    # One encoding per value: no alternative padding bits or missing padding.
    if base64.b64encode(raw).decode("ascii") != text:
        raise ProofError(f"{what} is not canonical base64")
    return raw


# --- the JSON shapes (see the module docstring) ----------------------------------------


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def inclusion_json(index: int, tree_size: int, hashes: Sequence[bytes]) -> dict[str, Any]:
    return {"index": index, "tree_size": tree_size, "hashes": [_b64(h) for h in hashes]}


def consistency_json(old_size: int, new_size: int, hashes: Sequence[bytes]) -> dict[str, Any]:
    return {"old_size": old_size, "new_size": new_size, "hashes": [_b64(h) for h in hashes]}


def bundle_json(
    entry: bytes, index: int, tree_size: int, hashes: Sequence[bytes], checkpoint_note: str
) -> dict[str, Any]:
    """The proof bundle of one entry: its bytes, its inclusion proof, the signed checkpoint."""
    return {
        "entry": _b64(entry),
        "inclusion": inclusion_json(index, tree_size, hashes),
        "checkpoint": checkpoint_note,
    }


# --- the command line -------------------------------------------------------------------


@dataclass(frozen=True)
class _InclusionProof:
    index: int
    tree_size: int
    hashes: list[bytes]


@dataclass(frozen=True)
class _ConsistencyProof:
    old_size: int
    new_size: int
    hashes: list[bytes]


def _read_bytes(path: str, what: str) -> bytes:
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise ProofError(f"cannot read the {what} {path}: {error.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ProofError(f"the {what} {path} is larger than {MAX_FILE_BYTES} bytes")
    return data


def _read_text(path: str, what: str) -> str:
    try:
        return _read_bytes(path, what).decode("utf-8")
    except UnicodeDecodeError:
        raise ProofError(f"the {what} {path} is not UTF-8 text") from None


def _read_json(path: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_read_text(path, what))
    except (ValueError, RecursionError):  # ValueError: also an integer of too many digits
        raise ProofError(f"the {what} {path} is not JSON") from None
    if not isinstance(value, dict):
        raise ProofError(f"the {what} {path} is not a JSON object")
    return value


def _json_size(document: dict[str, Any], field: str, what: str) -> int:
    value = document.get(field)
    # bool is an int in Python, and true is no tree size.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProofError(f"the {what}'s {field!r} is not an integer")
    _check_size(value, f"the {what}'s {field!r}")
    return value


def _json_hashes(document: dict[str, Any], what: str) -> list[bytes]:
    values = document.get("hashes")
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ProofError(f"the {what}'s 'hashes' is not a list of base64 strings")
    hashes = [_b64decode(v, f"{what} hash {n}") for n, v in enumerate(values)]
    for number, value in enumerate(hashes):
        _check_hash(value, f"{what} hash {number}")
    return hashes


def _inclusion_from_json(document: dict[str, Any]) -> _InclusionProof:
    what = "inclusion proof"
    return _InclusionProof(
        _json_size(document, "index", what),
        _json_size(document, "tree_size", what),
        _json_hashes(document, what),
    )


def _consistency_from_json(document: dict[str, Any]) -> _ConsistencyProof:
    what = "consistency proof"
    return _ConsistencyProof(
        _json_size(document, "old_size", what),
        _json_size(document, "new_size", what),
        _json_hashes(document, what),
    )


def _check_inclusion(
    leaf: bytes, proof: _InclusionProof, checkpoint: Checkpoint, index: int | None
) -> str:
    if index is not None and index != proof.index:
        raise ProofError(f"--index {index} is not the proof's index {proof.index}")
    if proof.tree_size != checkpoint.size:
        raise ProofError(
            f"the proof is for a tree of {proof.tree_size} entries, "
            f"the checkpoint for {checkpoint.size}"
        )
    verify_inclusion(leaf, proof.index, proof.tree_size, proof.hashes, checkpoint.root_hash)
    return (
        f"OK: entry {proof.index} (leaf hash {leaf.hex()}) is in {checkpoint.origin} "
        f"at size {checkpoint.size} (root {checkpoint.root_hash.hex()})"
    )


def _leaf_from_args(args: argparse.Namespace) -> bytes:
    if args.entry is not None:
        return leaf_hash(_read_bytes(args.entry, "entry"))
    try:
        leaf = bytes.fromhex(args.leaf_hash)
    except ValueError:
        raise ProofError("--leaf-hash is not hex") from None
    _check_hash(leaf, "--leaf-hash")
    return leaf


def _origin(args: argparse.Namespace, key: str) -> str:
    return args.origin if args.origin is not None else parse_verifier_key(key).name


def _run_inclusion(args: argparse.Namespace) -> str:
    leaf = _leaf_from_args(args)
    proof = _inclusion_from_json(_read_json(args.proof, "inclusion proof"))
    note = _read_text(args.checkpoint, "checkpoint")
    checkpoint = open_checkpoint(note, args.key, _origin(args, args.key))
    return _check_inclusion(leaf, proof, checkpoint, args.index)


def _run_consistency(args: argparse.Namespace) -> str:
    origin = _origin(args, args.key)
    old = open_checkpoint(_read_text(args.old, "old checkpoint"), args.key, origin)
    new = open_checkpoint(_read_text(args.new, "new checkpoint"), args.key, origin)
    proof = _consistency_from_json(_read_json(args.proof, "consistency proof"))
    if (proof.old_size, proof.new_size) != (old.size, new.size):
        raise ProofError(
            f"the proof is from size {proof.old_size} to {proof.new_size}, "
            f"the checkpoints are at {old.size} and {new.size}"
        )
    verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof.hashes)
    return (
        f"OK: {origin} at size {new.size} (root {new.root_hash.hex()}) extends "
        f"size {old.size} (root {old.root_hash.hex()})"
    )


def _run_bundle(args: argparse.Namespace) -> str:
    document = _read_json(args.bundle, "bundle")
    if "proofs" not in document:
        return _check_bundle(document, args, "the bundle")
    return _check_story(document, args)


#: What a story entry says of its event, and where the event's canonical bytes say it: the
#: first line of the bytes is a JSON array [position, stream_id, stream_version, event_id,
#: event_type, schema_version, recorded_at, actor, command_id, correlation_id(, via)], the
#: rest the payload as stored.
_ENVELOPE_FIELDS = {
    "position": 0,
    "stream_id": 1,
    "stream_version": 2,
    "event_id": 3,
    "event_type": 4,
    "recorded_at": 6,
    "actor": 7,
    "command_id": 8,
    "correlation_id": 9,
}


def _check_story(document: dict[str, Any], args: argparse.Namespace) -> str:
    """A whole ``audit explain --proof`` document: every event its story, revocation and
    root cause cite has exactly one verifying bundle and every bundle is of a cited event,
    all against one checkpoint, and each entry says of its event what the proven bytes say:
    its envelope, and each value of its payload the stored payload also holds (the ledger
    shows an event recorded under an older schema with the fields added since). What the
    proofs cannot show: that the story leaves no event out, and its summaries' wording."""
    bundles = document["proofs"]
    if not isinstance(bundles, list) or not bundles:
        raise ProofError("the document's 'proofs' is not a non-empty list of bundles")
    by_position: dict[int, dict[str, Any]] = {}
    for number, bundle in enumerate(bundles, 1):
        if not isinstance(bundle, dict) or not _is_position(bundle.get("position")):
            raise ProofError(f"proof {number} of the document is not a bundle with a position")
        if not isinstance(bundle.get("checkpoint"), str):
            raise ProofError(f"proof {number} of the document has no checkpoint note")
        if bundle["position"] in by_position:
            raise ProofError(f"the document proves position {bundle['position']} twice")
        by_position[bundle["position"]] = bundle
    if len({bundle["checkpoint"] for bundle in bundles}) != 1:
        raise ProofError("the document's proofs are not all against one checkpoint")
    story = document.get("story")
    if not isinstance(story, list):
        raise ProofError("the document's 'story' is not a list")
    cited = [*story, *(document.get(key) for key in ("revocation", "root_cause"))]
    cited = [entry for entry in cited if entry is not None]
    if not cited:
        raise ProofError("the document cites no event")
    lines, proven = [], set()
    for entry in cited:
        if not isinstance(entry, dict) or not _is_position(entry.get("position")):
            raise ProofError("an event the document cites has no position")
        position = entry["position"]
        bundle = by_position.get(position)
        if bundle is None:
            raise ProofError(f"the event at position {position} the story cites has no proof")
        what = f"the proof of position {position}"
        lines.append(_check_bundle(bundle, args, what, index=position - 1))
        _check_entry(entry, _b64decode(bundle["entry"], f"{what}'s entry"), position)
        proven.add(position)
    uncited = sorted(set(by_position) - proven)
    if uncited:
        raise ProofError(
            f"the document proves position {uncited[0]}, which its story does not cite"
        )
    return "\n".join(dict.fromkeys(lines))


def _is_position(value: Any) -> bool:
    # bool is an int in Python, and true is no position.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_entry(entry: dict[str, Any], proven: bytes, position: int) -> None:
    envelope, _, payload_bytes = proven.partition(b"\n")
    try:
        fields = json.loads(envelope)
        payload = json.loads(payload_bytes)
    except (ValueError, RecursionError):
        raise ProofError(f"the proven entry at position {position} is not an event") from None
    if not isinstance(fields, list) or len(fields) < 10 or not isinstance(payload, dict):
        raise ProofError(f"the proven entry at position {position} is not an event")
    said = {name: fields[index] for name, index in _ENVELOPE_FIELDS.items()}
    said["via"] = fields[10] if len(fields) > 10 else None
    for name, value in said.items():
        # stream_version only where the document gives it (the API's shape does).
        if name == "stream_version" and name not in entry:
            continue
        if entry.get(name) != value:
            raise ProofError(
                f"the story says {name} {entry.get(name)!r} of position {position}, "
                f"the proven event says {value!r}"
            )
    shown = entry.get("data")
    if not isinstance(shown, dict):
        raise ProofError(f"the story shows no event data at position {position}")
    for key in sorted(payload.keys() & shown.keys()):
        if shown[key] != payload[key]:
            raise ProofError(
                f"the story shows {key} {shown[key]!r} at position {position}, "
                f"the proven event holds {payload[key]!r}"
            )


def _check_bundle(
    bundle: dict[str, Any], args: argparse.Namespace, what: str, index: int | None = None
) -> str:
    entry, inclusion, note = (bundle.get(k) for k in ("entry", "inclusion", "checkpoint"))
    if not isinstance(entry, str):
        raise ProofError(f"{what}'s 'entry' is not a base64 string")
    if not isinstance(inclusion, dict):
        raise ProofError(f"{what}'s 'inclusion' is not a JSON object")
    if not isinstance(note, str):
        raise ProofError(f"{what}'s 'checkpoint' is not a string")
    leaf = leaf_hash(_b64decode(entry, f"{what}'s entry"))
    checkpoint = open_checkpoint(note, args.key, _origin(args, args.key))
    return _check_inclusion(leaf, _inclusion_from_json(inclusion), checkpoint, index)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logproof",
        description="Verify a TokenLedger log proof against a signed checkpoint.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--key", required=True, help="the log's verifier key (vkey text)")
        sub.add_argument(
            "--origin", help="the origin checkpoints must name (default: the key name)"
        )

    inclusion = commands.add_parser("inclusion", help="an entry is in the log")
    leaf = inclusion.add_mutually_exclusive_group(required=True)
    leaf.add_argument("--entry", metavar="FILE", help="the entry's canonical bytes")
    leaf.add_argument("--leaf-hash", metavar="HEX", help="the entry's leaf hash")
    inclusion.add_argument("--index", type=int, help="the entry's index (must match the proof)")
    inclusion.add_argument("--proof", metavar="FILE", required=True, help="inclusion proof JSON")
    inclusion.add_argument("--checkpoint", metavar="FILE", required=True)
    common(inclusion)
    inclusion.set_defaults(run=_run_inclusion)

    consistency = commands.add_parser("consistency", help="a checkpoint extends an older one")
    consistency.add_argument("--old", metavar="FILE", required=True, help="older checkpoint")
    consistency.add_argument("--new", metavar="FILE", required=True, help="newer checkpoint")
    consistency.add_argument("--proof", metavar="FILE", required=True, help="proof JSON")
    common(consistency)
    consistency.set_defaults(run=_run_consistency)

    bundle = commands.add_parser("bundle", help="an entry with its proof and checkpoint")
    bundle.add_argument("bundle", metavar="FILE")
    common(bundle)
    bundle.set_defaults(run=_run_bundle)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        message: str = args.run(args)
    except ProofError as error:
        print(f"FAILED: {error}")
        return EXIT_FAILED
    print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
