"""Driver statements (``store.driver``): the same values and the same errors as SQLAlchemy,
on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from tokenledger.projections.schema import orgs, users
from tokenledger.store import EventStore
from tokenledger.store.backends import backend_for, pipelined
from tokenledger.store.driver import DriverStatement
from tokenledger.store.readers import ReadConnections

WHEN = datetime(2026, 5, 1, 9, 30, 15, 120_000, tzinfo=UTC)

INSERT_USER = DriverStatement(
    users.insert(), column_keys=["email", "name", "disabled", "disabled_at", "created_at"]
)
USER = DriverStatement(sa.select(users).where(users.c.email == sa.bindparam("email")))
INSERT_ORG = DriverStatement(orgs.insert(), column_keys=["org", "created_at"])


def test_rows_read_back_the_same_through_either_path(store: EventStore) -> None:
    row = {
        "email": "bob@acme.io",
        "name": "Bob",
        "disabled": True,
        "disabled_at": None,
        "created_at": WHEN,
    }
    with store.engine.begin() as connection:
        INSERT_USER.executemany(connection, [row])
        # Written by the driver, read by SQLAlchemy ...
        by_sqlalchemy = connection.execute(sa.select(users)).one()
        # ... and the other way round.
        connection.execute(users.insert(), {**row, "email": "ann@acme.io", "disabled": False})
        by_driver = USER.first(connection, {"email": "ann@acme.io"})
    assert tuple(by_sqlalchemy) == ("bob@acme.io", "Bob", True, None, WHEN, None)
    assert by_driver == ("ann@acme.io", "Bob", False, None, WHEN, None)


def test_naive_timestamps_are_refused(store: EventStore) -> None:
    with store.engine.begin() as connection, pytest.raises(ValueError, match="naive"):
        INSERT_ORG.executemany(connection, [{"org": "acme", "created_at": datetime(2026, 5, 1)}])


def test_driver_errors_are_sqlalchemy_errors_without_the_values(store: EventStore) -> None:
    with store.engine.begin() as connection:
        INSERT_ORG.executemany(connection, [{"org": "acme", "created_at": WHEN}])
    with (
        pytest.raises(sa.exc.IntegrityError) as caught,
        store.engine.begin() as connection,
    ):
        INSERT_ORG.execute(connection, {"org": "acme", "created_at": WHEN})
    message = str(caught.value)
    assert "2026-05-01" not in message  # the values are never part of the message


def test_errors_in_a_pipeline_or_a_bulk_load_are_sqlalchemy_errors(store: EventStore) -> None:
    # PostgreSQL answers a pipeline's statements, and a COPY, only at their end; elsewhere
    # these are plain statements. Either way the caller sees SQLAlchemy's IntegrityError.
    with store.engine.begin() as connection:
        INSERT_ORG.executemany(connection, [{"org": "acme", "created_at": WHEN}])
    with (
        pytest.raises(sa.exc.IntegrityError),
        store.engine.begin() as connection,
        pipelined(connection),
    ):
        INSERT_ORG.executemany(connection, [{"org": "acme", "created_at": WHEN}])

    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as connection:
        backend_for(connection).load_rows(
            connection, orgs, ("org", "created_at"), [{"org": "acme", "created_at": WHEN}]
        )


def test_listeners_see_driver_statements(store: EventStore) -> None:
    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append(str(args[2]))

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        with store.engine.begin() as connection:
            USER.first(connection, {"email": "nobody@acme.io"})
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)
    assert any(statement.startswith("SELECT users.email") for statement in seen)


def test_read_connections_are_bounded_and_reclaimed(store: EventStore) -> None:
    readers = ReadConnections(store.engine, limit=1)
    seen: dict[str, bool] = {}

    def read(
        name: str, hold: threading.Event | None = None, held: threading.Event | None = None
    ) -> None:
        with readers.snapshot() as connection:
            assert USER.first(connection, {"email": "nobody@acme.io"}) is None
            seen[name + " dedicated"] = not connection.in_transaction()
            if held is not None and hold is not None:
                held.set()
                hold.wait(timeout=30)

    try:
        hold, held = threading.Event(), threading.Event()
        first = threading.Thread(target=read, args=("first", hold, held))
        first.start()
        assert held.wait(timeout=30)
        second = threading.Thread(target=read, args=("second",))
        second.start()
        second.join(timeout=30)
        hold.set()
        first.join(timeout=30)
        # The first thread holds the only dedicated connection; the second read through the
        # pool (in a SQLAlchemy transaction of its own).
        assert seen["first dedicated"] is True
        assert seen["second dedicated"] is False
        # The first thread is gone: its connection is reclaimed for the next thread.
        third = threading.Thread(target=read, args=("third",))
        third.start()
        third.join(timeout=30)
        assert seen["third dedicated"] is True
    finally:
        readers.close()
