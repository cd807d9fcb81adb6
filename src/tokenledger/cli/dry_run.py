"""``--dry-run``: one option for every command that appends, and how a preview is shown.

A command given ``--dry-run`` runs as usual up to its command, which ``CliContext.execute``
(or ``CliContext.previewing``, around a call that runs one) previews instead of running: the
events it would append are printed, nothing is appended, and the command ends there with exit
code 0. A command the ledger would refuse is refused alike, with the same line and exit code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from tokenledger.cli.output import echo_json

if TYPE_CHECKING:
    from tokenledger.service.commands import CommandPreview

__all__ = ["DRY_RUN_OPTION", "dry_run_option", "show_preview"]

F = TypeVar("F", bound=Callable[..., Any])

#: The option's name, as a test walking the commands looks for it.
DRY_RUN_OPTION = "--dry-run"


def _remember(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    from tokenledger.cli.app import CliContext

    context = ctx.find_object(CliContext)
    if context is not None and value:
        context.dry_run = True


def dry_run_option(command: F) -> F:
    """Give ``command`` the ``--dry-run`` flag (seen by ``CliContext.execute``, not passed
    to the command's function)."""
    option = click.option(
        DRY_RUN_OPTION,
        is_flag=True,
        expose_value=False,
        callback=_remember,
        help="Show the events this would append (and the tokens it would revoke); append nothing.",
    )
    return option(command)


def show_preview(preview: CommandPreview, *, as_json: bool) -> None:
    """Print what a dry run found: the full events as JSON, or a line per event."""
    if as_json:
        echo_json(
            {
                "dry_run": True,
                "log_position": preview.log_position,
                "revoked": list(preview.outcome.revoked),
                "revoked_client_ids": list(preview.outcome.revoked_client_ids),
                "revoked_access_key_ids": list(preview.outcome.revoked_access_key_ids),
                "events": preview.event_dicts(),
            }
        )
        return
    count = len(preview.events)
    click.echo(
        f"dry run: {count} event(s) would be appended after position "
        f"{preview.log_position}; nothing was appended"
    )
    for record in preview.records:
        click.echo(f"  {record.event_type}  {record.stream_id}{_affected(record.data)}")


def _affected(data: bytes) -> str:
    """The ids an event names besides its stream (a token's principal, a revoked parent)."""
    import msgspec

    fields = msgspec.json.decode(data)
    if not isinstance(fields, dict):
        return ""
    named = [
        f"{key}={value}"
        for key, value in fields.items()
        if isinstance(value, str) and key in _ID_FIELDS
    ]
    return f"  ({', '.join(named)})" if named else ""


#: The fields worth naming on an event's line: who and what it affects.
_ID_FIELDS = frozenset(
    {
        "principal",
        "email",
        "org",
        "path",
        "resource",
        "account_id",
        "client_id",
        "token_id",
        "parent_token_id",
        "session_id",
        "webhook_id",
        "endpoint_id",
        "access_key_id",
        "role",
        "cause",
    }
)
