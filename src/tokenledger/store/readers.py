"""Short read snapshots on a connection each thread keeps open, for the hot lookups.

Checking a connection out of SQLAlchemy's pool, beginning and ending its
transaction costs more than the two or three primary-key lookups a token
verification makes. ``ReadConnections`` therefore gives each thread one
connection of its own, opened on first use and detached from the pool (so that
a large thread pool cannot exhaust the writers' pool; the engine's connect
settings and event listeners still apply), and ``snapshot`` brackets the
lookups with the driver's own statements:

* SQLite: ``BEGIN`` ... ``COMMIT``, so the lookups read one snapshot of the
  database (WAL mode: readers never block the writer, nor it them);
* PostgreSQL: autocommit, each lookup its own statement snapshot, which is
  what a READ COMMITTED transaction (SQLAlchemy's default) would give too.

Only ``DriverStatement``s may run on a snapshot's connection: it never goes
through SQLAlchemy's execution, so SQLAlchemy never opens a transaction on it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection, Engine

__all__ = ["ReadConnections"]


class ReadConnections:
    """One read connection per thread, detached from ``engine``'s pool."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[Connection] = []

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        connection = self._connection()
        dbapi = connection.connection.dbapi_connection
        assert dbapi is not None
        if not self._sqlite:
            yield connection
            return
        dbapi.execute("BEGIN")
        try:
            yield connection
        finally:
            if not connection.invalidated:
                dbapi.execute("COMMIT")

    def _connection(self) -> Connection:
        connection: Connection | None = getattr(self._local, "connection", None)
        if connection is None or connection.closed or connection.invalidated:
            connection = self._engine.connect()
            connection.connection.detach()  # closed, not pooled, when this one closes
            dbapi = connection.connection.dbapi_connection
            assert dbapi is not None
            if not self._sqlite:
                dbapi.rollback()  # whatever connecting began
                dbapi.autocommit = True
            self._local.connection = connection
            with self._lock:
                self._open.append(connection)
        return connection

    def close(self) -> None:
        """Close every thread's connection (each reopens on its next snapshot)."""
        with self._lock:
            for connection in self._open:
                connection.close()
            self._open.clear()
