"""``tokenledger sessions``: users' login sessions (docs/login.md). Your own session is
``tokenledger auth``'s."""

from __future__ import annotations

import click

from tokenledger.cli.app import CliContext
from tokenledger.cli.dry_run import dry_run_option
from tokenledger.cli.output import echo_json, format_timestamp
from tokenledger.domain.model import SessionView

__all__ = ["sessions"]


@click.group()
def sessions() -> None:
    """List and end users' login sessions."""


def _session_dict(session: SessionView, status: str) -> dict[str, object]:
    return {
        "session_id": session.session_id,
        "principal": session.principal,
        "org": session.org,
        "issuer": session.issuer,
        "status": status,
        "started_at": format_timestamp(session.started_at),
        "expires_at": format_timestamp(session.expires_at) if session.expires_at else None,
        "refreshes": session.generation,
        "ended_at": format_timestamp(session.revoked_at) if session.revoked_at else None,
        "ended_reason": session.revoked_reason,
        "last_used": format_timestamp(session.last_used_at) if session.last_used_at else None,
    }


@sessions.command("list")
@click.argument("email")
@click.option("--all", "include_ended", is_flag=True, help="Also ended and expired sessions.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def list_command(obj: CliContext, email: str, include_ended: bool, as_json: bool) -> None:
    """EMAIL's sessions (for the user, an operator, and admins of each session's org)."""
    ledger = obj.ledger()
    found = ledger.sessions_of(obj.actor(), email, include_ended=include_ended)
    now = ledger.now()
    rows = [(session, session.status(now)) for session in found]
    if as_json:
        echo_json([_session_dict(session, status) for session, status in rows])
        return
    for session, status in rows:
        until = format_timestamp(session.expires_at) if session.expires_at else "-"
        click.echo(
            f"{session.session_id}  {session.org}  {status}  started "
            f"{format_timestamp(session.started_at)}  until {until}"
        )


@sessions.command("end")
@click.argument("session_id")
@click.option("--reason", help="Why, for the audit trail.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def end_command(obj: CliContext, session_id: str, reason: str | None, as_json: bool) -> None:
    """End SESSION_ID: its access tokens stop working at once (the user, an operator, or an
    admin of its org)."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    command = c.build(c.EndSession, session_id=session_id, reason=reason)
    result = obj.execute(command)
    if as_json:
        echo_json({"session_id": session_id, "correlation_id": result.correlation_id})
    else:
        click.echo(f"ended session {session_id}")
