"""``tokenledger log`` and ``tokenledger events``: the raw log and its integrity."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click
import msgspec

from tokenledger.cli.app import EXIT_CODES, CliContext, fail
from tokenledger.cli.log_proofs import checkpoint_command, key_command, prove, verify_tree
from tokenledger.cli.output import echo_json, format_timestamp, json_line
from tokenledger.domain.names import shown
from tokenledger.errors import IntegrityViolation, ValidationError

if TYPE_CHECKING:
    from tokenledger.store import Head, RecordedEvent


@click.group()
def log() -> None:
    """Inspect the event log and prove it has not been altered."""


for _command in (key_command, checkpoint_command, prove):
    log.add_command(_command)


def _head_dict(head: Head) -> dict[str, object]:
    return {
        "position": head.position,
        "hash": head.hash,
        "recorded_at": format_timestamp(head.recorded_at) if head.recorded_at else None,
    }


def _load_head(path: Path) -> Head:
    from tokenledger.store import Head
    from tokenledger.store.chain import saved_head_problem

    # The path is shown cut short and escaped: it may be hostile (a megabyte, a newline).
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValidationError(
            f"cannot read the saved head {shown(str(path))}: {exc.strerror}"
        ) from exc
    except ValueError as exc:  # a NUL byte in the path
        raise ValidationError(f"cannot read the saved head {shown(str(path))}: {exc}") from exc
    try:
        head = msgspec.json.decode(data, type=Head)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValidationError(
            f"{shown(str(path))} is not a head saved by 'tokenledger log head --json': {exc}"
        ) from exc
    # A head no log could have had (position -1, position 0 with an event's hash, a hash
    # that is no SHA-256) would otherwise match nothing and let any log pass as "chain ok".
    problem = saved_head_problem(head)
    if problem is not None:
        raise ValidationError(
            f"{shown(str(path))} is not a head saved by 'tokenledger log head --json': {problem}"
        )
    return head


@log.command("head")
@click.option(
    "--json", "as_json", is_flag=True, help="Print as JSON (save it for 'verify --head')."
)
@click.pass_obj
def head_command(obj: CliContext, as_json: bool) -> None:
    """The last event's position and hash."""
    head = obj.store().head()
    if as_json:
        echo_json(_head_dict(head))
    else:
        click.echo(f"position {head.position}  hash {head.hash}")


@log.command("verify")
@click.option(
    "--head",
    "head_file",
    # Checked when read (_load_head), so that any unreadable path, a directory or one with a
    # NUL byte included, is one clear line rather than click's usage message or a traceback.
    metavar="FILE",
    help="A head saved earlier with 'log head --json': also detect truncation or rewriting.",
)
@click.option(
    "--checkpoint",
    "checkpoint_file",
    metavar="FILE",
    help="A checkpoint saved earlier with 'log checkpoint': prove the log extends it.",
)
@click.option(
    "--key", "vkey", metavar="VKEY", help="The checkpoint's verifier key (default: this log's)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def verify_command(
    obj: CliContext,
    head_file: str | None,
    checkpoint_file: str | None,
    vkey: str | None,
    as_json: bool,
) -> None:
    """Recompute the hash chain and the Merkle tree; exit non-zero naming the first bad
    position or node."""
    expected = _load_head(Path(head_file)) if head_file is not None else None
    report = obj.store().verify_chain(expected_head=expected)
    tree = verify_tree(obj, checkpoint_file, vkey) if report.ok else []
    if as_json:
        echo_json(
            {
                "ok": report.ok,
                "events_checked": report.events_checked,
                "head": _head_dict(report.head),
                "first_bad_position": report.first_bad_position,
                "problem": report.problem,
                "tree": tree,
            }
        )
    elif report.ok:
        click.echo(
            f"chain ok: {report.events_checked} events, head position {report.head.position} "
            f"hash {report.head.hash}"
        )
        for line in tree:
            click.echo(line)
    if not report.ok:
        if not as_json:
            fail(
                f"chain broken at position {report.first_bad_position}: {report.problem}",
                EXIT_CODES[IntegrityViolation],
            )
        raise SystemExit(EXIT_CODES[IntegrityViolation])


@click.command("events")
@click.option(
    "--from",
    "from_position",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="First position to print.",
)
@click.option("--stream", "stream_id", help="Only this stream's events, in stream order.")
@click.option("--limit", type=click.IntRange(min=1), help="Print at most this many events.")
@click.option(
    "--follow",
    is_flag=True,
    help="Keep printing events as they are committed (until --limit, or Ctrl-C).",
)
@click.pass_obj
def events_command(
    obj: CliContext, from_position: int, stream_id: str | None, limit: int | None, follow: bool
) -> None:
    """Print the log as JSON lines, one event each, in log order (the operator's: admins and
    auditors read their org's events with 'audit')."""
    from tokenledger.store.record_json import record_dict

    obj.require_operator("read the whole log")
    if follow:
        if stream_id is not None:
            raise ValidationError("--follow follows the whole log; it takes no --stream")
        _follow(obj, from_position, limit)
        return
    store = obj.store()
    records: Iterator[RecordedEvent]
    if stream_id is not None:
        records = iter(r for r in store.read_stream(stream_id) if r.position >= from_position)
    else:
        records = store.read_all(from_position=from_position)
    for count, record in enumerate(records, start=1):
        click.echo(json_line(record_dict(record)).decode())
        if limit is not None and count >= limit:
            break


def _follow(obj: CliContext, from_position: int, limit: int | None) -> None:
    """Print from ``from_position`` on, then each event as it is committed; Ctrl-C ends it
    quietly."""
    from tokenledger.service.subscription import Subscription
    from tokenledger.store.record_json import record_dict

    printed = 0
    try:
        with Subscription(obj.store(), after=from_position - 1) as subscription:
            for record in subscription:
                click.echo(json_line(record_dict(record)).decode())
                printed += 1
                if limit is not None and printed >= limit:
                    return
    except KeyboardInterrupt:
        return
