"""Replays: rebuilds equal the live projections, drift is reported, past states are exact.

Every case runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import multiprocessing
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from freezegun import freeze_time

from helpers import assert_one_line_error, rebuild_worker
from tokenledger.cli import cli
from tokenledger.domain import commands as c
from tokenledger.domain.model import Actor
from tokenledger.domain.permissions import Level
from tokenledger.errors import LedgerError
from tokenledger.projections.projector import projection_tables
from tokenledger.projections.rebuild import build_into, check, rebuild
from tokenledger.service import Ledger
from tokenledger.store import PendingEvent, open_event_store
from tokenledger.store.mapper import decode_event

OPERATOR = Actor.operator("alice")
START = datetime(2026, 2, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    instance = Ledger(open_event_store(database_url, auto_upgrade=True))
    yield instance
    instance.close()


def random_history(ledger: Ledger, steps: int, seed: int = 7) -> None:
    """A long, seeded sequence of commands of every kind; refused ones are skipped."""
    rng = random.Random(seed)
    run = lambda command: ledger.execute(command, OPERATOR)  # noqa: E731
    run(c.CreateOrg(org="acme"))
    projects = ["acme/p0", "acme/p1", "acme/p2"]
    for project in projects:
        run(c.CreateResource(path=project))
    users = [f"u{i}@acme.io" for i in range(4)]
    for user in users:
        run(c.CreateUser(email=user))
        run(c.AddMember(org="acme", email=user, role=rng.choice(["member", "auditor"])))
    accounts: list[str] = []
    tokens: list[str] = []
    for step in range(steps):
        choice = rng.randrange(9)
        try:
            if choice == 0:
                path = f"{rng.choice(projects)}/c{step}"
                run(c.CreateResource(path=path))
            elif choice == 1:
                run(
                    c.SetGrant(
                        principal=rng.choice(users),
                        resource=rng.choice(projects),
                        level=rng.choice(list(Level)),
                    )
                )
            elif choice == 2:
                name = f"sa{step}"
                run(
                    c.CreateServiceAccount(
                        name=name,
                        org="acme",
                        resource=rng.choice(projects),
                        level=rng.choice([Level.READ, Level.WRITE]),
                    )
                )
                accounts.append(f"{name}@acme.service.tokenledger")
            elif choice in (3, 4) and accounts:
                result = run(c.IssueToken(principal=rng.choice(accounts)))
                tokens.append(result.issued.token_id)  # type: ignore[union-attr]
            elif choice == 5 and accounts:
                run(
                    c.SetServiceAccountPermission(
                        account_id=rng.choice(accounts),
                        resource=rng.choice(projects),
                        level=rng.choice([Level.READ, Level.ADMIN]),
                    )
                )
            elif choice == 6 and tokens:
                result = run(c.IssueToken(parent_id=rng.choice(tokens)))
                tokens.append(result.issued.token_id)  # type: ignore[union-attr]
            elif choice == 7 and tokens:
                run(c.RevokeToken(token_id=rng.choice(tokens)))
            elif choice == 8 and accounts:
                run(c.DeleteServiceAccount(account_id=rng.choice(accounts)))
        except LedgerError:
            pass  # refused commands append nothing; the history goes on


def snapshot(ledger: Ledger) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection row, table by table, in key order."""
    with ledger.store.engine.connect() as connection:
        return {
            table.name: [
                tuple(row)
                for row in connection.execute(sa.select(table).order_by(*table.primary_key.columns))
            ]
            for table in projection_tables()
        }


def test_a_rebuild_equals_the_live_projections(ledger: Ledger) -> None:
    random_history(ledger, 150)
    live = snapshot(ledger)
    assert check(ledger.store, batch_size=17).ok
    report = rebuild(ledger.store, batch_size=17)
    assert report.position == ledger.store.head().position
    assert report.events == report.position
    assert snapshot(ledger) == live
    # The rebuilt tables carry every key and index the live ones did (the audit index is
    # loaded without its key and keyed after).
    inspector = sa.inspect(ledger.store.engine)
    for table in projection_tables():
        key = inspector.get_pk_constraint(table.name)["constrained_columns"]
        assert key == [column.name for column in table.primary_key.columns], table.name
        indexes = {i["name"] for i in inspector.get_indexes(table.name)}
        assert {str(i.name) for i in table.indexes} <= indexes, table.name
    # The rebuilt tables serve as the live ones did.
    ledger.execute(c.CreateResource(path="acme/p0/after"), OPERATOR)
    assert check(ledger.store).ok


