"""``tokenledger service-accounts trust-issuer``, ``untrust-issuer`` and ``trusts``: the
external issuers whose ID tokens a service account takes for its own access tokens
(workload identity federation, docs/login.md)."""

from __future__ import annotations

import click

from tokenledger.cli.app import CliContext
from tokenledger.cli.dry_run import dry_run_option
from tokenledger.cli.output import echo_json, format_timestamp
from tokenledger.domain.model import IssuerTrustView

__all__ = ["trust_issuer", "trusts", "untrust_issuer"]


def _trust_dict(trust: IssuerTrustView) -> dict[str, object]:
    return {
        "trust_id": trust.trust_id,
        "account_id": trust.account_id,
        "issuer": trust.issuer,
        "subject": trust.subject,
        "audience": trust.audience,
        "created_at": format_timestamp(trust.created_at),
        "withdrawn_at": format_timestamp(trust.revoked_at) if trust.revoked_at else None,
        "withdrawn_reason": trust.revoked_reason,
    }


@click.command("trust-issuer")
@click.argument("account_id")
@click.option("--issuer", required=True, help="The issuer's URL (https).")
@click.option(
    "--subject", required=True, help="The subjects to trust; * matches any run of characters."
)
@click.option("--audience", required=True, help="The audience its ID tokens must name.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def trust_issuer(
    obj: CliContext, account_id: str, issuer: str, subject: str, audience: str, as_json: bool
) -> None:
    """Let ID tokens of --issuer for --subject obtain ACCOUNT_ID's access tokens (RFC 8693).

    Moving the account's permission or deleting it withdraws the trust, and ends what it
    obtained.
    """
    from tokenledger.domain import commands as c  # pydantic loads with a command only
    from tokenledger.domain.events import IssuerTrusted

    command = c.build(
        c.TrustIssuer, account_id=account_id, issuer=issuer, subject=subject, audience=audience
    )
    result = obj.execute(command)
    (trusted,) = [e for e in result.events if isinstance(e, IssuerTrusted)]
    if as_json:
        echo_json(
            {
                "trust_id": trusted.trust_id,
                "account_id": trusted.account_id,
                "issuer": trusted.issuer,
                "subject": trusted.subject,
                "audience": trusted.audience,
                "correlation_id": result.correlation_id,
            }
        )
    else:
        click.echo(
            f"{trusted.account_id} trusts {trusted.issuer} for {trusted.subject} "
            f"(audience {trusted.audience}): {trusted.trust_id}"
        )


@click.command("untrust-issuer")
@click.argument("account_id")
@click.option("--issuer", required=True, help="The issuer to trust no more.")
@click.option("--subject", help="Only this subject pattern (default: every one of --issuer).")
@click.option("--reason", help="Why, for the audit trail.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def untrust_issuer(
    obj: CliContext,
    account_id: str,
    issuer: str,
    subject: str | None,
    reason: str | None,
    as_json: bool,
) -> None:
    """Withdraw ACCOUNT_ID's trust in --issuer: what it obtained stops working at once."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only
    from tokenledger.domain.events import IssuerUntrusted

    command = c.build(
        c.UntrustIssuer, account_id=account_id, issuer=issuer, subject=subject, reason=reason
    )
    result = obj.execute(command)
    withdrawn = [e.trust_id for e in result.events if isinstance(e, IssuerUntrusted)]
    if as_json:
        echo_json({"withdrawn": withdrawn, "correlation_id": result.correlation_id})
    else:
        click.echo(f"withdrew {len(withdrawn)} trust(s): {', '.join(withdrawn)}")


@click.command("trusts")
@click.argument("account_id")
@click.option("--all", "include_withdrawn", is_flag=True, help="Also withdrawn trusts.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def trusts(obj: CliContext, account_id: str, include_withdrawn: bool, as_json: bool) -> None:
    """The issuers ACCOUNT_ID trusts (seen like its client credentials)."""
    found = obj.ledger().issuer_trusts_of(
        obj.actor(), account_id, include_withdrawn=include_withdrawn
    )
    if as_json:
        echo_json([_trust_dict(trust) for trust in found])
        return
    for trust in found:
        state = f"withdrawn ({trust.revoked_reason})" if trust.revoked else "in force"
        click.echo(
            f"{trust.trust_id}  {trust.issuer}  {trust.subject}  audience {trust.audience}  {state}"
        )
