"""``tokenledger tokens rotate`` and ``tokenledger service-accounts credentials rotate``:
a successor issued, the old one's expiry brought forward to the overlap's end."""

from __future__ import annotations

import click

from tokenledger.cli.app import CliContext
from tokenledger.cli.dry_run import dry_run_option
from tokenledger.cli.output import echo_json, format_timestamp

__all__ = ["rotate_credential_command", "rotate_token_command"]

_OVERLAP_HELP = (
    "How long the old one keeps working beside its successor (e.g. 24h, 7d; 0: it "
    "expires now; at most 30d)."
)


@click.command("rotate")
@click.argument("token_id")
@click.option("--overlap", default="24h", show_default=True, help=_OVERLAP_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def rotate_token_command(obj: CliContext, token_id: str, overlap: str, as_json: bool) -> None:
    """Issue a successor of TOKEN_ID (same principal, grants, name and lifetime) and print its
    secret, once; TOKEN_ID expires when the overlap ends. Tokens derived from it expire with
    it. Rotating a rotated token again is allowed: each rotation extends the chain."""
    # cli/tokens.py registers this command: its printing is imported when the command runs.
    from tokenledger.cli.tokens import _echo_issued, _issued_dict, token_id_arg
    from tokenledger.domain import commands as c  # pydantic loads with a command only
    from tokenledger.domain.events import TokenRotated

    command = c.build(
        c.RotateToken, token_id=token_id_arg(token_id), overlap=c.parse_overlap(overlap)
    )
    result = obj.execute(command)
    issued, secret = result.issued, result.secret
    rotated = next(e for e in result.events if isinstance(e, TokenRotated))
    assert issued is not None  # a rotation issues exactly one token, with its secret
    assert secret is not None
    if as_json:
        echo_json(
            {
                **_issued_dict(issued, result),
                "rotated_token_id": rotated.token_id,
                "rotated_expires_at": rotated.expires_at,
            }
        )
        return
    click.echo(f"rotated {rotated.token_id}: it expires {format_timestamp(rotated.expires_at)}")
    _echo_issued(issued, secret)


@click.command("rotate")
@click.argument("client_id")
@click.option("--overlap", default="24h", show_default=True, help=_OVERLAP_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def rotate_credential_command(obj: CliContext, client_id: str, overlap: str, as_json: bool) -> None:
    """Issue a successor of CLIENT_ID (same account, name and lifetime) and print its secret,
    once; both secrets work until the overlap ends, then only the new one."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only
    from tokenledger.domain.events import ClientCredentialRotated

    command = c.build(
        c.RotateClientCredential, client_id=client_id, overlap=c.parse_overlap(overlap)
    )
    result = obj.execute(command)
    issued = result.outcome.credential_issued
    rotated = next(e for e in result.events if isinstance(e, ClientCredentialRotated))
    secret = result.secret
    assert issued is not None  # a rotation issues exactly one credential, with its secret
    assert secret is not None
    if as_json:
        echo_json(
            {
                "client_id": issued.client_id,
                "client_secret": secret,
                "account_id": issued.account_id,
                "name": issued.name,
                "issued_at": issued.issued_at,
                "expires_at": issued.expires_at,
                "rotated_client_id": rotated.client_id,
                "rotated_expires_at": rotated.expires_at,
                "correlation_id": result.correlation_id,
            }
        )
        return
    expiry = format_timestamp(issued.expires_at) if issued.expires_at else "never"
    click.echo(f"rotated {rotated.client_id}: it expires {format_timestamp(rotated.expires_at)}")
    click.echo(f"issued client {issued.client_id} for {issued.account_id} (expires {expiry})")
    click.echo("The client secret follows. It will not be shown again: store it now.")
    click.echo(secret)
