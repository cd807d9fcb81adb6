"""``tokenledger demo``: the guided walk-through on a fresh ledger."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from tokenledger.cli.app import CliContext, ledger_type
from tokenledger.cli.defaults import DEFAULT_DATABASE_URL
from tokenledger.domain import commands as c
from tokenledger.domain.model import Actor
from tokenledger.domain.permissions import Level
from tokenledger.errors import Conflict

if TYPE_CHECKING:
    from tokenledger.service import CommandResult, Ledger

DEMO_FILE = "tokenledger-demo.db"
SA = "ingest@acme.service.tokenledger"


def _step(title: str) -> None:
    click.echo(click.style(f"\n== {title}", bold=True))


def _ok(text: str) -> None:
    click.echo(f"   {text}")


@click.command("demo")
@click.pass_obj
def demo(obj: CliContext) -> None:
    """Walk through the ledger on a fresh SQLite file (./tokenledger-demo.db)."""
    url = obj.database_url
    if url == DEFAULT_DATABASE_URL:
        # The demo never touches the default ledger: it rebuilds its own file.
        for suffix in ("", "-wal", "-shm"):
            Path(DEMO_FILE + suffix).unlink(missing_ok=True)
        url = f"sqlite:///{DEMO_FILE}"
    ledger = ledger_type().open(url)
    try:
        if ledger.store.head().position:
            raise Conflict(f"the demo needs an empty ledger; {url} already has events")
        _walk_through(ledger, url)
    finally:
        ledger.close()


def _walk_through(ledger: Ledger, url: str) -> None:
    operator = Actor.operator("demo")

    def run(command: c.Command) -> CommandResult:
        return ledger.execute(command, operator)

    click.echo(f"A fresh ledger in {url}; every change below is an event in its log.")

    _step("An org with a project hierarchy (org/project/collection/dataset)")
    run(c.CreateOrg(org="acme"))
    for path in ("acme/alpha", "acme/alpha/raw", "acme/alpha/raw/2026", "acme/beta"):
        run(c.CreateResource(path=path))
    for resource in ledger.list_resources(operator, "acme"):
        _ok(f"{resource.path:<22} {resource.kind}")

    _step("A user, admin of the org")
    run(c.CreateUser(email="alice@acme.example", name="Alice"))
    run(c.AddMember(org="acme", email="alice@acme.example", role="admin"))
    _ok("alice@acme.example  role admin in acme (admin on everything below acme)")

    _step("A service account with one permission: write on the project acme/alpha")
    run(c.CreateServiceAccount(name="ingest", org="acme", resource="acme/alpha", level=Level.WRITE))
    _ok(SA)

    _step("Two tokens for it (each secret is shown once, only its SHA-256 hash is kept)")
    tokens = [
        run(c.IssueToken(principal=SA, name="nightly-upload")),
        run(
            c.IssueToken(
                principal=SA,
                name="reader",
                grants=(c.GrantSpec(resource="acme/alpha/raw", level=Level.READ),),
            )
        ),
    ]
    secrets = []
    for result in tokens:
        issued = result.issued
        assert issued is not None
        assert result.secret is not None
        secrets.append(result.secret)
        grants = ", ".join(str(g) for g in issued.grants)
        expires = issued.expires_at.date() if issued.expires_at else "never"
        prefix = result.secret.split("_", 1)[0]
        _ok(f"{issued.token_id}  {grants:<22} expires {expires}  secret {prefix}_... (hidden)")

    _step("Verification: may the first token write to acme/alpha/raw/2026?")
    answer = ledger.verify(secrets[0], resource="acme/alpha/raw/2026", level=Level.WRITE)
    _ok(f"active={answer.active} allowed={answer.allowed} sub={answer.sub} scope={answer.scope!r}")
    beyond = ledger.verify(secrets[1], resource="acme/alpha/raw/2026", level=Level.WRITE)
    _ok(f"the second (read only): allowed={beyond.allowed} reason={beyond.reason}")

    _step("The service account's permission moves to acme/beta")
    moved = run(
        c.SetServiceAccountPermission(account_id=SA, resource="acme/beta", level=Level.WRITE)
    )
    _ok(f"correlation id {moved.correlation_id}")
    _ok(f"revoked by the cascade: {', '.join(moved.revoked)}")

    _step("Verification again")
    for secret in secrets:
        again = ledger.verify(secret, resource="acme/alpha/raw/2026", level=Level.READ)
        _ok(f"active={again.active} reason={again.reason}")

    _step("The cascade in the log: one command, linked events")
    from tokenledger.store.mapper import decode_event

    for record in ledger.store.read_all(from_position=moved.records[0].position):
        if record.correlation_id != moved.correlation_id:
            continue
        event = decode_event(record)
        what = getattr(event, "token_id", None) or getattr(event, "account_id", "")
        reason = getattr(event, "reason", "")
        _ok(f"#{record.position:<3} {record.event_type:<30} {what} {reason}  by {record.actor}")

    _step("The hash chain")
    report = ledger.store.verify_chain()
    _ok(
        f"verified: {report.events_checked} events, head {report.head.position} "
        f"{report.head.hash[:16]}..."
    )

    click.echo("\nTry next:")
    db = f"--db {url}"
    click.echo(f"  tokenledger {db} tokens list --principal {SA} --all")
    click.echo(f"  tokenledger {db} service-accounts list --org acme")
    click.echo(f"  tokenledger {db} events --stream sa:{SA}")
    click.echo(f"  tokenledger {db} log verify")