def test_a_rebuild_fills_a_live_table_whose_columns_are_in_another_order(ledger: Ledger) -> None:
    """SQLite copies a rebuilt table into the live file wholesale (``SELECT *``) only when the
    live table's columns are in the same order; a table laid out otherwise (altered by hand,
    or by an older tool) is filled column by column, by name."""
    if ledger.store.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL moves the rebuilt tables in; it copies nothing")
    random_history(ledger, 80)
    live = snapshot(ledger)
    assert live["token_grants"]
    with ledger.store.engine.begin() as connection:
        run = connection.exec_driver_sql
        run("ALTER TABLE token_grants RENAME TO token_grants_before")
        run(
            "CREATE TABLE token_grants (level VARCHAR(20) NOT NULL,"
            " resource VARCHAR(200) NOT NULL, token_id VARCHAR(200) NOT NULL,"
            " PRIMARY KEY (token_id, resource, level))"
        )
        run(
            "INSERT INTO token_grants (level, resource, token_id)"
            " SELECT level, resource, token_id FROM token_grants_before"
        )
        run("DROP TABLE token_grants_before")
        run("CREATE INDEX ix_token_grants_resource ON token_grants (resource)")
    assert snapshot(ledger) == live
    rebuild(ledger.store, batch_size=23)
    assert snapshot(ledger) == live
    assert check(ledger.store).ok


def test_check_reports_an_injected_drift(ledger: Ledger, database_url: str) -> None:
    random_history(ledger, 40)
    with ledger.store.engine.begin() as connection:
        connection.execute(sa.text("UPDATE users SET name = 'mallory' WHERE email = 'u1@acme.io'"))
        connection.execute(sa.text("DELETE FROM resources WHERE path = 'acme/p2'"))
    report = check(ledger.store)
    assert not report.ok
    found = {(d.table, d.key) for d in report.differences}
    assert ("users", ("u1@acme.io",)) in found
    assert ("resources", ("acme/p2",)) in found
    missing = next(d for d in report.differences if d.table == "resources")
    assert missing.live is None
    assert missing.rebuilt is not None

    result = CliRunner().invoke(cli, ["--db", database_url, "replay", "--check"])
    assert result.exit_code == 6
    # Piped, progress comes as plain lines on stderr; the verdict is the last line.
    *progress, verdict = result.stderr.strip().splitlines()
    assert all(line.startswith("replayed ") for line in progress)
    assert verdict.startswith("tokenledger: error: projections differ from the log: 2 row(s)")
    assert "users u1@acme.io" in result.stdout
    as_json = CliRunner().invoke(cli, ["--db", database_url, "replay", "--check", "--json"])
    assert as_json.exit_code == 6
    assert json.loads(as_json.stdout)["ok"] is False

    fixed = CliRunner().invoke(cli, ["--db", database_url, "replay"])
    assert fixed.exit_code == 0, fixed.output
    assert "rebuilt the projections" in fixed.stdout
    assert check(ledger.store).ok


