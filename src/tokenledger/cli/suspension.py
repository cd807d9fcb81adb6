"""``tokens disable/enable``, ``service-accounts disable/enable`` and ``service-accounts
credentials disable/enable``: suspending credentials, reversibly.

Each command only builds the command and prints what it did; what a suspension means, who
may ask for it and what enabling brings back are decided in ``domain.decide_suspension``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from tokenledger.cli.app import CliContext
from tokenledger.cli.dry_run import dry_run_option
from tokenledger.cli.output import echo_json
from tokenledger.cli.tokens import token_id_arg

if TYPE_CHECKING:
    from tokenledger.domain import commands as c
    from tokenledger.service import CommandResult

__all__ = [
    "disable_account",
    "disable_credential",
    "disable_token",
    "enable_account",
    "enable_credential",
    "enable_token",
]

_REASON = click.option("--reason", help="Why (recorded in the log).")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")


def _run(obj: CliContext, command: c.Command) -> CommandResult:
    return obj.execute(command)


def _echo(as_json: bool, document: dict[str, Any], line: str) -> None:
    if as_json:
        echo_json(document)
    else:
        click.echo(line)


def _echo_tokens(result: CommandResult, as_json: bool, token_id: str, verb: str) -> None:
    changed = list(result.outcome.disabled if verb == "disabled" else result.outcome.enabled)
    derived = [t for t in changed if t != token_id]
    line = f"{verb} token {token_id}"
    if derived:
        line += f" and {len(derived)} derived from it: {', '.join(derived)}"
    _echo(
        as_json,
        {"token_id": token_id, verb: changed, "correlation_id": result.correlation_id},
        line,
    )


# -- tokens --------------------------------------------------------------------------------


@click.command("disable")
@click.argument("token_id")
@_REASON
@_JSON
@dry_run_option
@click.pass_obj
def disable_token(obj: CliContext, token_id: str, reason: str | None, as_json: bool) -> None:
    """Suspend TOKEN_ID (and the tokens derived from it): it answers 'disabled' until enabled.

    Nothing is revoked: 'tokens enable' brings it back, unless it is revoked or expires
    meanwhile.
    """
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    command = c.build(c.DisableToken, token_id=token_id_arg(token_id), reason=reason)
    _echo_tokens(_run(obj, command), as_json, command.token_id, "disabled")


@click.command("enable")
@click.argument("token_id")
@_JSON
@dry_run_option
@click.pass_obj
def enable_token(obj: CliContext, token_id: str, as_json: bool) -> None:
    """Lift TOKEN_ID's suspension (and that of the tokens disabled with it)."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    command = c.build(c.EnableToken, token_id=token_id_arg(token_id))
    _echo_tokens(_run(obj, command), as_json, command.token_id, "enabled")


# -- service accounts ------------------------------------------------------------------------


@click.command("disable")
@click.argument("account_id", metavar="SA_ID")
@_REASON
@_JSON
@dry_run_option
@click.pass_obj
def disable_account(obj: CliContext, account_id: str, reason: str | None, as_json: bool) -> None:
    """Suspend SA_ID: all its credentials answer 'disabled' at once, until it is enabled.

    Its tokens, client credentials (and their access tokens), exchanged tokens and S3
    credentials are kept, not revoked.
    """
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    command = c.build(c.DisableServiceAccount, account_id=account_id, reason=reason)
    result = _run(obj, command)
    _echo(
        as_json,
        {"id": command.account_id, "disabled": True, "correlation_id": result.correlation_id},
        f"disabled service account {command.account_id}: all its credentials are suspended",
    )


@click.command("enable")
@click.argument("account_id", metavar="SA_ID")
@_JSON
@dry_run_option
@click.pass_obj
def enable_account(obj: CliContext, account_id: str, as_json: bool) -> None:
    """Lift SA_ID's suspension: its credentials work again, unless revoked or expired."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    command = c.build(c.EnableServiceAccount, account_id=account_id)
    result = _run(obj, command)
    _echo(
        as_json,
        {"id": command.account_id, "disabled": False, "correlation_id": result.correlation_id},
        f"enabled service account {command.account_id}",
    )


# -- client credentials ----------------------------------------------------------------------


@click.command("disable")
@click.argument("client_id")
@_REASON
@_JSON
@dry_run_option
@click.pass_obj
def disable_credential(obj: CliContext, client_id: str, reason: str | None, as_json: bool) -> None:
    """Suspend CLIENT_ID: it obtains nothing and its access tokens answer 'disabled'."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    command = c.build(c.DisableClientCredential, client_id=client_id, reason=reason)
    result = _run(obj, command)
    _echo(
        as_json,
        {"client_id": command.client_id, "disabled": True, "correlation_id": result.correlation_id},
        f"disabled client credential {command.client_id}",
    )


@click.command("enable")
@click.argument("client_id")
@_JSON
@dry_run_option
@click.pass_obj
def enable_credential(obj: CliContext, client_id: str, as_json: bool) -> None:
    """Lift CLIENT_ID's suspension: it works again, unless revoked or expired."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    command = c.build(c.EnableClientCredential, client_id=client_id)
    result = _run(obj, command)
    _echo(
        as_json,
        {
            "client_id": command.client_id,
            "disabled": False,
            "correlation_id": result.correlation_id,
        },
        f"enabled client credential {command.client_id}",
    )
