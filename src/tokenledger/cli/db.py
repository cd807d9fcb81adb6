"""``tokenledger db``: schema management."""

from __future__ import annotations

import click

from tokenledger.cli.app import CliContext
from tokenledger.cli.output import echo_json
from tokenledger.errors import StorageError


@click.group()
def db() -> None:
    """Create or migrate the ledger's database."""


@db.command("upgrade")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def upgrade_command(obj: CliContext, as_json: bool) -> None:
    """Create the ledger's tables or migrate them to this version's schema."""
    from sqlalchemy.exc import OperationalError

    from tokenledger.store import (
        create_ledger_engine,
        describe_connection_error,
        parse_database_url,
        upgrade,
    )
    from tokenledger.store.migrate import current_revision, head_revision

    url = parse_database_url(obj.database_url)
    engine = create_ledger_engine(url)
    try:
        with engine.connect() as connection:
            before = current_revision(connection)
        upgrade(engine)
    except OperationalError as exc:
        raise StorageError(describe_connection_error(url, exc)) from exc
    finally:
        engine.dispose()
    after = head_revision()
    shown = url.render_as_string(hide_password=True)
    if as_json:
        echo_json({"database": shown, "from_revision": before, "revision": after})
    elif before == after:
        click.echo(f"{shown}: already at revision {after}")
    else:
        click.echo(f"{shown}: migrated from {before or 'an empty database'} to revision {after}")
