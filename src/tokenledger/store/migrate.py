"""Bringing a database's schema up to date with Alembic.

The Alembic environment lives in the repository's top-level ``migrations/``
folder; a built wheel carries a copy as ``tokenledger/_migrations``.

Alembic is imported only when a migration runs. Opening a ledger checks its schema
without it: the revision the database records is read from Alembic's version table
with SQLAlchemy, and the newest revision is read from the scripts' text (their
``revision`` and ``down_revision`` assignments), which every command would otherwise
pay for with Alembic's import.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tokenledger.errors import SchemaOutOfDate, StorageError
from tokenledger.store.backend import WRITE_OPTION
from tokenledger.store.backends import backend_for

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "VERSION_TABLE",
    "current_revision",
    "ensure_schema",
    "head_revision",
    "migrations_dir",
    "scripted_head",
    "upgrade",
]

#: Alembic's table recording the database's revision (its default name, in the default schema).
VERSION_TABLE = "alembic_version"

_version = sa.table(VERSION_TABLE, sa.column("version_num", sa.String))

# ``revision: str = "0008"`` and ``down_revision: str | None = "0007"`` as Alembic's
# template writes them, at the start of a line.
_ASSIGNMENT = re.compile(
    r"^(?P<name>revision|down_revision)\s*(?::[^=\n]*)?=\s*(?P<value>.+?)\s*$", re.MULTILINE
)


def migrations_dir() -> Path:
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_migrations", package.parent.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise StorageError("the migration scripts are missing from this installation")


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _declared(text: str) -> tuple[str, tuple[str, ...]] | None:
    """A script's revision and the revisions it follows, or None unless both are assigned
    exactly once as plain literals."""
    values: dict[str, list[str]] = {}
    for match in _ASSIGNMENT.finditer(text):
        values.setdefault(match["name"], []).append(match["value"])
    if len(values.get("revision", ())) != 1 or len(values.get("down_revision", ())) != 1:
        return None
    try:
        revision = ast.literal_eval(values["revision"][0])
        down = ast.literal_eval(values["down_revision"][0])
    except (ValueError, SyntaxError):
        return None
    if down is None:
        down = ()
    elif isinstance(down, str):
        down = (down,)
    if not isinstance(revision, str) or not isinstance(down, tuple | list):
        return None
    if not all(isinstance(parent, str) for parent in down):
        return None
    return revision, tuple(down)


def scripted_head(scripts: Path) -> str | None:
    """The one head revision of the scripts in ``scripts/versions``, read from their text;
    None when that cannot say (no scripts, several heads, an assignment in another form)."""
    parents: dict[str, tuple[str, ...]] = {}
    # The files Alembic reads as revisions: every .py but __init__ and editor backups.
    for path in sorted((scripts / "versions").glob("*.py")):
        if path.name.startswith(("__init__", ".#")):
            continue
        declared = _declared(path.read_text(encoding="utf-8"))
        if declared is None or declared[0] in parents:
            return None
        parents[declared[0]] = declared[1]
    followed = {parent for followed_by in parents.values() for parent in followed_by}
    if not followed <= parents.keys():
        return None
    heads = [revision for revision in parents if revision not in followed]
    return heads[0] if len(heads) == 1 else None


@cache
def head_revision() -> str:
    """The newest revision of the migration scripts."""
    head = scripted_head(migrations_dir())
    if head is None:
        # Scripts the text does not settle (say, a branch): Alembic's own answer.
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise StorageError("no migration revisions found")
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database records (None before the first migration), as Alembic
    reads it: the rows of its version table, when there is one."""
    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return None
    heads = list(connection.execute(sa.select(_version.c.version_num)).scalars())
    if len(heads) > 1:
        raise StorageError(
            f"the database records several schema revisions ({', '.join(sorted(heads))}): "
            "it was migrated by something other than 'tokenledger db upgrade'"
        )
    return heads[0] if heads else None


def upgrade(engine: Engine) -> None:
    """Migrate to the newest schema, holding the write lock so concurrent upgrades queue."""
    from alembic import command

    with (
        engine.connect().execution_options(**{WRITE_OPTION: True}) as connection,
        connection.begin(),
    ):
        backend_for(connection).migration_lock(connection)
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
