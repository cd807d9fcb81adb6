"""The storage contract: every case runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from freezegun import freeze_time
from sqlalchemy.exc import DBAPIError

from helpers import append_worker, pending, tamper
from tokenledger.errors import WrongExpectedVersion
from tokenledger.store import GENESIS_HASH, EventStore, Head, PendingEvent
from tokenledger.store.backends import pipelined


def test_append_then_read_round_trips_every_field(store: EventStore) -> None:
    written = store.append(
        [
            PendingEvent(stream_id="org:acme", event_type="OrgCreated", data=b'{"org":"acme"}'),
            PendingEvent(
                stream_id="user:a@x.io", event_type="UserCreated", data=b'{"e": "\xc3\xa9"}'
            ),
        ],
        actor="operator:alice",
        correlation_id="corr-1",
    )
    assert [e.position for e in written] == [1, 2]
    assert written[0].prev_hash == GENESIS_HASH
    assert written[1].prev_hash == written[0].hash
    assert {e.command_id for e in written} == {written[0].command_id}
    assert {e.correlation_id for e in written} == {"corr-1"}

    assert list(store.read_all()) == written
    assert store.read_stream("user:a@x.io") == [written[1]]
    # The payload's exact bytes, not a re-encoding, come back.
    assert store.read_stream("user:a@x.io")[0].data == b'{"e": "\xc3\xa9"}'
    assert store.head() == Head(
        position=2, hash=written[1].hash, recorded_at=written[1].recorded_at
    )


def test_stream_versions_count_up_per_stream(store: EventStore) -> None:
    store.append(pending("a", 2), actor="t")
    store.append(pending("b", 1) + pending("a", 1), actor="t")
    assert [e.stream_version for e in store.read_stream("a")] == [1, 2, 3]
    assert [e.stream_version for e in store.read_stream("b")] == [1]
    assert [e.stream_version for e in store.read_stream("a", from_version=3)] == [3]


def test_a_large_append_is_stored_exactly_like_small_ones(store: EventStore) -> None:
    # Hundreds of events in one append (a cascade, a copied log) take the bulk path on
    # PostgreSQL; what is stored and read back must not depend on it.
    store.append(pending("a", 2), actor="t")
    big = [
        PendingEvent(stream_id=f"s{i % 150}", event_type="E", data=b'{"i":"\xc3\xa9"}')
        for i in range(300)
    ] + pending("a", 1)
    written = store.append(big, actor="operator:bulk", correlation_id="corr-big")
    assert [e.position for e in written] == list(range(3, 304))
    assert list(store.read_all(from_position=3)) == written
    assert [e.stream_version for e in store.read_stream("s7")] == [1, 2]
    assert [e.stream_version for e in store.read_stream("a")] == [1, 2, 3]
    assert store.read_stream("s0")[0].data == b'{"i":"\xc3\xa9"}'
    assert store.verify_chain().ok
    store.append(pending("s7"), actor="t", expected_versions={"s7": 2})


def test_a_large_append_inside_a_pipeline_is_stored(store: EventStore) -> None:
    # PostgreSQL cannot COPY inside a pipeline: there the bulk path gives way to the plain one.
    big = [PendingEvent(stream_id=f"s{i % 7}", event_type="E", data=b"{}") for i in range(250)]
    with store.transaction(actor="t") as tx, pipelined(tx.connection):
        tx.append(big)
    assert [e.position for e in store.read_all()] == list(range(1, 251))
    assert store.verify_chain().ok


def test_a_large_append_that_breaks_a_constraint_leaves_no_trace(store: EventStore) -> None:
    twins = [
        PendingEvent(stream_id=f"s{i}", event_type="E", data=b"{}", event_id="same-id")
        for i in range(200)
    ]
    with pytest.raises(sa.exc.IntegrityError):
        store.append(twins, actor="t")
    assert store.head().position == 0


def test_wrong_expected_version_is_a_typed_conflict_and_appends_nothing(
    store: EventStore,
) -> None:
    store.append(pending("a", 2), actor="t")
    with pytest.raises(WrongExpectedVersion) as caught:
        store.append(pending("a") + pending("b"), actor="t", expected_versions={"a": 1})
    assert (caught.value.expected, caught.value.actual) == (1, 2)
    assert "version 2, not the expected 1" in str(caught.value)
    assert store.head().position == 2
    store.append(pending("a"), actor="t", expected_versions={"a": 2})
    store.append(pending("new"), actor="t", expected_versions={"new": 0})
    assert store.head().position == 4


def test_a_stream_declared_new_is_not_read_and_refused_if_it_exists(store: EventStore) -> None:
    """A command that minted a token id declares its stream new, sparing the read of its
    version; were the id taken after all, the log's unique key refuses the append."""
    store.append(pending("tok-a", 2), actor="t")
    with store.transaction(actor="t") as tx:
        tx.new_stream("tok-b")
        assert [e.stream_version for e in tx.append(pending("tok-b", 2))] == [1, 2]

    def declare_a_taken_id_new() -> None:
        with store.transaction(actor="t") as tx:
            tx.new_stream("tok-a")
            tx.append(pending("tok-a"))

    with pytest.raises(sa.exc.IntegrityError):
        declare_a_taken_id_new()
    assert store.head().position == 4
    assert [e.stream_version for e in store.read_stream("tok-a")] == [1, 2]


