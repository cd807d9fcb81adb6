"""The log's signed checkpoints and its proofs, as the CLI and the HTTP API hand them out.

A checkpoint is a C2SP signed note of (origin, size, root) signed with the log key, an
Ed25519 key kept in the key file beside the access-token signing keys (``KeyStore.log_key``),
never in the log. The origin names the log: ``TOKENLEDGER_LOG_ORIGIN`` when set; else, when
the server has an issuer URL of its own, its host and path followed by ``/log``; else
``tokenledger/`` and the first 8 hex digits of SHA-256 of the log key's public half, which is
this database's own (the key file is per database). The origin is also the key's name in the
note, so that a verifier key says which log it verifies.

Positions start at 1; the tree's leaf index of position N is N - 1, and a tree of size S holds
positions 1 to S.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tokenledger import logproof
from tokenledger.domain.authority import authorise_log_check, sees_every_event
from tokenledger.domain.model import Actor
from tokenledger.errors import IntegrityViolation, NotFound, ValidationError
from tokenledger.service.audit import visible_events
from tokenledger.service.keys import KeyStore
from tokenledger.service.reading import Reader
from tokenledger.store import EventStore, RecordedEvent
from tokenledger.store.backends import backend_for
from tokenledger.store.eventstore import ChainReport, read_head
from tokenledger.store.logtree import (
    NodeMismatch,
    StoredTree,
    TreeBuilder,
    TreeMissing,
    entry_bytes,
    first_mismatch,
    stored_nodes,
)
from tokenledger.store.mapper import decode_event

if TYPE_CHECKING:
    from tokenledger.projections.audit_queries import Explanation

__all__ = [
    "DEFAULT_ISSUER",
    "LOG_ORIGIN_ENV",
    "LogCheck",
    "LogSigner",
    "SignedCheckpoint",
    "check_log",
    "cited_positions",
    "consistency",
    "explanation_proofs",
    "inclusion",
    "log_origin",
    "log_signer",
    "proof_bundles",
    "sign_checkpoint",
    "verify_extends",
    "verify_stored_tree",
    "visible_records",
]

#: Names the log in its checkpoints (and its key); see the module docstring for the default.
LOG_ORIGIN_ENV = "TOKENLEDGER_LOG_ORIGIN"
#: The issuer when none is configured: it names no server, so the origin does not use it.
DEFAULT_ISSUER = "tokenledger"


@dataclass(frozen=True)
class LogSigner:
    origin: str
    private_key: Ed25519PrivateKey

    @property
    def verifier_key(self) -> str:
        return logproof.verifier_key(self.origin, self.private_key.public_key())


def _valid_name(name: str) -> bool:
    try:
        logproof.verifier_key(name, Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key())
    except ValueError:
        return False
    return len(name) <= 200


def log_origin(issuer: str, private_key: Ed25519PrivateKey) -> str:
    configured = os.environ.get(LOG_ORIGIN_ENV, "").strip()
    if configured:
        if not _valid_name(configured):
            raise ValidationError(
                f"${LOG_ORIGIN_ENV} must be a name without spaces or '+', of at most 200 characters"
            )
        return configured
    if issuer and issuer != DEFAULT_ISSUER:
        parts = urlsplit(issuer)
        named = (parts.netloc + parts.path).rstrip("/") if parts.netloc else issuer.rstrip("/")
        candidate = f"{named}/log"
        if _valid_name(candidate):
            return candidate
    public = private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return f"tokenledger/{hashlib.sha256(public).hexdigest()[:8]}"


def log_signer(keys: KeyStore, issuer: str) -> LogSigner:
    """The log key (made on first need) and the origin it signs as."""
    private_key = keys.log_key()
    return LogSigner(log_origin(issuer, private_key), private_key)


@dataclass(frozen=True)
class SignedCheckpoint:
    origin: str
    size: int
    root_hash: bytes
    note: str

    def as_json(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "size": self.size,
            "root_hash": base64.b64encode(self.root_hash).decode("ascii"),
            "note": self.note,
        }


@contextmanager
def _reading(store: EventStore) -> Iterator[Any]:
    """A connection for a checkpoint or a proof. What they read of a tree of a given size
    (its nodes, its events) never changes once written, so they need no snapshot across
    statements: where a read snapshot is each statement's own anyway (PostgreSQL), each reads
    in autocommit, without the round trips of a transaction's ``BEGIN`` and ``ROLLBACK``."""
    with store.engine.connect() as connection:
        if not backend_for(store.engine).snapshots_span_statements:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        yield connection


