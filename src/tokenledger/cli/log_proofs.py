"""``tokenledger log key | checkpoint | prove``, and what ``log verify`` checks of the tree.

The log is also an RFC 9162 Merkle tree (``store.logtree``); these commands hand out its
signed checkpoints and its proofs, which ``python -m tokenledger.logproof`` (one file an
auditor can copy) verifies without the rest of the ledger.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tokenledger.cli.app import CliContext
from tokenledger.cli.defaults import DEFAULT_ISSUER, ISSUER_ENV
from tokenledger.cli.output import echo_json
from tokenledger.errors import IntegrityViolation, ValidationError

if TYPE_CHECKING:
    from tokenledger.projections.audit_queries import Explanation
    from tokenledger.service.log_proofs import LogSigner

__all__ = ["checkpoint_command", "cited_event_bundles", "key_command", "prove", "verify_tree"]


def _signer(obj: CliContext) -> LogSigner:
    """The log key of this database's key file (made on first need) and its origin."""
    from tokenledger.service.keys import KeyStore
    from tokenledger.service.log_proofs import log_signer
    from tokenledger.store import parse_database_url

    obj.store()  # the database first: its errors are the ones to report
    keys = KeyStore.from_environment(parse_database_url(obj.database_url))
    issuer = os.environ.get(ISSUER_ENV, "").strip() or DEFAULT_ISSUER
    return log_signer(keys, issuer)


@click.command("key")
@click.pass_obj
def key_command(obj: CliContext) -> None:
    """Print the log's verifier key (the public half only), for 'logproof --key'."""
    click.echo(_signer(obj).verifier_key)


@click.command("checkpoint")
@click.option("--json", "as_json", is_flag=True, help="Print {origin, size, root_hash, note}.")
@click.pass_obj
def checkpoint_command(obj: CliContext, as_json: bool) -> None:
    """Print a signed checkpoint of the log as it is now (a C2SP signed note)."""
    from tokenledger.service.log_proofs import sign_checkpoint

    checkpoint = sign_checkpoint(obj.store(), _signer(obj))
    if as_json:
        echo_json(checkpoint.as_json())
    else:
        click.echo(checkpoint.note, nl=False)


@click.group("prove")
def prove() -> None:
    """Prove an event is in the log, or that the log extends an earlier size."""


def _print_proof(document: dict[str, Any], heading: str, as_json: bool) -> None:
    if as_json:
        echo_json(document)
        return
    click.echo(heading)
    for value in document["hashes"]:
        click.echo(value)


@prove.command("inclusion")
@click.option("--position", type=int, required=True, help="The event's position (from 1).")
@click.option("--size", type=int, help="The tree's size (default: the whole log).")
@click.option("--json", "as_json", is_flag=True, help="Print the proof as JSON (logproof's).")
@click.pass_obj
def inclusion_command(obj: CliContext, position: int, size: int | None, as_json: bool) -> None:
    """The inclusion proof of the event at a position, with its canonical bytes."""
    from tokenledger.service.log_proofs import inclusion, visible_records

    ledger = obj.ledger()
    with visible_records(ledger, obj.actor()) as may_see:  # type: ignore[arg-type]
        document = inclusion(obj.store(), position, size, may_see=may_see)
    heading = (
        f"position {document['position']} (index {document['index']}) in the tree of "
        f"{document['tree_size']}\nentry {document['entry']}"
    )
    _print_proof(document, heading, as_json)


@prove.command("consistency")
@click.option("--from", "old_size", type=int, required=True, help="The earlier tree's size.")
@click.option("--to", "new_size", type=int, help="The later tree's size (default: the log's).")
@click.option("--json", "as_json", is_flag=True, help="Print the proof as JSON (logproof's).")
@click.pass_obj
def consistency_command(
    obj: CliContext, old_size: int, new_size: int | None, as_json: bool
) -> None:
    """The consistency proof from an earlier size of the log to a later one."""
    from tokenledger.service.log_proofs import consistency

    document = consistency(obj.store(), old_size, new_size)
    heading = f"from size {document['old_size']} to {document['new_size']}"
    _print_proof(document, heading, as_json)


def _read_text(path: str, what: str) -> str:
    from tokenledger.domain.names import shown
    from tokenledger.logproof import MAX_NOTE_BYTES

    try:
        # Bounded: the path may name a device or a file of any size (/dev/zero), and no note
        # beyond this is accepted anyway.
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_NOTE_BYTES + 1)
    except OSError as exc:
        raise ValidationError(f"cannot read the {what} {shown(path)}: {exc.strerror}") from exc
    except ValueError as exc:  # a NUL byte in the path
        raise ValidationError(f"cannot read the {what} {shown(path)}: {exc}") from exc
    if len(data) > MAX_NOTE_BYTES:
        raise IntegrityViolation(
            f"the {what} {shown(path)} is larger than a note may be ({MAX_NOTE_BYTES} bytes)"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise IntegrityViolation(f"the {what} {shown(path)} is not UTF-8 text") from None


def verify_tree(obj: CliContext, checkpoint_file: str | None, vkey: str | None) -> list[str]:
    """After the chain verified: the stored tree against a recomputation from the events, and
    with ``checkpoint_file``, that the log extends it. Raises ``IntegrityViolation`` naming
    the first mismatching node or what failed; returns the lines to print."""
    from tokenledger.service.log_proofs import verify_extends, verify_stored_tree

    if vkey is not None and checkpoint_file is None:
        raise ValidationError("--key verifies a --checkpoint: give one")
    store = obj.store()
    lines = [verify_stored_tree(store)]
    if checkpoint_file is not None:
        note = _read_text(checkpoint_file, "checkpoint")
        if vkey is None:
            signer = _signer(obj)
            vkey, origin = signer.verifier_key, signer.origin
        else:
            from tokenledger import logproof

            try:
                origin = logproof.parse_verifier_key(vkey).name
            except logproof.ProofError as error:
                raise ValidationError(f"--key: {error}") from None
        lines.append(verify_extends(store, note, vkey, origin))
    return lines


def cited_event_bundles(obj: CliContext, explanation: Explanation) -> list[dict[str, Any]]:
    """``audit explain --proof`` on this database: a proof bundle of each event the
    explanation cites (``service.log_proofs.explanation_proofs``)."""
    from tokenledger.service.log_proofs import explanation_proofs

    return explanation_proofs(obj.store(), _signer(obj), explanation)