def test_a_failed_transaction_leaves_no_trace(store: EventStore) -> None:
    class Boom(Exception):
        pass

    def failing_command() -> None:
        with store.transaction(actor="t") as tx:
            tx.append(pending("a", 3))
            raise Boom

    with pytest.raises(Boom):
        failing_command()
    assert store.head().position == 0
    assert store.append(pending("a"), actor="t")[0].position == 1


def test_several_appends_in_one_transaction_chain_and_share_ids(store: EventStore) -> None:
    with store.transaction(actor="t", correlation_id="c") as tx:
        first = tx.append(pending("a", 2))
        second = tx.append(pending("a", 1))
    assert [e.position for e in first + second] == [1, 2, 3]
    assert second[0].stream_version == 3
    assert second[0].prev_hash == first[-1].hash
    assert store.verify_chain().ok


def test_read_all_pages_and_bounds(store: EventStore) -> None:
    for i in range(7):
        store.append(pending(f"s{i % 3}", 3), actor="t")
    positions = [e.position for e in store.read_all(batch_size=4)]
    assert positions == list(range(1, 22))
    assert [e.position for e in store.read_all(from_position=20, batch_size=2)] == [20, 21]
    assert [e.position for e in store.read_all(until_position=5, batch_size=2)] == [1, 2, 3, 4, 5]


def test_read_by_time_range(store: EventStore) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for day in range(5):
        with freeze_time(start + timedelta(days=day)):
            store.append(pending("a", 2), actor="t")
    window = list(store.read_all(since=start + timedelta(days=1), until=start + timedelta(days=3)))
    assert [e.position for e in window] == [3, 4, 5, 6]
    assert {e.recorded_at for e in window} == {
        start + timedelta(days=1),
        start + timedelta(days=2),
    }


def test_recorded_at_never_goes_backwards(store: EventStore) -> None:
    later = datetime(2026, 6, 1, 12, tzinfo=UTC)
    with freeze_time(later):
        store.append(pending("a"), actor="t")
    with freeze_time(later - timedelta(hours=1)):  # a writer whose clock is behind
        event = store.append(pending("a"), actor="t")[0]
    assert event.recorded_at == later
    assert store.verify_chain().ok


def test_the_database_refuses_update_and_delete(store: EventStore) -> None:
    store.append(pending("a", 2), actor="t")
    for statement in (
        "UPDATE events SET actor = 'mallory'",
        "DELETE FROM events WHERE position = 2",
    ):
        with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.execute(sa.text(statement))
    assert [e.actor for e in store.read_all()] == ["t", "t"]


