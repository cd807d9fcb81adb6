"""``tokenledger audit``: query the log, explain a token, export events."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING

import click

from tokenledger.cli.app import CliContext
from tokenledger.cli.common import parse_timestamp
from tokenledger.cli.dry_run import dry_run_option
from tokenledger.cli.output import echo_json, format_timestamp, json_line
from tokenledger.errors import ValidationError

if TYPE_CHECKING:
    from tokenledger.domain import commands as c
    from tokenledger.domain.blast_radius import BlastRadius
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
@click.option(
    "--proof",
    is_flag=True,
    help="Attach to the JSON document ('proofs') an inclusion proof bundle of each event "
    "cited, against a signed checkpoint of the log now (implies --json).",
)
@click.pass_obj
def explain_command(obj: CliContext, token_id: str, as_json: bool, proof: bool) -> None:
    """A token's whole story: its issue, every change since, and why it was revoked."""
    actor = obj.actor()
    ledger = obj.ledger()
    if proof and obj.remote:
        # The server tells the story and proves it in one answer, against its own log key.
        story, proofs = ledger.explain_token_with_proofs(actor, token_id)  # type: ignore[union-attr]
        echo_json({**story.to_dict(), "proofs": proofs})
        return
    explanation = ledger.explain_token(actor, token_id)
    if proof:
        from tokenledger.cli.log_proofs import cited_event_bundles

        document = explanation.to_dict()
        document["proofs"] = cited_event_bundles(obj, explanation)
        echo_json(document)
        return
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


@audit.command("blast-radius")
@click.argument("token_id")
@click.option(
    "--revoke",
    is_flag=True,
    help="Withdraw every live thing of the radius in one command (its tokens, client and S3 "
    "credentials, issuer trusts, and the webhooks and endpoint trusts made through it): "
    "lists them; withdraws only with --yes.",
)
@click.option("--yes", is_flag=True, help="With --revoke: withdraw what it lists.")
@click.option("--reason", help="With --revoke: why (recorded in the log).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def blast_radius_command(
    obj: CliContext, token_id: str, revoke: bool, yes: bool, reason: str | None, as_json: bool
) -> None:
    """Everything done through TOKEN_ID, transitively: the tokens and credentials it issued
    (for anyone) or derived, what those issued in turn, the commands acted through any of
    them and what they changed, and which of it is still live. What the caller may not see
    is counted, not shown."""
    from tokenledger.cli.tokens import token_id_arg

    if (yes or reason is not None) and not revoke:
        raise ValidationError("--yes and --reason go with --revoke")
    found = obj.ledger().blast_radius(obj.actor(), token_id_arg(token_id))
    if not revoke:
        if as_json:
            echo_json(found.to_dict())
        else:
            for line in found.lines():
                click.echo(line)
        return
    # Refused before anything is shown when the walk was cut short (nothing revoked in part).
    command = found.revocation(reason)
    if not as_json:  # the radius first (and what --revoke leaves), then what revoking does
        for line in found.lines():
            click.echo(line)
        click.echo("")
    _revoke_radius(obj, found, command, yes, as_json)


def _revoke_radius(
    obj: CliContext,
    found: BlastRadius,
    command: c.RevokeCredentials | None,
    yes: bool,
    as_json: bool,
) -> None:
    """``--revoke``: the preview (without ``yes``), the dry run or the withdrawal."""
    from tokenledger.domain.blast_radius import withdrawn_ids, withdrawn_lines

    left = list(found.left_lines())
    if command is None:
        # Nothing left to withdraw is an answer, not an error: a second run ends here.
        if as_json:
            echo_json(
                {"token_id": found.token_id, "count": 0, **withdrawn_ids(()), "not_withdrawn": left}
            )
        elif any(w.refused for w in found.withdrawals) or found.hidden_credentials:
            click.echo(
                f"nothing live in the blast radius of {found.token_id} that you may withdraw: "
                "nothing to revoke (what is left is listed above)"
            )
        else:
            click.echo(f"nothing live in the blast radius of {found.token_id}: nothing to revoke")
        return
    if not yes and not obj.dry_run:
        # The decision itself, on a read snapshot: the list is what --yes withdraws (the
        # tokens derived from the radius's included), and a refusal comes now, alike.
        events = obj.ledger().preview(command, obj.actor()).events
        if as_json:
            withdrawn = withdrawn_ids(events)
            echo_json(
                {
                    "token_id": found.token_id,
                    "dry_run": True,
                    "count": sum(len(ids) for ids in withdrawn.values()),
                    **withdrawn,
                    "not_withdrawn": left,
                }
            )
            return
        click.echo(
            "these would be withdrawn (credentials and trusts revoked, webhooks deleted); "
            "nothing was revoked (add --yes to revoke them):"
        )
        for line in withdrawn_lines(events):
            click.echo(f"  {line}")
        return
    result = obj.execute(command)
    if as_json:
        echo_json(
            {
                "token_id": found.token_id,
                **withdrawn_ids(result.events),
                "correlation_id": result.correlation_id,
                "not_withdrawn": left,
            }
        )
        return
    click.echo(f"revoked (correlation {result.correlation_id}):")
    for line in withdrawn_lines(result.events):
        click.echo(f"  {line}")


def _add_who_can() -> None:
    """``audit who-can`` (cli/temporal.py): who could act on a resource at a moment."""
    from tokenledger.cli.temporal import who_can_command

    audit.add_command(who_can_command)


_add_who_can()
