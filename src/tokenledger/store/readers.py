"""Short read snapshots on a connection each thread keeps open, for the hot lookups.

Checking a connection out of SQLAlchemy's pool, beginning and ending its
transaction costs more than the two or three primary-key lookups a token
verification makes. ``ReadConnections`` therefore gives each thread one
connection of its own, opened on first use and detached from the pool (so that
a large thread pool cannot exhaust the writers' pool; the engine's connect
settings and event listeners still apply), and ``snapshot`` brackets the
lookups with the backend's read snapshot (``Backend.read_snapshot``: SQLite's
``BEGIN`` ... ``COMMIT``, one snapshot across statements; PostgreSQL's
autocommit, each lookup its own statement snapshot, which is what a READ
COMMITTED transaction would give too).

``statement`` is for a lookup made of one statement (a service account's token
verification): a statement reads one snapshot by itself on both databases, so
SQLite's ``BEGIN`` and ``COMMIT`` are left out (a thread beyond the limit still
reads on a pooled connection in a transaction of its own).

Only ``DriverStatement``s may run on a snapshot's connection: it never goes
through SQLAlchemy's execution, so SQLAlchemy never opens a transaction on it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

from sqlalchemy.engine import Connection, Engine

from tokenledger.store.backends import backend_for

__all__ = ["ReadConnections"]


#: Dedicated read connections per ``ReadConnections`` (per process): threads beyond
#: it read through the pool, so a server's thread pool cannot exhaust PostgreSQL's
#: ``max_connections``.
DEFAULT_LIMIT = 8


class ReadConnections:
    """One read connection per thread (up to ``limit`` threads), detached from ``engine``'s
    pool; further threads read on a pooled connection in a transaction of its own."""

    def __init__(self, engine: Engine, *, limit: int = DEFAULT_LIMIT) -> None:
        self._engine = engine
        self._backend = backend_for(engine)
        self._limit = limit
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[tuple[threading.Thread, Connection]] = []

    @property
    def snapshots_span_statements(self) -> bool:
        """Whether ``snapshot`` holds one snapshot across statements (SQLite), or each of
        its statements reads its own anyway (PostgreSQL, autocommit)."""
        return self._backend.snapshots_span_statements

    def snapshot(self) -> AbstractContextManager[Connection]:
        # Plain context managers, not generators: this brackets every uncached verification.
        connection = self._connection()
        if connection is None:
            return _pooled_snapshot(self._engine)
        return self._backend.read_snapshot(connection)

    def statement(self) -> AbstractContextManager[Connection]:
        """The thread's connection for one statement, which reads a snapshot of its own."""
        connection = self._connection()
        if connection is None:
            return _pooled_snapshot(self._engine)
        return nullcontext(connection)

    def _connection(self) -> Connection | None:
        connection: Connection | None = getattr(self._local, "connection", None)
        if connection is not None and not (connection.closed or connection.invalidated):
            return connection
        with self._lock:
            # Threads come and go (a server's pool retires idle ones) and connections get
            # lost: such entries are closed here rather than kept until the ledger closes.
            for entry in [e for e in self._open if _retired(*e)]:
                entry[1].close()
                self._open.remove(entry)
            if len(self._open) >= self._limit:
                return None
            connection = self._engine.connect()
            self._open.append((threading.current_thread(), connection))
        connection.connection.detach()  # closed, not pooled, when this one closes
        self._backend.prepare_reader(connection)
        self._local.connection = connection
        return connection

    def close(self) -> None:
        """Close every thread's connection (each reopens on its next snapshot)."""
        with self._lock:
            for _, connection in self._open:
                connection.close()
            self._open.clear()


@contextmanager
def _pooled_snapshot(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as pooled, pooled.begin():
        yield pooled


def _retired(thread: threading.Thread, connection: Connection) -> bool:
    return not thread.is_alive() or connection.closed or connection.invalidated
