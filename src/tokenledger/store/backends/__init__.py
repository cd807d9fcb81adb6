"""The storage backends, one module per database, and the one place that picks one.

``backend_named`` is the only code that maps a database's name (a URL's scheme, a
SQLAlchemy dialect's name) to its backend; everything else asks ``backend_for``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from sqlalchemy.engine import URL, Connection, Engine

from tokenledger.errors import StorageError, ValidationError
from tokenledger.store.backend import Backend

__all__ = ["backend_for", "backend_for_url", "backend_named", "pipelined"]

# Per kind of SQLAlchemy dialect: chosen once, then a dictionary lookup on every call
# (a command's writes and every verification ask).
_chosen: dict[type, Backend] = {}


def backend_named(name: str) -> Backend | None:
    """The backend for a database name (``sqlite``, ``postgresql`` or ``postgres``)."""
    # Each backend's module is imported when first asked for: a process on SQLite never
    # loads PostgreSQL's dialect and driver support.
    if name == "sqlite":
        from tokenledger.store.backends import sqlite

        return sqlite.BACKEND
    if name in ("postgresql", "postgres"):
        from tokenledger.store.backends import postgresql

        return postgresql.BACKEND
    return None


def backend_for_url(url: URL) -> Backend:
    """The backend for a database URL; ``ValidationError`` for a database not supported."""
    found = backend_named(url.get_backend_name())
    if found is None:
        raise ValidationError(
            f"unsupported database {url.get_backend_name()!r}: "
            "use a SQLite file or a PostgreSQL URL"
        )
    return found


def backend_for(bind: Connection | Engine) -> Backend:
    """The backend of an engine, or of a connection's engine."""
    dialect = bind.dialect
    found = _chosen.get(type(dialect))
    if found is None:
        found = backend_named(dialect.name)
        if found is None:
            raise StorageError(f"the ledger supports SQLite and PostgreSQL, not {dialect.name!r}")
        _chosen[type(dialect)] = found
    return found


def pipelined(connection: Connection) -> AbstractContextManager[None]:
    """The connection's backend's ``pipeline`` block (a plain block without pipelines)."""
    return backend_for(connection).pipeline(connection)
