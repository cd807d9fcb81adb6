"""``tokenledger orgs policy``: an org's token policy (set, get, clear)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import click

from tokenledger.cli.app import CliContext
from tokenledger.cli.dry_run import dry_run_option, show_preview
from tokenledger.cli.output import echo_json, format_timestamp
from tokenledger.domain.names import shown
from tokenledger.errors import ValidationError

if TYPE_CHECKING:
    from tokenledger.domain import commands as c
    from tokenledger.domain.model import OrgPolicyView
    from tokenledger.domain.org_policy import Breach
    from tokenledger.service.commands import CommandPreview

__all__ = ["policy"]


@click.group("policy")
def policy() -> None:
    """An org's token policy: lifetimes, expiry, admin tokens, live tokens per principal."""


def _lifetimes(pairs: Sequence[str]) -> dict[str, timedelta]:
    """``KIND=DURATION`` pairs (``service=90d``); a kind named twice is refused."""
    from tokenledger.domain import commands as c

    found: dict[str, timedelta] = {}
    for pair in pairs:
        kind, sep, duration = pair.partition("=")
        kind = kind.strip()
        if not sep or not kind or not duration.strip():
            raise ValidationError(
                f"--max-lifetime takes KIND=DURATION, e.g. service=90d (not {shown(pair)})"
            )
        if kind in found:
            raise ValidationError(f"--max-lifetime names {shown(kind)} twice")
        found[kind] = c.parse_duration(duration)
    return found


def policy_dict(found: OrgPolicyView) -> dict[str, Any]:
    from tokenledger.domain.org_policy import duration_text

    admin = found.max_admin_lifetime
    return {
        "org": found.org,
        "max_lifetime": {kind: duration_text(d) for kind, d in found.max_lifetime.items()},
        "require_expiry": found.require_expiry,
        "max_admin_lifetime": duration_text(admin) if admin is not None else None,
        "max_live_tokens": found.max_live_tokens,
        "set_at": found.set_at,
    }


def _policy_lines(found: OrgPolicyView) -> list[str]:
    described = policy_dict(found)
    lines = [f"policy of org {found.org}:"]
    for kind, duration in described["max_lifetime"].items():
        lines.append(f"  {kind} tokens live at most {duration}")
    if found.require_expiry:
        lines.append("  every token must expire")
    if described["max_admin_lifetime"] is not None:
        admin = described["max_admin_lifetime"]
        lines.append(f"  tokens with an admin grant live at most {admin}")
    if found.max_live_tokens is not None:
        lines.append(f"  a principal holds at most {found.max_live_tokens} live tokens")
    return lines


def breach_dict(breach: Breach) -> dict[str, Any]:
    return {
        "token_id": breach.token_id,
        "principal": breach.principal,
        "kind": breach.kind,
        "expires_at": breach.expires_at,
        "rule": breach.rule,
        "capped_at": breach.capped_at,
    }


def _breach_line(breach: Breach) -> str:
    expiry = format_timestamp(breach.expires_at) if breach.expires_at else "never"
    fix = (
        f"cap: expires {format_timestamp(breach.capped_at)}"
        if breach.capped_at is not None
        else "not capped: revoke tokens to come under the count"
    )
    return (
        f"{breach.token_id}  {breach.principal}  {breach.kind}  expires {expiry}  "
        f"breaks: {breach.rule}  ({fix})"
    )


