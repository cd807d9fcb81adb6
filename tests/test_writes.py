"""Batched projection writes mean exactly what the same writes run one by one mean."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from tokenledger.projections.schema import user_grants, users
from tokenledger.projections.writes import BufferedWrites, Writes
from tokenledger.store import EventStore

AT = datetime(2026, 1, 1, tzinfo=UTC)


def operations(seed: int, count: int) -> list[tuple[str, Any]]:
    """A random mix of every operation on a few rows, so that rows are touched repeatedly."""
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
                    ("disable_user", email),
                    ("upsert_grant", (email, resource, level)),
                    ("insert_grant", (email, resource, level)),
                    ("update_grant", (email, resource, level)),
                    ("delete_grant", (email, resource)),
                    ("delete_grants_of", email),  # no whole key: a barrier
                ]
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
            writes.update(
                users, {"email": arg, "disabled": False}, {"disabled": True, "disabled_at": AT}
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


def test_buffered_writes_give_the_rows_immediate_writes_give(store: EventStore) -> None:
    for seed in range(5):
        ops = operations(seed, 300)
        with store.engine.connect() as connection:
            with connection.begin() as transaction:
                run(Writes(connection), ops)
                expected = rows(connection)
                transaction.rollback()
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
