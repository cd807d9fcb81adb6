"""``tokenledger auth``: use a token's secret with other tools."""

from __future__ import annotations

import os

import click

from tokenledger.cli.app import TOKEN_ENV
from tokenledger.cli.output import echo_json
from tokenledger.domain.secrets import parse_secret
from tokenledger.errors import ValidationError

__all__ = ["auth"]


@click.group()
def auth() -> None:
    """Log in to a server, and present tokens to other tools."""


@auth.command("header")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def header_command(as_json: bool) -> None:
    """Print 'Authorization: Bearer <secret>' for TOKENLEDGER_TOKEN (e.g. for curl -H)."""
    secret = os.environ.get(TOKEN_ENV, "").strip()
    if not secret:
        raise ValidationError(f"{TOKEN_ENV} is not set: export a token's secret in it first")
    parse_secret(secret)  # a malformed or mistyped secret fails here, without being shown
    if as_json:
        echo_json({"Authorization": f"Bearer {secret}"})
    else:
        click.echo(f"Authorization: Bearer {secret}")
