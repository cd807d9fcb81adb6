"""The data plane on the command line (docs/data-plane.md): ``tokenledger endpoints``
(data proxies), ``tokenledger s3-credentials``, and ``service-accounts trust-endpoint``,
``untrust-endpoint`` and ``trusted-endpoints``."""

from __future__ import annotations

import click

from tokenledger.cli.app import CliContext
from tokenledger.cli.dry_run import dry_run_option
from tokenledger.cli.output import echo_json, format_timestamp
from tokenledger.domain.model import EndpointView, S3CredentialView

__all__ = ["endpoints", "s3_credentials", "trust_endpoint", "trusted_endpoints", "untrust_endpoint"]


def _endpoint_dict(endpoint: EndpointView) -> dict[str, object]:
    return {
        "id": endpoint.endpoint_id,
        "name": endpoint.name,
        "url": endpoint.url,
        "created_at": format_timestamp(endpoint.created_at),
    }


def _credential_dict(credential: S3CredentialView) -> dict[str, object]:
    revoked = credential.revoked_at
    return {
        "access_key_id": credential.access_key_id,
        "account_id": credential.account_id,
        "endpoint_id": credential.endpoint_id,
        "issued_at": format_timestamp(credential.issued_at),
        "revoked_at": format_timestamp(revoked) if revoked else None,
        "revoked_reason": credential.revoked_reason,
    }


# -- endpoints -----------------------------------------------------------------------------


@click.group()
def endpoints() -> None:
    """Register, list and delete endpoints (data proxies: S3-compatible gateways)."""


