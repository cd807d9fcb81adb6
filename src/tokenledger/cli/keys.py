"""``tokenledger keys``: the access tokens' signing keys; ``tokenledger service-accounts
credentials``: a service account's OAuth2 client credentials.

Both are the keys of the OAuth2 side: the first sign access tokens (and never
enter the log), the second are what clients present to get them (issued and
revoked as ledger events, the secret shown once).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tokenledger.cli.app import CliContext
from tokenledger.cli.defaults import KEYS_FILE_ENV
from tokenledger.cli.dry_run import dry_run_option
from tokenledger.cli.lazy import LazyCommand, LazyGroup
from tokenledger.cli.output import echo_json, format_timestamp
from tokenledger.clock import SystemClock
from tokenledger.errors import ValidationError

if TYPE_CHECKING:
    from tokenledger.domain.model import ClientCredentialView
    from tokenledger.service.keys import KeyStore

__all__ = ["credentials", "keys"]

_KEYS_FILE = click.option(
    "--keys-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=KEYS_FILE_ENV,
    help="The key file (default: <db>.keys.json beside a SQLite file).",
)


def _store(obj: CliContext, keys_file: Path | None) -> KeyStore:
    # The key store brings cryptography and the store's URL parsing brings SQLAlchemy: only
    # the key commands need them, not the credentials commands or any --help.
    from tokenledger.service.keys import KeyStore
    from tokenledger.store import parse_database_url

    return KeyStore.from_environment(parse_database_url(obj.database_url), keys_file)


@click.group()
def keys() -> None:
    """Rotate and list the keys that sign access tokens."""


@keys.command("rotate")
@_KEYS_FILE
@click.option(
    "--retention",
    default="1d",
    show_default=True,
    help="Forget retired keys older than this (longer than any access token lives).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def rotate_command(obj: CliContext, keys_file: Path | None, retention: str, as_json: bool) -> None:
    """Create a new signing key and retire the current one (its public half stays
    published for --retention, so the tokens it signed still verify)."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    obj.require_operator("rotate the signing keys")
    keep = c.parse_duration(retention)
    if keep < timedelta(hours=1):
        raise ValidationError("--retention must be at least 1h (access tokens live that long)")
    store = _store(obj, keys_file)
    created = store.rotate(SystemClock().now(), retention=keep)
    if as_json:
        echo_json({"kid": created.kid, "alg": created.alg, "keys_file": store.describe()})
    else:
        click.echo(f"new signing key {created.kid} ({created.alg}) in {store.describe()}")


@keys.command("list")
@_KEYS_FILE
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def list_command(obj: CliContext, keys_file: Path | None, as_json: bool) -> None:
    """The signing keys, newest first (public information only)."""
    obj.require_operator("list the signing keys")
    ring = _store(obj, keys_file).ring()
    ordered = sorted(ring.keys, key=lambda k: k.created_at, reverse=True)
    rows = [
        {
            "kid": k.kid,
            "alg": k.alg,
            "status": "active" if ring.active is k else "retired",
            "created_at": k.created_at,
            "retired_at": k.retired_at,
        }
        for k in ordered
    ]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no signing keys: run 'tokenledger keys rotate'")
    for k in ordered:
        status = "active " if ring.active is k else "retired"
        click.echo(f"{k.kid}  {status}  {k.alg}  created {format_timestamp(k.created_at)}")


# -- client credentials ------------------------------------------------------------------------


def _credential_dict(credential: ClientCredentialView, now: datetime) -> dict[str, object]:
    return {
        "client_id": credential.client_id,
        "account_id": credential.account_id,
        "name": credential.name,
        "status": credential.status(now),
        "issued_at": credential.issued_at,
        "expires_at": credential.expires_at,
        "revoked_at": credential.revoked_at,
        "revoked_reason": credential.revoked_reason,
        "disabled_at": credential.disabled_at,
        "last_used": credential.last_used_at,
    }


@click.group(
    "credentials",
    cls=LazyGroup,
    # Suspension (cli/suspension.py).
    lazy_commands={
        "disable": LazyCommand("tokenledger.cli.suspension", "disable_credential"),
        "enable": LazyCommand("tokenledger.cli.suspension", "enable_credential"),
    },
)
def credentials() -> None:
    """OAuth2 client credentials of service accounts (for POST /oauth2/token)."""


@credentials.command("create")
@click.argument("account_id", metavar="SA_ID")
@click.option("--name", help="A name to recognise the credential by.")
@click.option("--expires-in", help="A lifetime such as 90d or 1y (default 1y).")
@click.option("--no-expiry", is_flag=True, help="Never expire (refused for admin accounts).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def create_credential_command(
    obj: CliContext,
    account_id: str,
    name: str | None,
    expires_in: str | None,
    no_expiry: bool,
    as_json: bool,
) -> None:
    """Issue a client id and secret for SA_ID and print the secret, once."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    command = c.build(
        c.IssueClientCredential,
        account_id=account_id,
        name=name,
        expires_in=c.parse_duration(expires_in) if expires_in is not None else None,
        no_expiry=no_expiry,
    )
    result = obj.execute(command)
    issued = result.outcome.credential_issued
    assert issued is not None  # an IssueClientCredential records one
    secret = result.secret
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
                "correlation_id": result.correlation_id,
            }
        )
        return
    expiry = format_timestamp(issued.expires_at) if issued.expires_at else "never"
    click.echo(f"issued client {issued.client_id} for {issued.account_id} (expires {expiry})")
    click.echo("The client secret follows. It will not be shown again: store it now.")
    click.echo(secret)


@credentials.command("list")
@click.argument("account_id", metavar="SA_ID")
@click.option("--all", "include_all", is_flag=True, help="Include revoked and expired ones.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def list_credentials_command(
    obj: CliContext, account_id: str, include_all: bool, as_json: bool
) -> None:
    """The client credentials of SA_ID (never their secrets)."""
    ledger = obj.ledger()
    found = ledger.client_credentials_of(obj.actor(), account_id, include_inactive=include_all)
    now = ledger.now()
    if as_json:
        echo_json([_credential_dict(cred, now) for cred in found])
        return
    for cred in found:
        state = f"revoked ({cred.revoked_reason})" if cred.revoked else cred.status(now)
        name = f"  {cred.name}" if cred.name else ""
        click.echo(f"{cred.client_id}  {state}{name}")


@credentials.command("revoke")
@click.argument("client_id")
@click.option("--reason", help="Why (recorded in the log).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def revoke_credential_command(
    obj: CliContext, client_id: str, reason: str | None, as_json: bool
) -> None:
    """Revoke CLIENT_ID: the access tokens it obtained answer inactive from now on."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    command = c.build(c.RevokeClientCredential, client_id=client_id, reason=reason)
    result = obj.execute(command)
    revoked = list(result.outcome.revoked_client_ids)
    if as_json:
        echo_json({"revoked_client_ids": revoked, "correlation_id": result.correlation_id})
    else:
        click.echo(f"revoked client credential {', '.join(revoked)}")


# Rotation lives in its own module (cli/rotation.py), beside tokens' own.
from tokenledger.cli.rotation import rotate_credential_command  # noqa: E402

credentials.add_command(rotate_credential_command)
