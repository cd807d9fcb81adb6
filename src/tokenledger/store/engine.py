"""Database URLs and engines, with the per-dialect settings the ledger relies on."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from tokenledger.errors import ValidationError

__all__ = ["DEFAULT_DATABASE_URL", "WRITE_OPTION", "create_ledger_engine", "parse_database_url"]

DEFAULT_DATABASE_URL = "sqlite:///tokenledger.db"

#: Execution option marking a connection whose transaction writes to the ledger.
WRITE_OPTION = "tokenledger_write"

# How long a writer waits for another writer's lock before giving up (seconds).
SQLITE_BUSY_TIMEOUT = 30.0


def parse_database_url(raw: str) -> URL:
    """Accept a SQLAlchemy URL, a ``postgresql://`` URL, or a plain path to a SQLite file."""
    text = raw.strip()
    if not text:
        raise ValidationError("the database URL is empty")
    if "://" not in text:
        return URL.create("sqlite", database=str(Path(text)))
    try:
        url = make_url(text)
    except ArgumentError as exc:
        raise ValidationError(f"not a database URL: {text!r}") from exc
    backend = url.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if url.get_driver_name() not in ("pysqlite", ""):
            raise ValidationError("SQLite is supported through the standard sqlite3 driver only")
        return url.set(drivername="sqlite")
    raise ValidationError(
        f"unsupported database {backend!r}: use a SQLite file or a PostgreSQL URL"
    )


def create_ledger_engine(raw_url: str | URL, **kwargs: Any) -> Engine:
    url = raw_url if isinstance(raw_url, URL) else parse_database_url(raw_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, **kwargs)
    return sa.create_engine(url, pool_recycle=3600, **kwargs)


def _sqlite_engine(url: URL, **kwargs: Any) -> Engine:
    in_memory = url.database in (None, "", ":memory:")
    if in_memory:
        # One connection shared by everyone, or each would see its own empty database.
        kwargs.setdefault("poolclass", StaticPool)
    else:
        Path(url.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("connect_args", {})
    kwargs["connect_args"].setdefault("timeout", SQLITE_BUSY_TIMEOUT)
    kwargs["connect_args"].setdefault("check_same_thread", False)
    engine = sa.create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below issue BEGIN itself, so that writers
        # can ask for BEGIN IMMEDIATE (the pysqlite driver would defer it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit that returned survives a power loss, also in WAL mode.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # BEGIN IMMEDIATE takes SQLite's single write lock at once: the ledger's
        # writers are serialised and each decides on everything committed before it.
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine
