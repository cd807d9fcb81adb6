"""Catch-up subscriptions: every event after a checkpoint, in order, once; then each commit
as it lands, woken by the database (NOTIFY, the change counter), never by reading the log
while nothing changes. Every wait has a timeout; nothing waits for time to pass."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from helpers import pending
from tokenledger.service import Ledger
from tokenledger.service.subscription import Subscription
from tokenledger.store import RecordedEvent, open_event_store
from tokenledger.store.notify import LISTENER_APPLICATION_NAME, PostgresListener

#: Generous: only a failure ever waits this long.
WAIT = 30.0


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    open_event_store(database_url, auto_upgrade=True).engine.dispose()
    opened = Ledger.open(database_url)
    yield opened
    opened.close()


@pytest.fixture
def writer(database_url: str, ledger: Ledger) -> Iterator[Ledger]:
    """Another ``Ledger`` on the same database: another process's writes, as far as the
    subscriber can tell."""
    other = Ledger.open(database_url)
    yield other
    other.close()


def append_in_thread(writer: Ledger, batches: int, per_batch: int = 1) -> threading.Thread:
    def run() -> None:
        for n in range(batches):
            writer.store.append(pending(f"s{n}", per_batch), actor="t")

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def collect(subscription: Subscription, count: int) -> list[RecordedEvent]:
    """``count`` events, or fail after WAIT seconds without any arriving."""
    got: list[RecordedEvent] = []
    while len(got) < count:
        batch = subscription.next_batch(timeout=WAIT)
        assert batch, f"nothing arrived after {len(got)} of {count} events"
        got.extend(batch)
    return got


def test_from_zero_delivers_the_log_then_new_commits(ledger: Ledger, writer: Ledger) -> None:
    ledger.store.append(pending("a", 5), actor="t")
    with Subscription(ledger.store, after=0, page_size=2) as subscription:
        first = subscription.next_batch(timeout=WAIT)
        assert [e.position for e in first] == [1, 2]  # one page at a time
        thread = append_in_thread(writer, batches=20, per_batch=3)
        got = first + collect(subscription, 5 + 60 - 2)
        thread.join(WAIT)
        assert [e.position for e in got] == list(range(1, 66))
        assert subscription.position == 65
        assert subscription.next_batch(timeout=0) == []


def test_from_a_checkpoint_delivers_exactly_what_follows(ledger: Ledger, writer: Ledger) -> None:
    ledger.store.append(pending("a", 10), actor="t")
    with ledger.subscribe(after=6) as subscription:
        assert [e.position for e in subscription.next_batch(timeout=WAIT)] == [7, 8, 9, 10]
        writer.store.append(pending("b", 2), actor="t")
        assert [e.position for e in collect(subscription, 2)] == [11, 12]
    with ledger.subscribe(after=12) as at_head:
        assert at_head.next_batch(timeout=0) == []


def test_iterating_follows_the_log(ledger: Ledger, writer: Ledger) -> None:
    ledger.store.append(pending("a", 2), actor="t")
    thread = append_in_thread(writer, batches=3)
    with ledger.subscribe() as subscription:
        positions = []
        for record in subscription:
            positions.append(record.position)
            if len(positions) == 5:
                break
    thread.join(WAIT)
    assert positions == [1, 2, 3, 4, 5]


class EventReads:
    """Statements on an engine that read the events table."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.count = 0

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "events" in statement.lower():
            self.count += 1

    def __enter__(self) -> EventReads:
        sa.event.listen(self.engine, "before_cursor_execute", self)
        return self

    def __exit__(self, *_: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self)


def wait_watching() -> None:
    """Until the process's watcher (either database's) has started watching."""
    from tokenledger.store import notify

    for watcher in list(notify._watchers.values()):
        assert watcher.watching.wait(WAIT)


def wait_listening() -> PostgresListener:
    from tokenledger.store import notify

    listener = next(w for w in notify._watchers.values() if isinstance(w, PostgresListener))
    assert listener.watching.wait(WAIT)
    return listener


