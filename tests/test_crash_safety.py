"""Crash safety: a writer killed with SIGKILL in the middle of a command leaves all of the
command's events or none, with the projections and the hash chain consistent; SQLite commits
are durable (WAL, synchronous=FULL).

A rebuild killed midway (the live projections keep serving, a rerun completes) is covered in
tests/test_replay.py.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import assert_projections_match_log
from tokenledger.domain import commands as c
from tokenledger.domain.events import ServiceAccountPermissionMoved, TokenRevoked
from tokenledger.domain.permissions import Grant
from tokenledger.domain.state import LedgerState
from tokenledger.service import Ledger
from tokenledger.store import Head, open_event_store
from tokenledger.store.mapper import decode_event
from workers_crash import (
    AFTER_COMMIT,
    ALPHA,
    BETA,
    FREE_RUNNING,
    FROZEN_POINTS,
    OPERATOR,
    SA,
    build_world,
    move_until_killed,
)

#: The account's tokens: moving it revokes them all in one command (a huge cascade).
TOKENS = 2000
#: How long the parent waits for the worker to reach its crash point.
REACH_TIMEOUT = 180.0


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    instance = Ledger(open_event_store(database_url, auto_upgrade=True))
    yield instance
    instance.close()


def kill_at(url: str, point: str, target: str) -> None:
    """Run the move in a new process and SIGKILL it once it reports reaching ``point``."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=move_until_killed, args=(url, point, target, theirs))
    process.start()
    theirs.close()
    try:
        assert ours.poll(REACH_TIMEOUT), f"the writer never reached {point}"
        try:
            assert ours.recv() == point
        except EOFError:
            process.join(timeout=60)
            pytest.fail(f"the writer ended (exit {process.exitcode}) before reaching {point}")
        os.kill(process.pid, signal.SIGKILL)  # type: ignore[arg-type]
        process.join(timeout=60)
        assert process.exitcode == -signal.SIGKILL
    finally:
        if process.is_alive():
            process.kill()
            process.join()
        ours.close()


def assert_consistent(ledger: Ledger) -> LedgerState:
    report = ledger.store.verify_chain()
    assert report.ok, report.problem
    return assert_projections_match_log(ledger)


def assert_nothing_happened(
    ledger: Ledger, before: Head, secrets: dict[str, str], point: str
) -> None:
    assert ledger.store.head() == before, f"killed at {point}: part of the command is in the log"
    state = assert_consistent(ledger)
    assert state.accounts[SA].permission == Grant(ALPHA, "write")
    now = ledger.now()
    assert sum(t.live(now) for t in state.tokens.values()) == len(secrets)
    for secret in list(secrets.values())[:20]:
        assert ledger.verify(secret, resource=ALPHA).allowed


def assert_whole_move(
    ledger: Ledger, before: Head, target: str, revoked: set[str], secrets: dict[str, str]
) -> None:
    """Everything after ``before`` is one command: the move and one revocation per token."""
    records = list(ledger.store.read_all(from_position=before.position + 1))
    assert len(records) == 1 + len(revoked)
    assert len({(r.command_id, r.correlation_id) for r in records}) == 1
    events = [decode_event(r) for r in records]
    assert isinstance(events[0], ServiceAccountPermissionMoved)
    assert events[0].permission == Grant(target, "write")
    assert all(isinstance(e, TokenRevoked) for e in events[1:])
    assert {e.token_id for e in events[1:] if isinstance(e, TokenRevoked)} == revoked
    state = assert_consistent(ledger)
    assert state.accounts[SA].permission == Grant(target, "write")
    for token_id in revoked:
        assert state.tokens[token_id].revoked_reason == "service_account_moved"
    for secret in list(secrets.values())[:20]:
        assert ledger.verify(secret).reason == "revoked"


@pytest.mark.slow
def test_a_killed_writer_leaves_all_of_its_command_or_none(
    ledger: Ledger, database_url: str
) -> None:
    """A service account with thousands of tokens is moved (one command: the move and a
    TokenRevoked per token); the writer is killed while deciding, after appending, halfway
    through the projections and just before COMMIT: nothing of it remains and everything is
    consistent. Killed at an unsynchronised moment: all or nothing. Killed after the command
    returned: all of it. And the ledger takes commands again at once."""
    secrets = build_world(ledger, TOKENS)
    before = ledger.store.head()
    assert_consistent(ledger)

    for point in FROZEN_POINTS:
        kill_at(database_url, point, BETA)
        assert_nothing_happened(ledger, before, secrets, point)

    kill_at(database_url, FREE_RUNNING, BETA)
    if ledger.store.head() == before:
        assert_nothing_happened(ledger, before, secrets, FREE_RUNNING)
        kill_at(database_url, AFTER_COMMIT, BETA)
        assert_whole_move(ledger, before, BETA, set(secrets), secrets)
    else:
        assert_whole_move(ledger, before, BETA, set(secrets), secrets)

    # The killed writers left no lock behind.
    created = ledger.execute(c.CreateResource(path=f"{BETA}/after-crash"), OPERATOR)
    assert created.records[0].position == ledger.store.head().position
    assert_consistent(ledger)


def test_sqlite_commits_are_durable(tmp_path: Path) -> None:
    """SQLite runs in WAL mode with synchronous=FULL on every connection: a commit that
    returned survives a crash or a power loss."""
    for url in (f"sqlite:///{tmp_path / 'a.db'}", str(tmp_path / "b.db")):
        ledger = Ledger.open(url)
        try:
            engine = ledger.store.engine
            with engine.connect() as first, engine.connect() as second:
                for connection in (first, second):
                    assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
                    assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        finally:
            ledger.close()
