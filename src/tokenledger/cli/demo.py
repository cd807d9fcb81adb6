"""``tokenledger demo``: a short guided walk-through on a fresh ledger."""

from __future__ import annotations

from pathlib import Path

import click

from tokenledger.cli.app import CliContext
from tokenledger.cli.log import event_dict
from tokenledger.cli.output import json_line
from tokenledger.domain.events import OrgCreated, UserCreated
from tokenledger.errors import Conflict
from tokenledger.store import DEFAULT_DATABASE_URL, open_event_store
from tokenledger.store.mapper import to_pending

DEMO_FILE = "tokenledger-demo.db"


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
    store = open_event_store(url)
    try:
        if store.head().position:
            raise Conflict(f"the demo needs an empty ledger; {url} already has events")
        click.echo(f"A fresh ledger in {url}\n")
        events = [
            OrgCreated(org="acme"),
            UserCreated(email="alice@acme.example", name="Alice"),
            UserCreated(email="bob@acme.example", name="Bob"),
        ]
        store.append([to_pending(e) for e in events], actor="operator:demo")
        click.echo("Appended one command of three events. The log, one JSON line per event:")
        for record in store.read_all():
            click.echo("  " + json_line(event_dict(record)).decode())
        report = store.verify_chain()
        click.echo(
            f"\nHash chain verified: {report.events_checked} events, head position "
            f"{report.head.position}, hash {report.head.hash}"
        )
        click.echo("\nTry next:")
        click.echo(f"  tokenledger --db {url} log verify")
        click.echo(f"  tokenledger --db {url} log head --json")
        click.echo(f"  tokenledger --db {url} events --stream user:bob@acme.example")
    finally:
        store.engine.dispose()
