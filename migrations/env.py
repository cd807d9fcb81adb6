"""Alembic environment for the ledger.

Used two ways: programmatically (``tokenledger db upgrade`` passes an open
connection in ``config.attributes``), or by the ``alembic`` command with
``TOKENLEDGER_DATABASE_URL`` set.
"""

from __future__ import annotations

import os

from alembic import context

from tokenledger.store.engine import DEFAULT_DATABASE_URL, create_ledger_engine
from tokenledger.store.schema import metadata

config = context.config
target_metadata = metadata


def run_migrations(connection: object) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    url = os.environ.get("TOKENLEDGER_DATABASE_URL", DEFAULT_DATABASE_URL)
    engine = create_ledger_engine(url)
    with engine.connect() as conn:
        run_migrations(conn)
        conn.commit()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run 'tokenledger db upgrade'")
run_migrations_online()
