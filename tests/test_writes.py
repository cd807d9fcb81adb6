"""Batched projection writes mean exactly what the same writes run one by one mean."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from tokenledger.domain.events import Event, TokenIssued, TokenRevoked
from tokenledger.domain.permissions import Grant
from tokenledger.projections.projector import Projector
from tokenledger.projections.schema import tokens, user_grants, users
from tokenledger.projections.writes import BufferedWrites, Writes
from tokenledger.store import EventStore, RecordedEvent
from tokenledger.store.backends import pipelined

AT = datetime(2026, 1, 1, tzinfo=UTC)


def operations(seed: int, count: int, *, barriers: bool = True) -> list[tuple[str, Any]]:
    """A random mix of every operation on a few rows, so that rows are touched repeatedly
    (``barriers``: also deletes by part of a key)."""
    rng = random.Random(seed)
    emails = [f"u{i}@x.io" for i in range(4)]
    resources = ["acme", "acme/a", "acme/b"]
    ops: list[tuple[str, Any]] = []
    for _ in range(count):
        email, resource = rng.choice(emails), rng.choice(resources)
        level = rng.choice(["read", "write", "admin"])
        ops.append(
            rng.choice(
                [
                    ("insert_user", email),
                    ("disable_user", (email, rng.randrange(60))),
                    ("upsert_grant", (email, resource, level)),
                    ("insert_grant", (email, resource, level)),
                    ("update_grant", (email, resource, level)),
                    ("delete_grant", (email, resource)),
                    ("delete_grants_of", email),  # no whole key: a barrier
                ][: None if barriers else -1]
            )
        )
    return ops


def run(writes: Writes, ops: list[tuple[str, Any]]) -> None:
    for name, arg in ops:
        if name == "insert_user":
            writes.insert_if_absent(
                users,
                [
                    {
                        "email": arg,
                        "name": None,
                        "disabled": False,
                        "disabled_at": None,
                        "created_at": AT,
                    }
                ],
            )
        elif name == "disable_user":
            email, minute = arg
            writes.update(
                users,
                {"email": email, "disabled": False},
                {"disabled": True, "disabled_at": AT + timedelta(minutes=minute)},
            )
        elif name == "upsert_grant":
            email, resource, level = arg
            writes.upsert(user_grants, {"email": email, "resource": resource, "level": level})
        elif name == "insert_grant":
            email, resource, level = arg
            writes.insert_if_absent(
                user_grants, [{"email": email, "resource": resource, "level": level}]
            )
        elif name == "update_grant":
            email, resource, level = arg
            writes.update(user_grants, {"email": email, "resource": resource}, {"level": level})
        elif name == "delete_grant":
            email, resource = arg
            writes.delete(user_grants, {"email": email, "resource": resource})
        else:
            writes.delete(user_grants, {"email": arg})


def rows(connection: sa.Connection) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    for table in (users, user_grants):
        found += [
            tuple(r)
            for r in connection.execute(sa.select(table).order_by(*table.primary_key.columns))
        ]
    return found


def rows_written_one_by_one(connection: sa.Connection, ops: list[tuple[str, Any]]) -> list[Any]:
    """The rows ``ops`` leave when each runs at once (rolled back afterwards): the reference."""
    with connection.begin() as transaction:
        run(Writes(connection), ops)
        found = rows(connection)
        transaction.rollback()
    return found


def test_buffered_writes_give_the_rows_immediate_writes_give(store: EventStore) -> None:
    for seed in range(5):
        ops = operations(seed, 300)
        with store.engine.connect() as connection:
            expected = rows_written_one_by_one(connection, ops)
            with connection.begin() as transaction:
                buffered = BufferedWrites(connection)
                run(buffered, ops)
                buffered.flush()
                assert rows(connection) == expected, f"seed {seed}"
                transaction.rollback()


def test_a_run_of_interleaved_issues_and_revocations_becomes_two_batches(
    store: EventStore,
) -> None:
    with store.engine.connect() as connection, connection.begin():
        buffered = BufferedWrites(connection)
        for i in range(50):
            buffered.upsert(
                user_grants, {"email": f"u{i}@x.io", "resource": "acme", "level": "read"}
            )
            buffered.update(
                user_grants, {"email": f"u{i}@x.io", "resource": "acme"}, {"level": "write"}
            )
        queue = buffered._tables["user_grants"]
        assert [len(params) for _, params in queue.runs] == [50, 50]
        buffered.flush()
        levels = connection.execute(sa.select(user_grants.c.level)).scalars().all()
        assert set(levels) == {"write"}
        assert len(levels) == 50


class OpsProjection:
    """A projection whose n-th event states the n-th list of row operations."""

    name = "ops"
    tables = (users, user_grants)

    def __init__(self, pages: list[list[tuple[str, Any]]]) -> None:
        self.ops = [op for page in pages for op in page]

    def apply(self, writes: Writes, record: RecordedEvent, event: Event) -> None:
        run(writes, [self.ops[record.position - 1]])


def record_at(position: int) -> RecordedEvent:
    return RecordedEvent(
        position, "s", position, f"e{position}", "Op", 1, b"{}", AT, "operator:t", "c", "k", "", ""
    )


def without_second_creations(pages: list[list[tuple[str, Any]]]) -> list[list[tuple[str, Any]]]:
    """The pages without the inserts of rows that exist when their page starts, so that
    every page is folded in memory (none falls back to exact row operations)."""
    existing: set[Any] = set()
    kept: list[list[tuple[str, Any]]] = []
    for page in pages:
        at_start = set(existing)
        kept.append([])
        for name, arg in page:
            key = arg if name == "insert_user" else arg[:2] if "grant" in name else None
            if name.startswith("insert") and key in at_start:
                continue
            kept[-1].append((name, arg))
            if name.startswith(("insert", "upsert")):
                existing.add(key)
            elif name == "delete_grant":
                existing.discard(key)
    return kept


def test_pages_folded_in_bulk_give_the_rows_immediate_writes_give(store: EventStore) -> None:
    # Pages of a rebuild: rows created in a page are folded in memory; rows created
    # twice (an insert of an existing user) and deletes by part of a key make the page
    # fall back to exact row operations. Either way the rows must be the same.
    for seed in range(8):
        ops = operations(seed, 240, barriers=seed % 2 == 0)
        pages = [ops[i : i + 40] for i in range(0, len(ops), 40)]
        if seed % 2:
            pages = without_second_creations(pages)
            ops = [op for page in pages for op in page]
        projector = Projector([OpsProjection(pages)])
        with store.engine.connect() as connection:
            expected = rows_written_one_by_one(connection, ops)
            with connection.begin() as transaction:
                position = 0
                for page in pages:
                    pairs = [(record_at(position + i + 1), None) for i in range(len(page))]
                    projector.apply_in_bulk(connection, pairs)  # type: ignore[arg-type]
                    position += len(page)
                assert rows(connection) == expected, f"seed {seed}"
                assert Projector.checkpoint(connection, "ops") == position
                transaction.rollback()


def test_a_row_created_again_and_deleted_in_a_later_page_is_gone(store: EventStore) -> None:
    # The second page's insert is a no-op on the existing row; its delete removes it.
    # Folded in memory, the page inserts nothing, so the delete must still reach SQL.
    grant = ("u0@x.io", "acme/a", "read")
    pages = [[("insert_grant", grant)], [("insert_grant", grant), ("delete_grant", grant[:2])]]
    projector = Projector([OpsProjection(pages)])
    with store.engine.connect() as connection, connection.begin():
        projector.apply_in_bulk(connection, [(record_at(1), None)])  # type: ignore[list-item]
        projector.apply_in_bulk(connection, [(record_at(2), None), (record_at(3), None)])  # type: ignore[list-item]
        assert rows(connection) == []


def issued_tokens(count: int) -> list[Event]:
    return [
        TokenIssued(
            token_id=f"tok_{i}",
            principal="sa@acme.service.tokenledger",
            kind="service",
            secret_hash=f"{i:064x}",
            grants=(Grant("acme/p", "read"),),
            issued_at=AT,
            expires_at=None,
            issued_by=None,
        )
        for i in range(count)
    ]


def test_a_page_applied_inside_a_pipeline_also_when_it_creates_existing_rows(
    store: EventStore,
) -> None:
    # A pipeline reports an error only at its end, too late to fall back from a bulk load
    # that meets an existing row: inside one, a page is applied row by row from the start.
    issued = issued_tokens(150)
    pairs = [(record_at(n + 1), e) for n, e in enumerate(issued)]
    with store.engine.connect() as connection, connection.begin():
        Projector().apply_in_bulk(connection, pairs[:120])
        with pipelined(connection):
            Projector().apply_in_bulk(connection, pairs[100:])  # tokens 100-119 exist
        loaded = connection.execute(sa.select(sa.func.count()).select_from(tokens)).scalar_one()
        assert loaded == 150
        assert Projector.checkpoint(connection) == 150


def test_a_page_of_issues_and_revocations_loads_each_token_once(store: EventStore) -> None:
    issues = issued_tokens(100)
    revocations: list[Event] = [
        TokenRevoked(token_id=f"tok_{i}", principal="sa@acme.service.tokenledger", reason="r")
        for i in range(0, 100, 2)
    ]
    pairs = [(record_at(n + 1), e) for n, e in enumerate(issues + revocations)]
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        statements.append(sql)

    with store.engine.connect() as connection, connection.begin():
        event.listen(store.engine, "before_cursor_execute", seen)
        try:
            Projector().apply_in_bulk(connection, pairs)
        finally:
            event.remove(store.engine, "before_cursor_execute", seen)
        revoked = connection.execute(
            sa.select(sa.func.count()).where(tokens.c.revoked_at.is_not(None))
        ).scalar_one()
        assert revoked == 50
    token_writes = [s for s in statements if " tokens " in s or '"tokens"' in s]
    # One bulk load of the tokens, already revoked where the page revoked them: no UPDATE.
    assert len(token_writes) == 1, token_writes


def test_updates_of_many_rows_to_a_few_values_give_the_rows_one_by_one_gives(
    store: EventStore,
) -> None:
    """A cascade's shape: one update per row, by a one-column key, setting one of a few
    values. PostgreSQL runs such a run as one update of an array of keys per value; the rows
    are those the updates give one by one: the first disabling of a user keeps its time,
    also when a later flush disables them again. A run updating a row twice is run row by
    row, in order."""
    rng = random.Random(3)
    emails = [f"u{i:03}@x.io" for i in range(400)]
    first = [(email, rng.randrange(3)) for email in rng.sample(emails, 300)]
    again = [(email, 7) for email in rng.sample(emails, 80)]  # some already disabled
    twice = [(email, 9) for email in emails[:60]] + [(emails[0], 10)]

    def disable(writes: Writes, which: list[tuple[str, int]]) -> None:
        for email, minute in which:
            writes.update(
                users,
                {"email": email},
                {"disabled": True, "disabled_at": AT + timedelta(minutes=minute)},
                only_if_null=("disabled_at",),
            )

    def insert(writes: Writes) -> None:
        new = {"name": None, "disabled": False, "disabled_at": None, "created_at": AT}
        writes.insert_if_absent(users, [{"email": email, **new} for email in emails])

    updates: list[bool] = []

    def count(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        if statement.startswith("UPDATE"):
            updates.append(many)

    with store.engine.connect() as connection:
        with connection.begin() as transaction:
            insert(Writes(connection))
            for which in (first, again, twice):
                disable(Writes(connection), which)
            expected = rows(connection)
            transaction.rollback()
        with connection.begin() as transaction:
            buffered = BufferedWrites(connection)
            insert(buffered)
            buffered.flush()
            event.listen(store.engine, "before_cursor_execute", count)
            try:
                for which in (first, again, twice):
                    buffered = BufferedWrites(connection)
                    disable(buffered, which)
                    buffered.flush()
            finally:
                event.remove(store.engine, "before_cursor_execute", count)
            assert rows(connection) == expected
            transaction.rollback()
    if store.engine.dialect.name == "postgresql":
        # Three values, then one, then a row twice: row by row.
        assert updates == [False] * 4 + [True]
    else:
        assert updates == [True] * 3