def test_nothing_is_read_while_nothing_is_appended(ledger: Ledger, writer: Ledger) -> None:
    ledger.store.append(pending("a", 3), actor="t")
    with ledger.subscribe() as subscription:
        assert len(subscription.next_batch(timeout=WAIT)) == 3
        wait_watching()  # it then wakes its subscribers once, to catch up
        with EventReads(ledger.store.engine) as reads:
            assert subscription.next_batch(timeout=0) == []  # that wake-up, if not yet seen
            settled = reads.count
            assert subscription.next_batch(timeout=0.5) == []
            assert reads.count == settled
            thread = append_in_thread(writer, batches=1)
            assert [e.position for e in collect(subscription, 1)] == [4]
            thread.join(WAIT)
            assert reads.count > settled


def test_a_lost_listening_connection_is_re_established(
    postgres_server: Any, database_url: str, ledger: Ledger, writer: Ledger
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's LISTEN connection")
    ledger.store.append(pending("a", 1), actor="t")
    with ledger.subscribe() as subscription:
        assert len(subscription.next_batch(timeout=WAIT)) == 1
        listener = wait_listening()
        with psycopg.connect(postgres_server.conninfo(), autocommit=True) as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s AND datname = current_database()",
                (LISTENER_APPLICATION_NAME,),
            ).fetchall()
        assert killed
        assert all(ok for (ok,) in killed)
        # Appended whether or not the listener has noticed yet: nothing may be missed.
        writer.store.append(pending("b", 2), actor="t")
        assert [e.position for e in collect(subscription, 2)] == [2, 3]
        assert listener.watching.wait(WAIT)
        writer.store.append(pending("c", 1), actor="t")
        assert [e.position for e in collect(subscription, 1)] == [4]


def test_the_async_form(ledger: Ledger, writer: Ledger) -> None:
    ledger.store.append(pending("a", 2), actor="t")

    async def follow() -> list[int]:
        positions: list[int] = []
        with ledger.subscribe_async(after=1) as subscription:
            thread = append_in_thread(writer, batches=3)
            async for record in subscription:
                positions.append(record.position)
                if len(positions) == 4:
                    break
            await asyncio.to_thread(thread.join, WAIT)
        return positions

    assert asyncio.run(asyncio.wait_for(follow(), WAIT)) == [2, 3, 4, 5]


def test_events_follow_prints_what_follows_then_stops(ledger: Ledger, writer: Ledger) -> None:
    ledger.store.append(pending("a", 3), actor="t")
    url = ledger.store.engine.url.render_as_string(hide_password=False)
    cli = [sys.executable, "-c", "from tokenledger.cli import main; main()"]
    process = subprocess.Popen(
        [*cli, "--db", url, "events", "--follow", "--from", "3", "--limit", "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("TOKENLEDGER_")},
    )
    try:
        assert process.stdout is not None
        first = json.loads(process.stdout.readline())  # printed once it is following
        assert first["position"] == 3
        writer.store.append(pending("b", 5), actor="t")
        out, err = process.communicate(timeout=WAIT)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert [json.loads(line)["position"] for line in out.splitlines()] == [4, 5, 6]


def test_events_follow_ends_quietly_on_ctrl_c(ledger: Ledger) -> None:
    ledger.store.append(pending("a", 1), actor="t")
    url = ledger.store.engine.url.render_as_string(hide_password=False)
    cli = [sys.executable, "-c", "from tokenledger.cli import main; main()"]
    process = subprocess.Popen(
        [*cli, "--db", url, "events", "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("TOKENLEDGER_")},
        # Whatever this process does with Ctrl-C, the command gets the default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert process.stdout is not None
        assert json.loads(process.stdout.readline())["position"] == 1  # it is following
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=WAIT)
    finally:
        process.kill()
    assert process.returncode == 0
    assert (out, err) == ("", "")


def test_events_follow_refuses_a_stream(ledger: Ledger) -> None:
    from click.testing import CliRunner

    from helpers import assert_one_line_error
    from tokenledger.cli import cli

    url = ledger.store.engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(cli, ["--db", url, "events", "--follow", "--stream", "a"])
    assert_one_line_error(result, 2, "--stream")


def test_a_subscriber_far_behind_holds_one_page_at_a_time(ledger: Ledger) -> None:
    ledger.store.append(pending("a", 95), actor="t")
    with Subscription(ledger.store, after=0, page_size=10) as subscription:
        pages = [subscription.next_batch(timeout=0) for _ in range(10)]
    assert [len(page) for page in pages] == [10] * 9 + [5]
    assert [e.position for page in pages for e in page] == list(range(1, 96))
