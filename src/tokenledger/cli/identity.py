"""``tokenledger orgs set-idp`` and ``orgs get``: the OpenID Connect provider an org's
members log in through (see docs/login.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tokenledger.cli.app import CliContext
from tokenledger.cli.dry_run import dry_run_option
from tokenledger.cli.grants import org_name
from tokenledger.cli.output import echo_json, format_timestamp
from tokenledger.domain.names import shown
from tokenledger.errors import ValidationError

__all__ = ["get_org", "set_idp"]

#: More than any provider's client secret; a longer file is not one.
_MAX_SECRET_FILE = 4096


def _read_secret(source: str) -> str:
    """The provider's client secret from a file ('-': standard input), never shown."""
    try:
        if source == "-":
            data = sys.stdin.buffer.read(_MAX_SECRET_FILE + 1) if sys.stdin is not None else b""
        else:
            with Path(source).open("rb") as handle:
                data = handle.read(_MAX_SECRET_FILE + 1)
    except OSError as exc:
        raise ValidationError(
            f"cannot read the client secret file {shown(source)}: {exc.strerror}"
        ) from None
    if len(data) > _MAX_SECRET_FILE:
        raise ValidationError("the client secret file is too long to hold one secret")
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValidationError("the client secret file is not UTF-8 text") from None


@click.command("set-idp")
@click.argument("org")
@click.option("--issuer", required=True, help="The provider's issuer URL (https).")
@click.option("--client-id", required=True, help="The ledger's client id at the provider.")
@click.option(
    "--client-secret-file",
    help="A file holding its client secret, if it needs one ('-': standard input); kept "
    "with the signing keys, never in the log.",
)
@click.option(
    "--session-lifetime", help="How long a session lives at most, e.g. 7d (default and most: 30d)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def set_idp(
    obj: CliContext,
    org: str,
    issuer: str,
    client_id: str,
    client_secret_file: str | None,
    session_lifetime: str | None,
    as_json: bool,
) -> None:
    """Let ORG's members log in through the OpenID Connect provider at --issuer.

    Register <server>/oauth2/callback as a redirect URI at the provider. Another provider
    than the one set before ends every session the old one started.
    """
    from tokenledger.domain.commands import parse_duration

    secret = _read_secret(client_secret_file) if client_secret_file is not None else None
    lifetime = parse_duration(session_lifetime) if session_lifetime is not None else None
    keys = None
    if not obj.remote:
        from tokenledger.service.keys import KeyStore
        from tokenledger.store import parse_database_url

        keys = KeyStore.from_environment(parse_database_url(obj.database_url))
    ledger = obj.ledger()
    actor = obj.actor()
    with obj.previewing():
        ledger.set_identity_provider(
            actor,
            keys,
            org=org,
            issuer=issuer,
            oidc_client_id=client_id,
            client_secret=secret,
            session_lifetime=lifetime,
            dry_run=obj.dry_run,
        )
    provider = ledger.identity_provider(actor, org)
    if as_json:
        echo_json(_provider_dict(provider))
    else:
        kept = ", client secret kept with the signing keys" if provider.client_secret else ""
        click.echo(f"org {provider.org} logs in through {provider.issuer}{kept}")


def _provider_dict(provider: object) -> dict[str, object]:
    from tokenledger.domain.model import IdentityProviderView

    assert isinstance(provider, IdentityProviderView)
    return {
        "org": provider.org,
        "issuer": provider.issuer,
        "client_id": provider.oidc_client_id,
        "client_secret": provider.client_secret,
        "session_lifetime_seconds": int(provider.session_lifetime.total_seconds()),
        "set_at": format_timestamp(provider.set_at),
    }


@click.command("get")
@click.argument("org")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def get_org(obj: CliContext, org: str, as_json: bool) -> None:
    """ORG and how its members log in (for whoever may read ORG)."""
    from tokenledger.errors import NotFound

    name = org_name(org)
    ledger = obj.ledger()
    actor = obj.actor()
    members = ledger.members(actor, name)  # refused unless the actor may read the org
    try:
        provider = _provider_dict(ledger.identity_provider(actor, name))
    except NotFound:
        provider = None
    if as_json:
        echo_json({"id": name, "members": len(members), "identity_provider": provider})
        return
    click.echo(f"org {name}: {len(members)} member(s)")
    if provider is None:
        click.echo("identity provider: none (set one with 'tokenledger orgs set-idp')")
        return
    days = int(str(provider["session_lifetime_seconds"])) / 86400
    secret = "kept" if provider["client_secret"] else "none"
    click.echo(f"identity provider: {provider['issuer']} (client {provider['client_id']})")
    click.echo(f"client secret: {secret}; sessions up to {days:g} days; set {provider['set_at']}")
