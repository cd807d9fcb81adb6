"""Database fixtures: every storage test runs on SQLite and on PostgreSQL.

PostgreSQL: one uniquely named database per test run (dropped at the end),
and a fresh schema per test inside it, selected through ``search_path``.
When ``CI=true`` and the server cannot be reached the run fails loudly;
elsewhere the PostgreSQL cases are skipped with the reason shown.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tokenledger.store import EventStore, open_event_store

PG_SERVER = os.environ.get("TOKENLEDGER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() == "true"


class PostgresServer:
    """The run's own database on the test server, with a schema handed out per test."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.database = f"tokenledger_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        info = psycopg.conninfo.conninfo_to_dict(admin_url)
        self.host = info.get("host", "127.0.0.1")
        self.port = info.get("port", "5432")
        self.user = info.get("user", "postgres")

    def fresh_schema(self) -> str:
        """A new empty schema; return a URL whose connections use it."""
        schema = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        return (
            f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{self.database}"
            f"?options=-csearch_path%3D{schema}"
        )

    def conninfo(self) -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={self.database}"

    def drop(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(self.database)
                )
            )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer(PG_SERVER)
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL is not reachable at {PG_SERVER}: {str(exc).splitlines()[0]}"
        if IN_CI:
            pytest.fail(f"CI=true requires PostgreSQL. {reason}")
        pytest.skip(reason)
    yield server
    server.drop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty database (not yet migrated), once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.fresh_schema()


@pytest.fixture
def store(database_url: str) -> Iterator[EventStore]:
    """A migrated, empty event store on each backend."""
    event_store = open_event_store(database_url, auto_upgrade=True)
    yield event_store
    event_store.engine.dispose()


@pytest.fixture
def postgres_store(postgres_server: PostgresServer) -> Iterator[EventStore]:
    """A migrated, empty event store on PostgreSQL only, for PostgreSQL-specific behaviour."""
    event_store = open_event_store(postgres_server.fresh_schema(), auto_upgrade=True)
    yield event_store
    event_store.engine.dispose()