def _tree_failure(error: TreeMissing) -> IntegrityViolation:
    return IntegrityViolation(
        f"the stored Merkle tree is incomplete ({error}): 'tokenledger log verify' checks it "
        "and 'tokenledger replay' rebuilds it"
    )


def sign_checkpoint(store: EventStore, signer: LogSigner) -> SignedCheckpoint:
    """A checkpoint of the whole log as it is now, signed with the log key."""
    with _reading(store) as connection:
        size = read_head(connection).position
        try:
            root = StoredTree(connection).root(size)
        except TreeMissing as error:
            raise _tree_failure(error) from None
    body = logproof.format_checkpoint(logproof.Checkpoint(signer.origin, size, root))
    note = logproof.sign_note(body, signer.origin, signer.private_key)
    return SignedCheckpoint(signer.origin, size, root, note)


def _tree_size(connection: Any, size: int | None) -> int:
    head = read_head(connection).position
    if size is None:
        return head
    if not 0 <= size <= head:
        raise ValidationError(f"size {size} is not between 0 and the log's size {head}")
    return size


@contextmanager
def visible_records(reader: Reader, actor: Actor) -> Iterator[Callable[[RecordedEvent], bool]]:
    """Whether ``actor`` may see a stored event: the audit's rule (``visible_events``), on the
    record as stored; the operator's answer needs no decoding."""
    if sees_every_event(actor):
        yield lambda record: True
        return
    with visible_events(reader, actor) as visible:
        yield lambda record: visible(decode_event(record))


def inclusion(
    store: EventStore,
    position: int,
    size: int | None = None,
    *,
    may_see: Callable[[RecordedEvent], bool] | None = None,
) -> dict[str, Any]:
    """The inclusion proof of the event at ``position`` in the tree of ``size`` (default: the
    whole log), with the event's canonical bytes: logproof's inclusion shape plus ``entry``
    (base64) and ``position``. ``may_see``: whether the caller may read that event."""
    with _reading(store) as connection:
        tree_size = _tree_size(connection, size)
        if not 1 <= position <= tree_size:
            raise ValidationError(
                f"position {position} is not in a tree of {tree_size} events (1 to {tree_size})"
            )
        tree = StoredTree(connection)
        try:
            hashes = tree.inclusion_proof(position - 1, tree_size)
            record = tree.record(position)
        except TreeMissing as error:
            raise _tree_failure(error) from None
    if may_see is not None and not may_see(record):
        raise NotFound(f"no event at position {position} that you may see")
    document = logproof.inclusion_json(position - 1, tree_size, hashes)
    document["position"] = position
    document["entry"] = base64.b64encode(entry_bytes(record)).decode("ascii")
    return document


def consistency(store: EventStore, old_size: int, new_size: int | None = None) -> dict[str, Any]:
    """The consistency proof from the tree of ``old_size`` to that of ``new_size`` (default:
    the whole log), in logproof's consistency shape."""
    with _reading(store) as connection:
        new = _tree_size(connection, new_size)
        if not 0 <= old_size <= new:
            raise ValidationError(
                f"no consistency proof from size {old_size} to {new}: "
                f"the old size must be between 0 and {new}"
            )
        try:
            hashes = StoredTree(connection).consistency_proof(old_size, new)
        except TreeMissing as error:
            raise _tree_failure(error) from None
    return logproof.consistency_json(old_size, new, hashes)


def verify_extends(store: EventStore, note: str, vkey: str, origin: str) -> str:
    """That the log now extends the signed checkpoint ``note``: its signature by ``vkey`` for
    ``origin``, the log no shorter than it, the root at its size equal to its root, and a
    consistency proof from it to now that verifies. Raises ``IntegrityViolation`` naming what
    failed; returns a one-line report."""
    try:
        old = logproof.open_checkpoint(note, vkey, origin)
    except logproof.ProofError as error:
        raise IntegrityViolation(f"the checkpoint does not verify: {error}") from None
    with store.engine.connect() as connection:
        head = read_head(connection).position
        if head < old.size:
            raise IntegrityViolation(
                f"the log holds {head} events but the checkpoint is of {old.size}: "
                "the log was truncated"
            )
        tree = StoredTree(connection)
        try:
            then = tree.root(old.size)
            now = tree.root(head)
            proof = tree.consistency_proof(old.size, head)
        except TreeMissing as error:
            raise _tree_failure(error) from None
    if then != old.root_hash:
        raise IntegrityViolation(
            f"the log's root at size {old.size} is not the checkpoint's: history was rewritten"
        )
    try:
        logproof.verify_consistency(old.size, head, old.root_hash, now, proof)
    except logproof.ProofError as error:
        raise IntegrityViolation(f"the log does not extend the checkpoint: {error}") from None
    return (
        f"checkpoint ok: {origin} at size {head} (root {now.hex()}) extends the checkpoint "
        f"at size {old.size} (root {old.root_hash.hex()})"
    )