def test_postgresql_refuses_truncate(postgres_store: EventStore) -> None:
    store = postgres_store
    store.append(pending("a"), actor="t")
    with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE events"))
    assert store.head().position == 1


def test_verify_chain_accepts_an_untouched_log(store: EventStore) -> None:
    assert store.verify_chain().ok
    store.append(pending("a", 5), actor="t")
    report = store.verify_chain(batch_size=2)
    assert report.ok
    assert report.events_checked == 5
    assert report.head == store.head()


@pytest.mark.parametrize(
    ("statement", "problem"),
    [
        ("UPDATE events SET actor = 'mallory' WHERE position = 4", "hash does not match"),
        ("UPDATE events SET data = :forged WHERE position = 4", "hash does not match"),
        ("UPDATE events SET prev_hash = hash WHERE position = 4", "prev_hash"),
        ("DELETE FROM events WHERE position = 4", "position 4 is missing"),
    ],
)
def test_verify_chain_names_the_first_altered_position(
    store: EventStore, statement: str, problem: str
) -> None:
    store.append(pending("a", 6), actor="t")
    params = {"forged": b'{"n":99}'} if ":forged" in statement else {}
    tamper(store.engine, statement, **params)
    report = store.verify_chain(batch_size=3)
    assert not report.ok
    assert report.first_bad_position == 4
    assert problem in (report.problem or "")
    assert report.events_checked == 3


def test_corrupt_payload_with_a_recomputed_chain_is_still_reported(store: EventStore) -> None:
    """An attacker who rewrites the chain still cannot make a broken payload pass."""
    from tokenledger.store.chain import canonical_envelope, chain_hash

    store.append(pending("a", 3), actor="t")
    original = list(store.read_all())
    bad = original[1]
    envelope = canonical_envelope(
        position=bad.position,
        stream_id=bad.stream_id,
        stream_version=bad.stream_version,
        event_id=bad.event_id,
        event_type=bad.event_type,
        schema_version=bad.schema_version,
        recorded_at=bad.recorded_at,
        actor=bad.actor,
        command_id=bad.command_id,
        correlation_id=bad.correlation_id,
        data=b"{not json",
    )
    new_hash = chain_hash(bad.prev_hash, envelope)
    tamper(
        store.engine,
        "UPDATE events SET data = :data, hash = :hash WHERE position = 2",
        data=b"{not json",
        hash=new_hash,
    )
    report = store.verify_chain()
    assert report.first_bad_position == 2
    assert "not valid JSON" in (report.problem or "")


def test_saved_head_detects_truncation_and_rewriting(store: EventStore) -> None:
    store.append(pending("a", 5), actor="t")
    saved = store.head()
    assert store.verify_chain(expected_head=saved).ok
    store.append(pending("a", 2), actor="t")
    assert store.verify_chain(expected_head=saved).ok  # growth is fine

    tamper(store.engine, "DELETE FROM events WHERE position > 4")
    report = store.verify_chain(expected_head=saved)
    assert not report.ok
    assert "truncated" in (report.problem or "")
    assert report.first_bad_position == 5


def test_saved_head_detects_a_rewritten_history(store: EventStore) -> None:
    store.append(pending("a", 3), actor="t")
    forged = Head(position=2, hash="ab" * 32)
    report = store.verify_chain(expected_head=forged)
    assert not report.ok
    assert report.first_bad_position == 2
    assert "rewritten" in (report.problem or "")


@pytest.mark.slow
def test_concurrent_processes_get_gap_free_positions(store: EventStore, database_url: str) -> None:
    workers, per_worker = 4, 1000
    if store.engine.dialect.name == "sqlite":
        per_worker = 250  # each commit is an fsync; the property is the same
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=append_worker, args=(database_url, w, per_worker))
        for w in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=300)
        assert process.exitcode == 0
    records = list(store.read_all())
    assert [r.position for r in records] == list(range(1, workers * per_worker + 1))
    for w in range(workers):
        mine = [r for r in records if r.stream_id == f"w{w}"]
        assert [r.stream_version for r in mine] == list(range(1, per_worker + 1))
        # Each writer's events stay in its own commit order.
        assert [r.data for r in mine] == [b'{"i":%d}' % i for i in range(per_worker)]
    recorded = [r.recorded_at for r in records]
    assert recorded == sorted(recorded)
    report = store.verify_chain()
    assert report.ok, report.problem
    assert report.events_checked == workers * per_worker


