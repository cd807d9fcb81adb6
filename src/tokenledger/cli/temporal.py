"""``tokenledger audit who-can`` and ``tokenledger tokens live``: who could act on a
resource at a moment, and which tokens were usable during a window."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import click
import msgspec

from tokenledger.cli.app import CliContext
from tokenledger.cli.common import parse_timestamp
from tokenledger.cli.grants import grant_dicts, parse_level, token_holder
from tokenledger.cli.output import echo_json, format_timestamp
from tokenledger.errors import ValidationError

if TYPE_CHECKING:
    from tokenledger.domain.model import TokenView
    from tokenledger.domain.who_can import Path, WhoCan

__all__ = ["live_tokens_command", "parse_window", "who_can_command"]


@click.command("who-can")
@click.argument("resource")
@click.argument("level")
@click.option("--at", "at_time", metavar="TIME", help="At this past time (ISO 8601); default now.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def who_can_command(
    obj: CliContext, resource: str, level: str, at_time: str | None, as_json: bool
) -> None:
    """Every principal and usable token that could do LEVEL on RESOURCE, and how."""
    at = parse_timestamp(at_time, "--at") if at_time is not None else None
    ledger = obj.ledger()
    answer, position = ledger.who_can(obj.actor(), resource, parse_level(level), at=at)
    moment = at if at is not None else ledger.now()
    if as_json:
        echo_json(
            {
                **msgspec.to_builtins(answer, builtin_types=(datetime,)),
                "at": moment,
                "as_of_position": position,
            }
        )
        return
    _echo_who_can(answer, format_timestamp(moment), position)


def _echo_who_can(answer: WhoCan, moment: str, position: int) -> None:
    click.echo(f"{answer.level} on {answer.resource} as of {moment} (log position {position}):")
    if not answer.principals:
        click.echo("  nobody")
    for holder in answer.principals:
        click.echo(f"  {holder.principal}  via {_paths(holder.paths)}")
    click.echo(f"usable tokens: {len(answer.tokens)}")
    for token in answer.tokens:
        name = f"  {token.name}" if token.name else ""
        grant = token.grant or "its role's grants"
        click.echo(f"  {token.token_id}  {token.principal}  {token.level} by {grant}{name}")


def _paths(paths: tuple[Path, ...]) -> str:
    return ", ".join(f"{path.grant} ({path.via})" for path in paths)


def parse_window(text: str, option: str = "--during") -> tuple[datetime, datetime]:
    """``FROM..TO``, two ISO 8601 times (UTC when they name no zone)."""
    start, separator, end = text.partition("..")
    if not separator or not start.strip() or not end.strip():
        raise ValidationError(
            f"invalid {option} {text.strip()[:80]!r}: expected FROM..TO, two ISO 8601 times"
            " such as 2030-01-01T00:00Z..2030-01-31T00:00Z"
        )
    return parse_timestamp(start, f"{option} start"), parse_timestamp(end, f"{option} end")


@click.command("live")
@click.option("--during", required=True, metavar="FROM..TO", help="The window (ISO 8601 times).")
@click.option(
    "--principal",
    help="Only this principal's tokens: a user's email, a service account's id or a role"
    " (ORG:ROLE) for its keys.",
)
@click.option("--resource", help="Only tokens allowing at least read on this resource.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def live_tokens_command(
    obj: CliContext,
    during: str,
    principal: str | None,
    resource: str | None,
    as_json: bool,
) -> None:
    """The tokens usable at any moment of a window, each as it stood when it first was."""
    start, end = parse_window(during)
    found = obj.ledger().live_tokens(
        obj.actor(),
        start,
        end,
        principal=token_holder(principal) if principal is not None else None,
        resource=resource,
    )
    if as_json:
        echo_json([_live_dict(live.token, live.usable_at) for live in found])
        return
    if not found:
        click.echo("no token was usable during the window")
    for live in found:
        token = live.token
        name = f"  {token.name}" if token.name else ""
        click.echo(
            f"{token.token_id}  {token.principal}  usable at {format_timestamp(live.usable_at)}"
            f"{name}"
        )


def _live_dict(token: TokenView, usable_at: datetime) -> dict[str, Any]:
    return {
        "token_id": token.token_id,
        "principal": token.principal,
        "kind": token.kind,
        "name": token.name,
        "grants": grant_dicts(token.grants),
        "issued_at": token.issued_at,
        "expires_at": token.expires_at,
        "parent_id": token.parent_id,
        "usable_at": usable_at,
    }
