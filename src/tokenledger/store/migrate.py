"""Bringing a database's schema up to date with Alembic.

The Alembic environment lives in the repository's top-level ``migrations/``
folder; a built wheel carries a copy as ``tokenledger/_migrations``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from tokenledger.errors import SchemaOutOfDate, StorageError
from tokenledger.store.engine import WRITE_OPTION

__all__ = ["current_revision", "ensure_schema", "head_revision", "migrations_dir", "upgrade"]


def migrations_dir() -> Path:
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_migrations", package.parent.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise StorageError("the migration scripts are missing from this installation")


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@cache
def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise StorageError("no migration revisions found")
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Migrate to the newest schema, holding the write lock so concurrent upgrades queue."""
    with (
        engine.connect().execution_options(**{WRITE_OPTION: True}) as connection,
        connection.begin(),
    ):
        if connection.dialect.name == "postgresql":
            # Serialises concurrent upgrades; released at commit.
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7236711, 0)")
        command.upgrade(_config(connection), "head")


def ensure_schema(engine: Engine, *, auto_upgrade: bool) -> None:
    """Fail with a clear message unless the schema is current; migrate first if allowed."""
    with engine.connect() as connection:
        current = current_revision(connection)
        connection.rollback()
    if current == head_revision():
        return
    if auto_upgrade:
        upgrade(engine)
        return
    if current is None:
        raise SchemaOutOfDate("the database has no ledger yet: run 'tokenledger db upgrade'")
    raise SchemaOutOfDate(
        f"the database schema is at revision {current}, this version needs "
        f"{head_revision()}: run 'tokenledger db upgrade'"
    )
