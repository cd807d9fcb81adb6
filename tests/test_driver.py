"""Driver statements (``store.driver``): the same values and the same errors as SQLAlchemy,
on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from tokenledger.projections.schema import orgs, users
from tokenledger.store import EventStore
from tokenledger.store.driver import DriverStatement

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
    assert tuple(by_sqlalchemy) == ("bob@acme.io", "Bob", True, None, WHEN)
    assert by_driver == ("ann@acme.io", "Bob", False, None, WHEN)


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