@policy.command("set")
@click.argument("org")
@click.option(
    "--max-lifetime",
    "lifetimes",
    multiple=True,
    metavar="KIND=DURATION",
    help="The longest lifetime of a kind of token (service, personal, derived, role, client), "
    "e.g. service=90d (repeatable).",
)
@click.option("--require-expiry", is_flag=True, help="Every token must expire.")
@click.option("--max-admin-lifetime", help="The longest lifetime of a token with an admin grant.")
@click.option("--max-live-tokens", type=int, help="The most live tokens one principal may hold.")
@click.option(
    "--existing",
    type=click.Choice(["cap", "leave"]),
    help="Live tokens that break it: bring their expiry within it (cap), or leave them.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def set_command(
    obj: CliContext,
    org: str,
    lifetimes: tuple[str, ...],
    require_expiry: bool,
    max_admin_lifetime: str | None,
    max_live_tokens: int | None,
    existing: str | None,
    as_json: bool,
) -> None:
    """Set ORG's token policy, replacing any earlier one. Issuing outside it is refused.

    When live tokens break it, first see them with --dry-run, then choose --existing cap
    (their expiry is brought within it, one event per token) or --existing leave. A
    principal over the live-token count keeps its tokens; it issues no more until under it.
    """
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    command = c.build(
        c.SetOrgPolicy,
        org=org,
        max_lifetime=_lifetimes(lifetimes),
        require_expiry=require_expiry,
        max_admin_lifetime=(
            c.parse_duration(max_admin_lifetime) if max_admin_lifetime is not None else None
        ),
        max_live_tokens=max_live_tokens,
        existing=existing,
    )
    if obj.dry_run:
        _dry_run(obj, command, as_json)
        return
    result = obj.execute(command)
    from tokenledger.domain.events import (
        ClientCredentialExpiryShortened,
        OrgPolicySet,
        TokenExpiryShortened,
    )

    capped = [
        (e.token_id if isinstance(e, TokenExpiryShortened) else e.client_id, e.expires_at)
        for e in result.events
        if isinstance(e, TokenExpiryShortened | ClientCredentialExpiryShortened)
    ]
    set_event = next(e for e in result.events if isinstance(e, OrgPolicySet))
    if as_json:
        echo_json(
            {
                "org": set_event.org,
                "dry_run": False,
                "capped": [{"token_id": i, "expires_at": when} for i, when in capped],
                "correlation_id": result.correlation_id,
            }
        )
        return
    click.echo(f"set the policy of org {set_event.org}")
    for capped_id, expires_at in capped:
        click.echo(f"capped {capped_id}: expires {format_timestamp(expires_at)}")


def _dry_run(obj: CliContext, command: c.SetOrgPolicy, as_json: bool) -> None:
    """The live tokens that break the policy, then what setting it would append (or why it
    would be refused: breaches need --existing)."""
    from tokenledger.errors import LedgerError

    ledger, actor = obj.ledger(), obj.actor()
    found = ledger.policy_dry_run(actor, command)
    try:
        preview: CommandPreview | None = ledger.preview(command, actor)
        refusal = None
    except LedgerError as refused:
        preview, refusal = None, str(refused)
    if as_json:
        echo_json(
            {
                "org": command.org,
                "dry_run": True,
                "breaches": [breach_dict(b) for b in found],
                "refused": refusal,
                "log_position": preview.log_position if preview is not None else None,
                "events": preview.event_dicts() if preview is not None else [],
            }
        )
        return
    if not found:
        click.echo(f"no live token breaks this policy of org {command.org}")
    else:
        click.echo(f"{len(found)} live token(s) break this policy of org {command.org}:")
    for breach in found:
        click.echo(f"  {_breach_line(breach)}")
    if preview is not None:
        show_preview(preview, as_json=False)
    else:
        click.echo(f"setting it would be refused: {refusal}")


@policy.command("get")
@click.argument("org")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def get_command(obj: CliContext, org: str, as_json: bool) -> None:
    """ORG's token policy."""
    found = obj.ledger().org_policy(obj.actor(), org)
    if as_json:
        echo_json(policy_dict(found) if found is not None else None)
    elif found is None:
        click.echo(f"org {org} has no policy")
    else:
        for line in _policy_lines(found):
            click.echo(line)


@policy.command("clear")
@click.argument("org")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def clear_command(obj: CliContext, org: str, as_json: bool) -> None:
    """Remove ORG's token policy: issuing follows the ledger's own rules only."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    command = c.build(c.ClearOrgPolicy, org=org)
    result = obj.execute(command)
    if as_json:
        echo_json({"org": command.org, "correlation_id": result.correlation_id})
    else:
        click.echo(f"cleared the policy of org {command.org}")