@endpoints.command("create")
@click.argument("name")
@click.option("--url", required=True, help="The gateway's base URL (http or https).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def create_endpoint(obj: CliContext, name: str, url: str, as_json: bool) -> None:
    """Register the endpoint NAME at --url (the operator's, on the database)."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only
    from tokenledger.domain.events import EndpointCreated

    ledger = obj.ledger()
    result = obj.execute(c.build(c.CreateEndpoint, name=name, url=url))
    (created,) = [e for e in result.events if isinstance(e, EndpointCreated)]
    if as_json:
        echo_json(
            {
                **_endpoint_dict(ledger.get_endpoint(created.endpoint_id)),
                "correlation_id": result.correlation_id,
            }
        )
    else:
        click.echo(f"created endpoint {created.name} ({created.endpoint_id}) at {created.url}")


@endpoints.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def list_endpoints(obj: CliContext, as_json: bool) -> None:
    """Every endpoint, by name."""
    found = obj.ledger().endpoints()
    if as_json:
        echo_json([_endpoint_dict(endpoint) for endpoint in found])
        return
    for endpoint in found:
        click.echo(f"{endpoint.endpoint_id}  {endpoint.name:<20} {endpoint.url}")


@endpoints.command("get")
@click.argument("endpoint")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def get_endpoint(obj: CliContext, endpoint: str, as_json: bool) -> None:
    """One endpoint, by id or name."""
    found = obj.ledger().get_endpoint(endpoint)
    if as_json:
        echo_json(_endpoint_dict(found))
    else:
        click.echo(f"{found.endpoint_id}  {found.name}  {found.url}")


@endpoints.command("delete")
@click.argument("endpoint")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def delete_endpoint(obj: CliContext, endpoint: str, as_json: bool) -> None:
    """Delete ENDPOINT: it leaves every trusted list and its S3 credentials are revoked."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only
    from tokenledger.domain.events import EndpointUntrusted, S3CredentialRevoked

    result = obj.execute(c.build(c.DeleteEndpoint, endpoint=endpoint))
    revoked = [e.access_key_id for e in result.events if isinstance(e, S3CredentialRevoked)]
    untrusted = [e.account_id for e in result.events if isinstance(e, EndpointUntrusted)]
    if as_json:
        echo_json(
            {
                "untrusted_by": untrusted,
                "revoked_s3_credentials": revoked,
                "correlation_id": result.correlation_id,
            }
        )
    else:
        click.echo(
            f"deleted endpoint {endpoint}; {len(untrusted)} account(s) trusted it, "
            f"{len(revoked)} S3 credential(s) revoked"
        )


# -- a service account's trusted endpoints -----------------------------------------------------


@click.command("trust-endpoint")
@click.argument("account_id")
@click.argument("endpoint")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def trust_endpoint(obj: CliContext, account_id: str, endpoint: str, as_json: bool) -> None:
    """Put ENDPOINT on ACCOUNT_ID's trusted endpoints (it may then hold S3 credentials there)."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    command = c.build(c.TrustEndpoint, account_id=account_id, endpoint=endpoint)
    result = obj.execute(command)
    if as_json:
        echo_json(
            {
                "account_id": command.account_id,
                "endpoint": endpoint,
                "endpoint_id": getattr(result.events[0], "endpoint_id", None),
                "correlation_id": result.correlation_id,
            }
        )
    else:
        click.echo(f"{command.account_id} trusts endpoint {endpoint}")


@click.command("untrust-endpoint")
@click.argument("account_id")
@click.argument("endpoint")
@click.option("--reason", help="Why, for the audit trail.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def untrust_endpoint(
    obj: CliContext, account_id: str, endpoint: str, reason: str | None, as_json: bool
) -> None:
    """Take ENDPOINT off ACCOUNT_ID's trusted endpoints: its S3 credentials there are revoked."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only
    from tokenledger.domain.events import S3CredentialRevoked

    command = c.build(c.UntrustEndpoint, account_id=account_id, endpoint=endpoint, reason=reason)
    result = obj.execute(command)
    revoked = [e.access_key_id for e in result.events if isinstance(e, S3CredentialRevoked)]
    if as_json:
        echo_json({"revoked_s3_credentials": revoked, "correlation_id": result.correlation_id})
    else:
        click.echo(
            f"{command.account_id} trusts endpoint {endpoint} no more; "
            f"{len(revoked)} S3 credential(s) revoked"
        )


@click.command("trusted-endpoints")
@click.argument("account_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def trusted_endpoints(obj: CliContext, account_id: str, as_json: bool) -> None:
    """The endpoints ACCOUNT_ID trusts."""
    found = obj.ledger().trusted_endpoints_of(obj.actor(), account_id)
    if as_json:
        echo_json(
            [
                {**_endpoint_dict(endpoint), "trusted_at": format_timestamp(trusted.trusted_at)}
                for trusted, endpoint in found
            ]
        )
        return
    for _, endpoint in found:
        click.echo(f"{endpoint.endpoint_id}  {endpoint.name:<20} {endpoint.url}")


# -- S3 credentials -----------------------------------------------------------------------------


@click.group("s3-credentials")
def s3_credentials() -> None:
    """Issue, list and revoke service accounts' S3 credentials at their trusted endpoints."""


@s3_credentials.command("create")
@click.argument("account_id")
@click.argument("endpoint")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def create_s3_credential(obj: CliContext, account_id: str, endpoint: str, as_json: bool) -> None:
    """S3 credentials for ACCOUNT_ID at ENDPOINT (one of its trusted endpoints).

    The secret key is printed this once: the ledger keeps no copy of it (it derives it
    again, from its key file, only to check signatures).
    """
    keys = None
    if not obj.remote:
        from tokenledger.service.keys import KeyStore
        from tokenledger.store import parse_database_url

        keys = KeyStore.from_environment(parse_database_url(obj.database_url))
    with obj.previewing():
        issued = obj.ledger().issue_s3_credential(
            obj.actor(), keys, account_id=account_id, endpoint=endpoint, dry_run=obj.dry_run
        )
    if as_json:
        echo_json(
            {
                "access_key_id": issued.access_key_id,
                "secret_access_key": issued.secret_key,
                "account_id": issued.account_id,
                "endpoint_id": issued.endpoint.endpoint_id,
                "endpoint_url": issued.endpoint.url,
                "correlation_id": issued.result.correlation_id,
            }
        )
        return
    click.echo(f"access key id:     {issued.access_key_id}")
    click.echo(f"secret access key: {issued.secret_key}")
    click.echo(f"endpoint:          {issued.endpoint.name} {issued.endpoint.url}")
    click.echo("The secret access key is shown this once.", err=True)


@s3_credentials.command("list")
@click.argument("account_id")
@click.option("--all", "include_revoked", is_flag=True, help="Also revoked credentials.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def list_s3_credentials(
    obj: CliContext, account_id: str, include_revoked: bool, as_json: bool
) -> None:
    """ACCOUNT_ID's S3 credentials (access key ids; never the secret keys)."""
    found = obj.ledger().s3_credentials_of(obj.actor(), account_id, include_revoked=include_revoked)
    if as_json:
        echo_json([_credential_dict(credential) for credential in found])
        return
    for credential in found:
        state = f"revoked ({credential.revoked_reason})" if credential.revoked else "live"
        click.echo(f"{credential.access_key_id}  {credential.endpoint_id}  {state}")


@s3_credentials.command("revoke")
@click.argument("account_id")
@click.option("--endpoint", help="Revoke the account's credentials at this endpoint.")
@click.option("--access-key-id", help="Revoke these credentials.")
@click.option("--reason", help="Why, for the audit trail.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def revoke_s3_credential(
    obj: CliContext,
    account_id: str,
    endpoint: str | None,
    access_key_id: str | None,
    reason: str | None,
    as_json: bool,
) -> None:
    """Revoke ACCOUNT_ID's S3 credentials (--endpoint or --access-key-id)."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only
    from tokenledger.domain.events import S3CredentialRevoked

    command = c.build(
        c.RevokeS3Credential,
        account_id=account_id,
        endpoint=endpoint,
        access_key_id=access_key_id,
        reason=reason,
    )
    result = obj.execute(command)
    revoked = [e.access_key_id for e in result.events if isinstance(e, S3CredentialRevoked)]
    if as_json:
        echo_json({"revoked_s3_credentials": revoked, "correlation_id": result.correlation_id})
    else:
        click.echo(f"revoked S3 credentials {', '.join(revoked)}")