def test_until_position_reproduces_an_earlier_state_exactly(
    ledger: Ledger, database_url: str, tmp_path: Any
) -> None:
    random_history(ledger, 60, seed=3)
    then = snapshot(ledger)
    position = ledger.store.head().position
    random_history_more(ledger)
    assert snapshot(ledger) != then
    into = f"sqlite:///{tmp_path / 'then.db'}"
    result = CliRunner().invoke(
        cli,
        [
            "--db",
            database_url,
            "replay",
            "--until-position",
            str(position),
            "--into",
            into,
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["position"] == position
    past = Ledger.open(into)
    try:
        assert snapshot(past) == then
        assert past.store.verify_chain().ok
        [then_event] = ledger.store.read_all(from_position=position, until_position=position)
        assert past.store.head().position == position
        assert past.store.head().hash == then_event.hash
    finally:
        past.close()
    assert check(ledger.store).ok  # the live ledger was left alone


def random_history_more(ledger: Ledger) -> None:
    ledger.execute(c.CreateResource(path="acme/p1/later"), OPERATOR)
    ledger.execute(c.DisableUser(email="u0@acme.io"), OPERATOR)


def test_until_time_builds_the_state_at_that_moment(
    ledger: Ledger, database_url: str, tmp_path: Any
) -> None:
    with freeze_time(START):
        ledger.execute(c.CreateOrg(org="acme"), OPERATOR)
    with freeze_time(START + timedelta(hours=1)):
        ledger.execute(c.CreateResource(path="acme/a"), OPERATOR)
    into = f"sqlite:///{tmp_path / 'at.db'}"
    moment = (START + timedelta(minutes=30)).isoformat()
    result = CliRunner().invoke(
        cli, ["--db", database_url, "replay", "--until", moment, "--into", into]
    )
    assert result.exit_code == 0, result.output
    past = Ledger.open(into)
    try:
        assert [r.path for r in past.list_resources(OPERATOR)] == ["acme"]
    finally:
        past.close()


def test_replay_options_that_would_rewind_the_live_ledger_are_refused(database_url: str) -> None:
    result = CliRunner().invoke(cli, ["--db", database_url, "replay", "--until-position", "1"])
    assert_one_line_error(result, 2, "--into")


def test_an_interrupted_rebuild_leaves_the_live_projections_serving(
    ledger: Ledger, database_url: str
) -> None:
    random_history(ledger, 80, seed=11)
    live = snapshot(ledger)
    context = multiprocessing.get_context("spawn")
    started = context.Event()
    worker = context.Process(target=rebuild_worker, args=(database_url, started))
    worker.start()
    try:
        assert started.wait(timeout=120), "the rebuild never started"
        worker.kill()  # SIGKILL: no cleanup runs
        worker.join(timeout=60)
    finally:
        if worker.is_alive():
            worker.kill()
    assert snapshot(ledger) == live
    ledger.execute(c.CreateResource(path="acme/p0/still-serving"), OPERATOR)
    report = rebuild(ledger.store)
    assert report.position == ledger.store.head().position
    assert check(ledger.store).ok


def test_a_rebuild_over_mixed_event_versions_gives_the_same_projections(ledger: Ledger) -> None:
    ledger.execute(c.CreateOrg(org="acme"), OPERATOR)
    ledger.execute(c.CreateResource(path="acme/a"), OPERATOR)
    ledger.execute(
        c.CreateServiceAccount(name="ci", org="acme", resource="acme/a", level=Level.READ), OPERATOR
    )
    v1 = (
        b'{"type":"TokenIssued","token_id":"tok_AAAAAAAAAAAAAAAA",'
        b'"principal":"ci@acme.service.tokenledger","kind":"service","secret_hash":"'
        + b"ab"
        * 32
        + b'","grants":[{"resource":"acme/a","level":"read"}],"name":"old",'
        b'"issued_at":"2026-01-02T03:04:05.000006Z","expires_at":null,"parent_id":null}'
    )
    with ledger.store.transaction(actor="operator:old-version") as tx:
        records = tx.append(
            [
                PendingEvent(
                    stream_id="token:tok_AAAAAAAAAAAAAAAA",
                    event_type="TokenIssued",
                    schema_version=1,
                    data=v1,
                )
            ]
        )
        ledger.projector.apply(tx.connection, [(records[0], decode_event(records[0]))])
    ledger.execute(c.IssueToken(principal="ci@acme.service.tokenledger"), OPERATOR)
    versions = {r.schema_version for r in ledger.store.read_all() if r.event_type == "TokenIssued"}
    assert versions == {1, 2}
    live = snapshot(ledger)
    rebuild(ledger.store)
    assert snapshot(ledger) == live
    assert ledger.get_token(OPERATOR, "tok_AAAAAAAAAAAAAAAA").name == "old"


def test_build_into_refuses_a_target_holding_another_ledger(ledger: Ledger, tmp_path: Any) -> None:
    ledger.execute(c.CreateOrg(org="acme"), OPERATOR)
    other = Ledger.open(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        other.execute(c.CreateOrg(org="zeta"), OPERATOR)
        with pytest.raises(LedgerError, match="another ledger"):
            build_into(ledger.store, other.store, until_position=1)
    finally:
        other.close()


def test_one_rebuild_at_a_time(ledger: Ledger) -> None:
    """A second rebuild would discard the first one's shadow: it is refused instead."""
    ledger.execute(c.CreateOrg(org="acme"), OPERATOR)
    engine = ledger.store.engine
    if engine.dialect.name == "postgresql":
        holder = engine.connect()
        holder.exec_driver_sql("SELECT pg_advisory_lock(7236713, 'events'::regclass::oid::int4)")
        holder.commit()

        def release() -> None:
            # Session-level: it would outlive close() in the pool, so unlock explicitly.
            holder.exec_driver_sql(
                "SELECT pg_advisory_unlock(7236713, 'events'::regclass::oid::int4)"
            )
            holder.commit()
            holder.close()

    else:
        import fcntl

        lock = open(f"{engine.url.database}.rebuild.lock", "a")  # noqa: SIM115
        fcntl.flock(lock, fcntl.LOCK_EX)
        release = lock.close
    try:
        with pytest.raises(LedgerError, match="another rebuild"):
            rebuild(ledger.store)
        with pytest.raises(LedgerError, match="another rebuild"):
            check(ledger.store)
    finally:
        release()
    assert check(ledger.store).ok