def verify_stored_tree(store: EventStore) -> str:
    """Recompute the tree's stored nodes from the events (up to the head as first read) and
    compare them with the table; ``IntegrityViolation`` naming the first that differs."""
    size = store.head().position
    builder = TreeBuilder()
    expected = []
    for record in store.read_all(until_position=size):
        expected.extend(builder.append(logproof.leaf_hash(entry_bytes(record))))
    expected.sort(key=lambda node: node[:2])
    with store.engine.connect() as connection:
        nodes = list(stored_nodes(connection))
        # The head read after the nodes covers every node an append stored with its events, so
        # a node beyond it covers no event: it would make the append that reaches it fail.
        head = read_head(connection).position
        orphan = next((node for node in nodes if (node[1] + 1) << node[0] > head), None)
        if orphan is not None:
            beyond = NodeMismatch(orphan[0], orphan[1], f"stored beyond the log's {head} events")
            raise IntegrityViolation(f"Merkle tree broken: {beyond}")
        stored = [node for node in nodes if (node[1] + 1) << node[0] <= size]
        mismatch = first_mismatch(stored, expected)
        if mismatch is not None:
            raise IntegrityViolation(f"Merkle tree broken: {mismatch}")
        root = StoredTree(connection).root(size)
    return f"tree ok: {len(expected)} stored nodes, root {root.hex()} at size {size}"


def proof_bundles(
    store: EventStore, signer: LogSigner, positions: list[int]
) -> list[dict[str, Any]]:
    """For each position, logproof's proof bundle (the event's bytes, its inclusion proof,
    the signed checkpoint) against one checkpoint of the log as it is now, plus
    ``position``."""
    checkpoint = sign_checkpoint(store, signer)
    bundles = []
    for position in dict.fromkeys(positions):
        proof = inclusion(store, position, checkpoint.size)
        bundles.append(
            {
                "position": position,
                "entry": proof["entry"],
                # ``inclusion`` answers in logproof's inclusion shape, plus these two.
                "inclusion": {k: v for k, v in proof.items() if k not in ("entry", "position")},
                "checkpoint": checkpoint.note,
            }
        )
    return bundles


def cited_positions(explanation: Explanation) -> list[int]:
    """The positions of the events a token's explanation cites: its story, its revocation
    and the revocation's root cause."""
    cited = [entry.record.position for entry in explanation.story]
    for entry in (explanation.revocation, explanation.root_cause):
        if entry is not None:
            cited.append(entry.record.position)
    return sorted(set(cited))


def explanation_proofs(
    store: EventStore, signer: LogSigner, explanation: Explanation
) -> list[dict[str, Any]]:
    """``audit explain --proof``: a proof bundle (``logproof bundle`` checks it) of each event
    the explanation cites, against one signed checkpoint of the log now.

    Whoever was given the explanation (``Ledger.explain_token`` decided they may see the
    token's story) is given the proofs of the events it shows: a bundle carries those events'
    stored bytes, which the story has already told them, and asking the audit's rule again
    would refuse a story that cites an event of a resource since deleted."""
    return proof_bundles(store, signer, cited_positions(explanation))


@dataclass(frozen=True)
class LogCheck:
    """The chain's report and, when the chain verified, the stored tree's: ``tree`` its
    one-line report, or ``tree_problem`` the first node that is not what the events make."""

    report: ChainReport
    tree: str | None = None
    tree_problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.report.ok and self.tree_problem is None


def check_log(reader: Reader, store: EventStore, actor: Actor) -> LogCheck:
    """``tokenledger log verify`` for ``actor`` (``authorise_log_check``): every event's hash
    recomputed, then the stored Merkle tree against the events."""
    now = reader.now()
    with reader.view() as view:
        authorise_log_check(view, actor, view.list_orgs(), now)
    report = store.verify_chain()
    if not report.ok:
        return LogCheck(report)
    try:
        return LogCheck(report, tree=verify_stored_tree(store))
    except IntegrityViolation as exc:
        return LogCheck(report, tree_problem=str(exc))