# -- what a command acted through (``via``) --------------------------------------------------


def test_via_is_stored_and_read_back_on_every_write_path(store: EventStore) -> None:
    """A row by row write, a pipelined one and a bulk load (COPY on PostgreSQL) all keep it."""
    one = store.append(pending("a", 1), actor="bob@x.io", via="tok_one")
    few = store.append(pending("b", 3), actor="bob@x.io", via="cid_few")
    with store.transaction(actor="bob@x.io", via="ses_piped") as tx, pipelined(tx.connection):
        piped = tx.append(pending("c", 2))
    big = [PendingEvent(stream_id=f"s{i % 9}", event_type="E", data=b"{}") for i in range(150)]
    bulk = store.append(big, actor="bob@x.io", via="tok_bulk")
    stored = list(store.read_all())
    assert stored == [*one, *few, *piped, *bulk]
    assert [e.via for e in stored] == (
        ["tok_one"] + ["cid_few"] * 3 + ["ses_piped"] * 2 + ["tok_bulk"] * 150
    )
    assert store.read_stream("b")[0].via == "cid_few"
    assert store.verify_chain().ok


def test_a_log_mixing_events_with_and_without_via_verifies(store: EventStore) -> None:
    # Events without one hash exactly as every event did before it was kept: old logs
    # verify unchanged, and new events extend them.
    old = store.append(pending("a", 3), actor="operator:root")
    new = store.append(pending("a", 2), actor="bob@x.io", via="tok_abc")
    assert [e.via for e in old] == [None, None, None]
    assert [e.via for e in new] == ["tok_abc", "tok_abc"]
    report = store.verify_chain(batch_size=2)
    assert report.ok
    assert report.events_checked == 5


def test_an_envelope_without_via_is_the_one_hashed_before_it_was_kept() -> None:
    from tokenledger.store.chain import canonical_envelope

    fields = {
        "position": 7,
        "stream_id": "org:acme",
        "stream_version": 1,
        "event_id": "e1",
        "event_type": "OrgCreated",
        "schema_version": 1,
        "recorded_at": datetime(2026, 12, 1, tzinfo=UTC),
        "actor": "operator:root",
        "command_id": "c1",
        "correlation_id": "c1",
        "data": b'{"org":"acme"}',
    }
    assert canonical_envelope(**fields) == (
        b'[7,"org:acme",1,"e1","OrgCreated",1,"2026-12-01T00:00:00.000000Z",'
        b'"operator:root","c1","c1"]\n{"org":"acme"}'
    )
    assert canonical_envelope(**fields, via="tok_x").startswith(
        b'[7,"org:acme",1,"e1","OrgCreated",1,"2026-12-01T00:00:00.000000Z",'
        b'"operator:root","c1","c1","tok_x"]\n'
    )


@pytest.mark.parametrize(
    ("statement", "position"),
    [
        ("UPDATE events SET via = 'tok_mallory' WHERE position = 3", 3),  # changed
        ("UPDATE events SET via = NULL WHERE position = 4", 4),  # removed
        ("UPDATE events SET via = 'tok_mallory' WHERE position = 2", 2),  # added to an old one
    ],
)
def test_tampering_with_via_breaks_the_chain(
    store: EventStore, statement: str, position: int
) -> None:
    store.append(pending("a", 2), actor="operator:root")
    store.append(pending("a", 3), actor="bob@x.io", via="tok_abc")
    tamper(store.engine, statement)
    report = store.verify_chain()
    assert not report.ok
    assert report.first_bad_position == position
    assert "hash does not match" in (report.problem or "")
