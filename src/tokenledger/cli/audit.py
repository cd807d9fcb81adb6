"""``tokenledger audit``: query the log, explain a token, export events."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING

import click

from tokenledger.cli.app import CliContext
from tokenledger.cli.common import parse_timestamp
from tokenledger.cli.output import echo_json, format_timestamp, json_line

if TYPE_CHECKING:
    from tokenledger.projections.audit_queries import AuditEntry

__all__ = ["audit"]


@click.group("audit", invoke_without_command=True)
@click.option("--actor", help="Who acted: operator:NAME, an email or a service account id.")
@click.option("--subject", help="Any org, user, service account, resource or token id concerned.")
@click.option("--type", "event_type", help="An event type, e.g. TokenRevoked.")
@click.option("--since", metavar="TIME", help="From this time on (ISO 8601, inclusive).")
@click.option("--until", metavar="TIME", help="Before this time (ISO 8601, exclusive).")
@click.option("--correlation-id", help="Every event of one command and its cascade.")
@click.option("--limit", type=click.IntRange(min=1, max=10_000), default=50, show_default=True)
@click.option("--oldest-first", is_flag=True, help="Oldest first (default: newest first).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--jsonl", "as_jsonl", is_flag=True, help="Print one JSON line per event.")
@click.pass_context
def audit(
    ctx: click.Context,
    actor: str | None,
    subject: str | None,
    event_type: str | None,
    since: str | None,
    until: str | None,
    correlation_id: str | None,
    limit: int,
    oldest_first: bool,
    as_json: bool,
    as_jsonl: bool,
) -> None:
    """Who did what, when and why: the events matching every filter given."""
    if ctx.invoked_subcommand is not None:
        return
    from tokenledger.projections.audit_queries import AuditQuery

    obj: CliContext = ctx.obj
    query = AuditQuery(
        actor=actor,
        subject=subject,
        event_type=event_type,
        since=parse_timestamp(since, "--since") if since else None,
        until=parse_timestamp(until, "--until") if until else None,
        correlation_id=correlation_id,
        limit=limit,
        oldest_first=oldest_first,
    )
    entries = obj.ledger().audit_search(obj.actor(), query)
    if as_json:
        echo_json([entry.to_dict() for entry in entries])
    elif as_jsonl:
        for entry in entries:
            click.echo(json_line(entry.to_dict()).decode())
    else:
        for entry in entries:
            click.echo(_line(entry))


def _line(entry: AuditEntry) -> str:
    record = entry.record
    return (
        f"#{record.position:<7} {format_timestamp(record.recorded_at)}  {record.actor:<32} "
        f"{entry.summary}"
    )


@audit.command("explain")
@click.argument("token_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def explain_command(obj: CliContext, token_id: str, as_json: bool) -> None:
    """A token's whole story: its issue, every change since, and why it was revoked."""
    explanation = obj.ledger().explain_token(obj.actor(), token_id)
    if as_json:
        echo_json(explanation.to_dict())
        return
    for line in explanation.lines():
        click.echo(line)


@audit.command("export")
@click.option("--since", metavar="TIME", help="From this time on (ISO 8601, inclusive).")
@click.option("--until", metavar="TIME", help="Before this time (ISO 8601, exclusive).")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["jsonl", "cloudevents"]),
    default="jsonl",
    show_default=True,
)
@click.option(
    "--source",
    default="urn:tokenledger",
    show_default=True,
    help="The CloudEvents source attribute.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of standard output.",
)
@click.pass_obj
def export_command(
    obj: CliContext,
    since: str | None,
    until: str | None,
    output_format: str,
    source: str,
    output: Path | None,
) -> None:
    """Write events for SIEM tools, one JSON object per line (no secret is ever in the log)."""
    from tokenledger.projections.audit_queries import export

    obj.require_operator("export the whole log")
    ledger = obj.ledger()
    entries = export(
        ledger.store,
        since=parse_timestamp(since, "--since") if since else None,
        until=parse_timestamp(until, "--until") if until else None,
    )
    if output is None:
        _write(sys.stdout, entries, output_format, source)
        return
    with output.open("w", encoding="utf-8") as stream:
        _write(stream, entries, output_format, source)


def _write(stream: IO[str], entries: Iterable[AuditEntry], output_format: str, source: str) -> None:
    from tokenledger.projections.audit_queries import cloudevent

    for entry in entries:
        document = cloudevent(entry, source) if output_format == "cloudevents" else entry.to_dict()
        stream.write(json_line(document).decode() + "\n")


def _add_who_can() -> None:
    """``audit who-can`` (cli/temporal.py): who could act on a resource at a moment."""
    from tokenledger.cli.temporal import who_can_command

    audit.add_command(who_can_command)


_add_who_can()
