"""What every storage backend must do: the ``Backend`` protocol's guarantees, as tests.

``BackendContract`` holds the tests; a backend's test class subclasses it and provides
one fixture, ``contract_url``: the URL of an empty database of that backend (see
``tests/test_backends.py``). Every test goes through the protocol (``backend_for``) and
the event store built on it, never through a backend's own functions, so a third backend
that passes this class does what the ledger needs of it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from tokenledger.errors import Conflict
from tokenledger.projections.projector import projection_tables
from tokenledger.projections.schema import orgs, users
from tokenledger.store import EventStore, PendingEvent, RecordedEvent, open_event_store
from tokenledger.store.backend import (
    BULK_EVENTS,
    SET,
    WHERE,
    WRITE_OPTION,
    Backend,
    WriteStrategy,
    update_statement,
    write_strategy,
)
from tokenledger.store.backends import backend_for, backend_for_url
from tokenledger.store.driver import DriverStatement
from tokenledger.store.schema import events

WHEN = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)

_COUNT_EVENTS = DriverStatement(sa.select(sa.func.count()).select_from(events))
_COUNT_ORGS = DriverStatement(sa.select(sa.func.count()).select_from(orgs))


def record(
    position: int, stream: str, version: int, *, event_id: str | None = None
) -> RecordedEvent:
    """An event row as an append would make it (hashes need not link: only the store's
    append chains them)."""
    return RecordedEvent(
        position=position,
        stream_id=stream,
        stream_version=version,
        event_id=event_id or f"evt-{position}",
        event_type="E",
        schema_version=1,
        data=b'{"n":%d}' % position,
        recorded_at=WHEN + timedelta(seconds=position),
        actor="operator:contract",
        command_id="cmd",
        correlation_id="cmd",
        prev_hash="0" * 64,
        hash=f"{position:064x}",
    )


def rows_of(connection: Connection, table: sa.Table) -> list[tuple[Any, ...]]:
    query = sa.select(table).order_by(*table.primary_key.columns)
    return [tuple(row) for row in connection.execute(query)]


def user_row(n: int) -> dict[str, Any]:
    return {
        "email": f"u{n:04d}@acme.io",
        "name": None if n % 3 == 0 else f"User {n}",
        "disabled": False,
        "disabled_at": None,
        "created_at": WHEN,
        "account_id": None,
    }


class BackendContract:
    """The guarantees of ``tokenledger.store.backend.Backend``, for one backend."""

    @pytest.fixture
    def contract_url(self) -> str:
        raise NotImplementedError("a backend's test class gives the URL of an empty database")

    @pytest.fixture
    def store(self, contract_url: str) -> Iterator[EventStore]:
        event_store = open_event_store(contract_url, auto_upgrade=True)
        yield event_store
        event_store.engine.dispose()

    @pytest.fixture
    def engine(self, store: EventStore) -> Engine:
        return store.engine

    @pytest.fixture
    def backend(self, engine: Engine) -> Backend:
        return backend_for(engine)

    # -- engines -------------------------------------------------------------------------

    def test_the_backend_is_chosen_once_by_url_and_by_engine(
        self, contract_url: str, engine: Engine, backend: Backend
    ) -> None:
        assert backend_for_url(make_url(contract_url)) is backend
        assert backend_for(engine) is backend
        with engine.connect() as connection:
            assert backend_for(connection) is backend
        url = backend.normalise_url(make_url(contract_url))
        other = backend.create_engine(url)
        try:
            with other.connect() as connection:
                assert connection.execute(sa.select(sa.literal(1))).scalar_one() == 1
            assert backend_for(other) is backend
        finally:
            other.dispose()

    # -- the write lock ------------------------------------------------------------------

    def _holds_lock_while(
        self, engine: Engine, take: Any, during: Any, *, hold: float = 0.3
    ) -> tuple[float, float]:
        """Hold the lock ``take`` takes for ``hold`` seconds while ``during`` runs in another
        thread (taking it too); return when the holder committed and when ``during``
        returned."""
        taken = threading.Event()
        times: dict[str, float] = {}
        failures: list[BaseException] = []

        def holder() -> None:
            try:
                with (
                    engine.connect().execution_options(**{WRITE_OPTION: True}) as connection,
                    connection.begin(),
                ):
                    take(connection)
                    taken.set()
                    time.sleep(hold)
                    during_holder(connection)
                    times["committed"] = time.monotonic()
            except BaseException as error:  # reported below
                failures.append(error)
                taken.set()

        def during_holder(connection: Connection) -> None:
            backend_for(connection).insert_events(connection, [record(1, "s", 1)], bulk=False)

        def other() -> None:
            try:
                taken.wait(10)
                during()
                times["other"] = time.monotonic()
            except BaseException as error:
                failures.append(error)

        threads = [threading.Thread(target=holder), threading.Thread(target=other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not failures, failures
        return times["committed"], times["other"]

    def test_the_write_lock_serialises_writers(self, engine: Engine, backend: Backend) -> None:
        seen: list[int] = []

        def second_writer() -> None:
            with (
                engine.connect().execution_options(**{WRITE_OPTION: True}) as connection,
                connection.begin(),
            ):
                backend.write_lock(connection)
                # Every statement after the lock sees what committed before it.
                seen.append(_COUNT_EVENTS.scalar(connection))

        committed, locked = self._holds_lock_while(engine, backend.write_lock, second_writer)
        assert locked >= committed
        assert seen == [1]

    def test_readers_do_not_wait_for_the_write_lock(self, engine: Engine, backend: Backend) -> None:
        counted: list[int] = []

        def reader() -> None:
            with engine.connect() as connection:
                counted.append(
                    connection.execute(sa.select(sa.func.count()).select_from(events)).scalar_one()
                )

        committed, read = self._holds_lock_while(engine, backend.write_lock, reader)
        assert read < committed
        assert counted == [0]  # what was committed, not the holder's insert

    def test_a_commit_wakes_the_commit_watcher(self, store: EventStore, engine: Engine) -> None:
        # Subscriptions wait on this (``store.notify``): a commit after the value noted
        # (here by another connection's append, announced with ``announce_head``) moves it.
        from tokenledger.store.notify import commit_signal, release

        signal, watcher = commit_signal(engine)
        try:
            seen = signal.generation
            store.append([PendingEvent(stream_id="w", event_type="E", data=b"{}")], actor="t")
            assert signal.wait(seen, 30, lambda: False)
        finally:
            release(watcher)

    def test_the_migration_lock_serialises_migrations(
        self, engine: Engine, backend: Backend
    ) -> None:
        def second() -> None:
            with (
                engine.connect().execution_options(**{WRITE_OPTION: True}) as connection,
                connection.begin(),
            ):
                backend.migration_lock(connection)

        committed, locked = self._holds_lock_while(engine, backend.migration_lock, second)
        assert locked >= committed

    def test_concurrent_appends_get_gap_free_positions_in_commit_order(
        self, store: EventStore
    ) -> None:
        def writer(n: int) -> None:
            for i in range(10):
                store.append(
                    [PendingEvent(stream_id=f"w{n}", event_type="E", data=b"{}")],
                    actor="t",
                    expected_versions={f"w{n}": i},
                )

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        recorded = list(store.read_all())
        assert [e.position for e in recorded] == list(range(1, 41))
        for n in range(4):
            assert [e.stream_version for e in store.read_stream(f"w{n}")] == list(range(1, 11))
        assert store.verify_chain().ok

    # -- the log -------------------------------------------------------------------------

    def test_stream_versions_are_the_latest_of_each_stream_whatever_their_number(
        self, engine: Engine, backend: Backend
    ) -> None:
        records = [record(n + 1, f"s{n % 700}", n // 700 + 1) for n in range(1_400 + 3)]
        with engine.begin() as connection:
            backend.insert_events(connection, records, bulk=True)
            wanted = [f"s{n}" for n in range(700)] + ["missing"]
            found = backend.stream_versions(connection, wanted)
            assert backend.stream_versions(connection, []) == {}
        assert "missing" not in found
        assert found["s0"] == found["s1"] == found["s2"] == 3
        assert {found[f"s{n}"] for n in range(3, 700)} == {2}

    @pytest.mark.parametrize("bulk", [False, True])
    def test_inserted_events_read_back_exactly(
        self, store: EventStore, backend: Backend, bulk: bool
    ) -> None:
        records = [record(n, f"s{n % 7}", (n - 1) // 7 + 1) for n in range(1, 251)]
        with store.engine.begin() as connection:
            backend.insert_events(connection, records, bulk=bulk)
        assert list(store.read_all()) == records

    @pytest.mark.parametrize("bulk", [False, True])
    def test_an_insert_that_breaks_a_constraint_raises_integrity_error(
        self, store: EventStore, backend: Backend, bulk: bool
    ) -> None:
        twins = [record(n, f"s{n}", 1, event_id="same") for n in range(1, 151)]
        with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as connection:
            backend.insert_events(connection, twins, bulk=bulk)
        assert store.head().position == 0

    def test_stored_times_read_raw_are_the_times_written(
        self, engine: Engine, backend: Backend
    ) -> None:
        with engine.begin() as connection:
            backend.insert_events(connection, [record(1, "s", 1)], bulk=False)
            raw = connection.execute(
                sa.select(sa.type_coerce(events.c.recorded_at, sa.String()))
            ).scalar_one()
        assert backend.stored_time(raw) == WHEN + timedelta(seconds=1)
        assert backend.stored_time(raw).tzinfo is not None
        for forged in ("yesterday", 42, None, b"\xff"):
            assert backend.stored_time(forged) == forged

    # -- projection rows -----------------------------------------------------------------

    def test_insert_on_conflict_ignores_or_updates_the_existing_row(
        self, engine: Engine, backend: Backend
    ) -> None:
        ignore = backend.insert_on_conflict(users, tuple(user_row(1)))
        overwrite = backend.insert_on_conflict(
            users, tuple(user_row(1)), lambda excluded: {"name": excluded.name}
        )
        with engine.begin() as connection:
            ignore.execute(connection, user_row(1)).close()
            ignore.execute(connection, {**user_row(1), "name": "Other"}).close()
            assert rows_of(connection, users)[0][1] == "User 1"
            overwrite.executemany(connection, [{**user_row(1), "name": "New"}])
            assert rows_of(connection, users) == [("u0001@acme.io", "New", False, None, WHEN, None)]

    def test_loading_rows_in_bulk_equals_inserting_them_one_by_one(
        self, engine: Engine, backend: Backend
    ) -> None:
        rows = [user_row(n) for n in range(300)]
        columns = tuple(rows[0])
        one_by_one = backend.insert_on_conflict(users, columns)
        with engine.connect() as connection:
            with connection.begin() as transaction:
                backend.load_rows(connection, users, columns, rows)
                loaded = rows_of(connection, users)
                transaction.rollback()
            with connection.begin() as transaction:
                for row in rows:
                    one_by_one.execute(connection, row).close()
                inserted = rows_of(connection, users)
                transaction.rollback()
        assert loaded == inserted
        assert len(loaded) == 300

    def test_loading_a_row_whose_key_exists_raises_integrity_error(
        self, engine: Engine, backend: Backend
    ) -> None:
        with engine.begin() as connection:
            backend.load_rows(
                connection, orgs, ("org", "created_at"), [{"org": "a", "created_at": WHEN}]
            )
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
            backend.load_rows(
                connection,
                orgs,
                ("org", "created_at"),
                [{"org": "b", "created_at": WHEN}, {"org": "a", "created_at": WHEN}],
            )
        with engine.connect() as connection:
            assert [row[0] for row in rows_of(connection, orgs)] == ["a"]

    @pytest.mark.parametrize(
        "case", ["same values", "a row twice", "different values", "only if null"]
    )
    def test_updating_many_rows_equals_updating_them_one_by_one(
        self, engine: Engine, backend: Backend, case: str
    ) -> None:
        seed = [user_row(n) for n in range(200)]
        where, values = ("email",), ("disabled", "disabled_at")
        only_if_null: tuple[str, ...] = ()
        later = WHEN + timedelta(days=1)
        updates = [
            {
                WHERE + "email": f"u{n:04d}@acme.io",
                SET + "disabled": True,
                SET + "disabled_at": later,
            }
            for n in range(0, 200, 2)
        ]
        if case == "a row twice":
            updates.append({**updates[0], SET + "disabled": False})
        elif case == "different values":
            for n, update in enumerate(updates):
                update[SET + "disabled_at"] = later + timedelta(seconds=n)
        elif case == "only if null":
            where, values, only_if_null = ("email",), ("name",), ("name",)
            updates = [
                {WHERE + "email": f"u{n:04d}@acme.io", SET + "name": "Named"} for n in range(200)
            ]
        one = update_statement(users, where, values, only_if_null)
        results = []
        with engine.connect() as connection:
            for many in (True, False):
                with connection.begin() as transaction:
                    backend.load_rows(connection, users, tuple(seed[0]), seed)
                    if many:
                        backend.update_many(connection, users, where, values, only_if_null, updates)
                    else:
                        for update in updates:
                            one.execute(connection, update).close()
                    results.append(rows_of(connection, users))
                    transaction.rollback()
        assert results[0] == results[1]
        assert results[0] != [tuple(row.values()) for row in seed]

    def test_a_pipeline_returns_the_same_results(self, engine: Engine, backend: Backend) -> None:
        insert = backend.insert_on_conflict(orgs, ("org", "created_at"))
        with engine.begin() as connection:
            assert not backend.in_pipeline(connection)
            with backend.pipeline(connection):
                assert backend.in_pipeline(connection) is backend.pipelines
                for n in range(20):
                    insert.execute(connection, {"org": f"o{n:02d}", "created_at": WHEN}).close()
                with backend.pipeline(connection):  # adds nothing
                    insert.executemany(connection, [{"org": "o20", "created_at": WHEN}])
                # Reading a result waits for everything sent before it.
                assert _COUNT_ORGS.scalar(connection) == 21
                backend.update_many(
                    connection,
                    orgs,
                    ("org",),
                    ("created_at",),
                    (),
                    [{WHERE + "org": "o00", SET + "created_at": WHEN + timedelta(days=1)}],
                )
            assert not backend.in_pipeline(connection)
            rows = rows_of(connection, orgs)
        assert [row[0] for row in rows] == [f"o{n:02d}" for n in range(21)]
        assert rows[0][1] == WHEN + timedelta(days=1)

    def test_an_error_in_a_pipeline_is_an_sqlalchemy_error(
        self, engine: Engine, backend: Backend
    ) -> None:
        insert = backend.insert_on_conflict(orgs, ("org", "created_at"))
        plain = DriverStatement(sa.insert(orgs), column_keys=("org", "created_at"))
        with engine.begin() as connection:
            insert.execute(connection, {"org": "a", "created_at": WHEN}).close()
        with (
            pytest.raises(sa.exc.IntegrityError),
            engine.begin() as connection,
            backend.pipeline(connection),
        ):
            plain.executemany(connection, [{"org": "a", "created_at": WHEN}])

    def test_the_write_strategy_follows_the_size_and_the_backend(
        self, engine: Engine, backend: Backend
    ) -> None:
        with engine.connect() as connection:

            def strategy(events: int, wanted: WriteStrategy | None = None) -> WriteStrategy:
                return write_strategy(backend, connection, events, wanted=wanted)

            assert strategy(BULK_EVENTS) is WriteStrategy.BULK
            assert strategy(10_000) is WriteStrategy.BULK
            few = WriteStrategy.PIPELINED if backend.pipelines else WriteStrategy.BATCHED
            assert strategy(2) is few
            assert strategy(1) is (
                WriteStrategy.PIPELINED if backend.pipelines else WriteStrategy.ROW_BY_ROW
            )
            assert strategy(1, WriteStrategy.BULK) is WriteStrategy.BULK
            assert strategy(5, WriteStrategy.PIPELINED) is few
            with connection.begin(), backend.pipeline(connection):
                # Inside a pipeline nothing may need an answer at once, whatever the size.
                inside = WriteStrategy.PIPELINED if backend.pipelines else WriteStrategy.BULK
                assert strategy(10_000) is inside

    def test_a_large_append_inside_a_pipeline_is_stored(
        self, store: EventStore, backend: Backend
    ) -> None:
        big = [PendingEvent(stream_id=f"s{i % 7}", event_type="E", data=b"{}") for i in range(250)]
        with store.transaction(actor="t") as tx, backend.pipeline(tx.connection):
            tx.append(big)
        assert [e.position for e in store.read_all()] == list(range(1, 251))
        assert store.verify_chain().ok

    # -- rebuilds ------------------------------------------------------------------------

    def _fill_live(self, engine: Engine, backend: Backend) -> None:
        with engine.begin() as connection:
            backend.load_rows(
                connection, orgs, ("org", "created_at"), [{"org": "old", "created_at": WHEN}]
            )

    def _fill_shadow(self, connection: Connection, backend: Backend) -> None:
        with connection.begin():
            backend.load_rows(
                connection,
                orgs,
                ("org", "created_at"),
                [{"org": f"new{n}", "created_at": WHEN} for n in range(3)],
            )
            backend.load_rows(connection, users, tuple(user_row(1)), [user_row(1)])

    def test_a_shadow_is_built_beside_the_live_tables_and_swapped_in_atomically(
        self, engine: Engine, backend: Backend
    ) -> None:
        self._fill_live(engine, backend)
        tables = projection_tables()
        with engine.connect() as connection, backend.shadow(connection, tables) as shadow:
            self._fill_shadow(shadow.connection, backend)
            shadow.finish(tables)
            with engine.connect() as live:
                # The live tables are untouched while the shadow is built.
                assert [row[0] for row in rows_of(live, orgs)] == ["old"]
                assert rows_of(live, users) == []
            # A swap rolled back leaves the live tables as they were.
            shadow.connection.execution_options(**{WRITE_OPTION: True})
            with shadow.connection.begin() as transaction:
                backend.write_lock(shadow.connection)
                shadow.swap_in(tables)
                transaction.rollback()
            with engine.connect() as live:
                assert [row[0] for row in rows_of(live, orgs)] == ["old"]
            with shadow.connection.begin():
                backend.write_lock(shadow.connection)
                shadow.swap_in(tables)
            shadow.connection.execution_options(**{WRITE_OPTION: False})
        with engine.connect() as live:
            assert [row[0] for row in rows_of(live, orgs)] == ["new0", "new1", "new2"]
            assert [row[0] for row in rows_of(live, users)] == ["u0001@acme.io"]
        # Keys and indexes came with the swap: a duplicate is still refused.
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
            connection.execute(orgs.insert(), [{"org": "new0", "created_at": WHEN}])

    def test_one_shadow_at_a_time_each_starting_empty(
        self, engine: Engine, backend: Backend
    ) -> None:
        tables = projection_tables()
        with engine.connect() as connection, backend.shadow(connection, tables) as shadow:
            self._fill_shadow(shadow.connection, backend)
            with (
                pytest.raises(Conflict),
                engine.connect() as other,
                backend.shadow(other, tables),
            ):
                pass
        with engine.connect() as connection, backend.shadow(connection, tables) as shadow:
            assert rows_of(shadow.connection, orgs) == []

    # -- reads ---------------------------------------------------------------------------

    @pytest.fixture
    def reader(self, engine: Engine, backend: Backend) -> Iterator[Connection]:
        connection = engine.connect()
        connection.connection.detach()
        backend.prepare_reader(connection)
        yield connection
        connection.close()

    def test_a_read_snapshot_sees_committed_data_in_one_state(
        self, engine: Engine, backend: Backend, reader: Connection
    ) -> None:
        insert = backend.insert_on_conflict(orgs, ("org", "created_at"))
        with engine.connect() as writer:
            writer.begin()
            insert.execute(writer, {"org": "uncommitted", "created_at": WHEN}).close()
            with backend.read_snapshot(reader) as connection:
                assert _COUNT_ORGS.scalar(connection) == 0
            writer.rollback()
            with backend.read_snapshot(reader) as connection:
                before = _COUNT_ORGS.scalar(connection)
                with engine.begin() as other:
                    insert.execute(other, {"org": "committed", "created_at": WHEN}).close()
                after = _COUNT_ORGS.scalar(connection)
        assert before == 0
        # One state across statements, or each statement its own (and the backend says so).
        assert after == (0 if backend.snapshots_span_statements else 1)
        with backend.read_snapshot(reader) as connection:
            assert _COUNT_ORGS.scalar(connection) == 1

    def test_driver_statements_convert_values_as_sqlalchemy_does(
        self, engine: Engine, backend: Backend
    ) -> None:
        insert = backend.insert_on_conflict(users, tuple(user_row(1)))
        # Given in another zone: stored as the same instant, read back in UTC.
        when = datetime(2026, 3, 1, 14, 0, 0, 5, tzinfo=UTC).astimezone(
            timezone(timedelta(hours=2))
        )
        read = DriverStatement(sa.select(users).where(users.c.email == sa.bindparam("email")))
        unprepared = DriverStatement(
            sa.select(users.c.created_at).where(
                users.c.created_at >= sa.bindparam("t", type_=users.c.created_at.type)
            ),
            prepare=False,
        )
        with engine.begin() as connection:
            insert.execute(connection, {**user_row(1), "created_at": when}).close()
            by_driver = read.first(connection, {"email": "u0001@acme.io"})
            by_sqlalchemy = tuple(connection.execute(sa.select(users)).one())
            assert unprepared.all(connection, {"t": when}) == [(when,)]
            with pytest.raises(ValueError, match="naive"):
                insert.execute(connection, {**user_row(2), "created_at": datetime(2026, 1, 1)})
        assert by_driver == by_sqlalchemy
        assert by_driver is not None
        assert by_driver[4] == when
        assert by_driver[4].tzinfo is UTC
        assert by_driver[2] is False
