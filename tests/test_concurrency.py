"""Concurrency on PostgreSQL with real OS processes: writers are serialised, so no token is
issued "past" a cascade, a revocation is recorded once, and the log stays gap-free and chained.

Worker functions live in ``workers_concurrency`` so that the spawn start method can import them.
"""

from __future__ import annotations

import itertools
import multiprocessing
from collections import Counter
from collections.abc import Iterator
from multiprocessing.context import SpawnContext, SpawnProcess
from multiprocessing.queues import Queue
from typing import Any

import pytest

from helpers import assert_projections_match_log, fold_log
from tokenledger.domain import commands as c
from tokenledger.domain.events import TokenRevoked
from tokenledger.domain.permissions import Level
from tokenledger.domain.state import LedgerState
from tokenledger.service import Ledger
from tokenledger.store import open_event_store
from tokenledger.store.mapper import decode_event
from workers_concurrency import (
    ALPHA,
    BETA,
    BOB,
    OPERATOR,
    SA,
    build_world,
    issue_loop,
    mixed_verifier,
    mixed_writer,
    move_loop,
    revoke_each,
)

#: The mixed-load test's duration (the issue asks for 20 seconds).
MIXED_LOAD_SECONDS = 20.0
MIXED_WRITERS = 4
MIXED_VERIFIERS = 4

REVOKERS = 8
REVOKED_TOKENS = 100

#: How long the parent waits for a worker's report before failing.
REPORT_TIMEOUT = 300.0


@pytest.fixture
def pg_url(postgres_server: Any) -> str:
    """A migrated, empty ledger on PostgreSQL (the issue names PostgreSQL for these tests)."""
    url: str = postgres_server.fresh_schema()
    open_event_store(url, auto_upgrade=True).engine.dispose()
    return url


@pytest.fixture
def ledger(pg_url: str) -> Iterator[Ledger]:
    instance = Ledger.open(pg_url)
    yield instance
    instance.close()


def spawn() -> SpawnContext:
    return multiprocessing.get_context("spawn")


def run_workers(
    processes: list[SpawnProcess], out: Queue[Any], *, timeout: float = REPORT_TIMEOUT
) -> dict[str, Any]:
    """Start the processes, collect one report from each, join them; fail on any error."""
    for process in processes:
        process.start()
    reports: dict[str, Any] = {}
    try:
        for _ in processes:
            role, status, body = out.get(timeout=timeout)
            assert status == "ok", f"{role} failed:\n{body}"
            reports[role] = body
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
                process.join()
    assert [p.exitcode for p in processes] == [0] * len(processes)
    out.close()
    out.join_thread()
    return reports


def revocations_by_token(ledger: Ledger) -> dict[str, list[tuple[int, str, TokenRevoked]]]:
    """Every TokenRevoked in the log: token id -> [(position, correlation id, event)]."""
    found: dict[str, list[tuple[int, str, TokenRevoked]]] = {}
    for record in ledger.store.read_all():
        if record.event_type == "TokenRevoked":
            event = decode_event(record)
            assert isinstance(event, TokenRevoked)
            found.setdefault(event.token_id, []).append(
                (record.position, record.correlation_id, event)
            )
    return found


def assert_log_sound(ledger: Ledger) -> LedgerState:
    """Gap-free positions, a valid chain, live projections equal to a fresh fold of the log,
    and no token revoked twice."""
    report = ledger.store.verify_chain()
    assert report.ok, report.problem
    state = assert_projections_match_log(ledger)
    twice = {t: len(r) for t, r in revocations_by_token(ledger).items() if len(r) != 1}
    assert twice == {}, f"tokens revoked more than once: {twice}"
    return state


# -- (a) an issuer against a mover -------------------------------------------------------------

MOVES = 3
GAP = 25  # tokens the issuer commits between one move's commit and the next move
TAIL = 15  # tokens the issuer adds after the last move


def test_no_token_issued_before_a_move_survives_it(ledger: Ledger, pg_url: str) -> None:
    """One process issues the account's tokens in a loop while another moves its permission
    back and forth: each token carries the project the account held when it was issued, every
    token issued before a move is revoked by that move's cascade (same correlation id), and
    only the tokens issued after the last move verify."""
    build_world(ledger)
    before_loop = []
    for _ in range(5):
        result = ledger.execute(c.IssueToken(principal=SA), OPERATOR)
        assert result.issued is not None
        assert result.secret is not None
        before_loop.append(
            (result.issued.token_id, result.secret, result.records[0].position, [(ALPHA, "write")])
        )

    context = spawn()
    progress = context.Value("i", 0)
    done = context.Event()
    out: Queue[Any] = context.Queue()
    reports = run_workers(
        [
            context.Process(target=issue_loop, args=(pg_url, done, TAIL, progress, out)),
            context.Process(target=move_loop, args=(pg_url, MOVES, GAP, done, progress, out)),
        ],
        out,
    )
    issued = before_loop + [tuple(t) for t in reports["issuer"]]
    moves = sorted(tuple(m) for m in reports["mover"])
    assert len(moves) == MOVES
    revocations = revocations_by_token(ledger)
    state = assert_log_sound(ledger)

    # The log holds exactly the tokens the processes were told they got.
    assert {t.token_id for t in state.tokens.values() if t.principal == SA} == {
        t[0] for t in issued
    }
    final_project = moves[-1][2]
    other_project = ALPHA if final_project == BETA else BETA
    for token_id, secret, position, grants in issued:
        assert position not in {m[0] for m in moves}
        earlier = [m for m in moves if m[0] < position]
        later = [m for m in moves if m[0] > position]
        held = earlier[-1][2] if earlier else ALPHA
        assert [tuple(g) for g in grants] == [(held, "write")], (token_id, position, moves)
        answer = ledger.verify(secret)
        if later:
            # Issued before a move's commit: that very move's cascade revoked it.
            [(_, correlation_id, event)] = revocations[token_id]
            assert correlation_id == later[0][1]
            assert event.reason == "service_account_moved"
            assert (answer.active, answer.reason) == (False, "revoked")
        else:
            assert token_id not in revocations
            assert answer.active
            assert ledger.verify(secret, resource=final_project, level=Level.WRITE).allowed
            assert not ledger.verify(secret, resource=other_project).allowed

    # Each move revoked exactly the tokens issued since the move before it, and both sides of
    # every move saw tokens (the race was real).
    bounds = [0, *(m[0] for m in moves)]
    for (low, high), move in zip(itertools.pairwise(bounds), moves, strict=True):
        expected = {t[0] for t in issued if low < t[2] < high}
        assert expected
        assert set(move[3]) == expected
        assert len(move[3]) == len(expected)
    assert [t for t in issued if t[2] > moves[-1][0]]


# -- (b) eight processes revoke the same tokens --------------------------------------------------


def test_concurrent_revocations_are_recorded_once(ledger: Ledger, pg_url: str) -> None:
    """8 processes revoke the same 100 tokens (50 roots, each with a derived child): each token
    gets exactly one TokenRevoked; every other attempt is a clean Conflict ("already
    revoked"), and nothing else reaches a caller."""
    build_world(ledger)
    roots, secrets = [], {}
    for _ in range(REVOKED_TOKENS // 2):
        root = ledger.execute(
            c.build(c.IssueToken, principal=BOB, grants=[{"resource": ALPHA, "level": "read"}]),
            OPERATOR,
        )
        assert root.issued is not None
        assert root.secret is not None
        child = ledger.execute(c.IssueToken(parent_id=root.issued.token_id), OPERATOR)
        assert child.issued is not None
        assert child.secret is not None
        roots.append(root.issued.token_id)
        secrets[root.issued.token_id] = root.secret
        secrets[child.issued.token_id] = child.secret
    token_ids = sorted(secrets)
    assert len(token_ids) == REVOKED_TOKENS

    context = spawn()
    start = context.Barrier(REVOKERS)
    out: Queue[Any] = context.Queue()
    reports = run_workers(
        [
            context.Process(target=revoke_each, args=(pg_url, token_ids, seed, start, out))
            for seed in range(REVOKERS)
        ],
        out,
    )

    attempts = revoked_by_calls = 0
    revoked_ids: Counter[str] = Counter()
    for role, outcome in reports.items():
        assert outcome["errors"] == [], f"{role}: {outcome['errors'][:5]}"
        for token_id, _kind, message in outcome["conflicts"]:
            assert _kind == "Conflict"
            assert message == f"token {token_id} is already revoked"
        for token_id, revoked in outcome["revoked"]:
            assert revoked[0] == token_id
            revoked_ids.update(revoked)
            revoked_by_calls += 1
        attempts += len(outcome["conflicts"]) + len(outcome["revoked"])
    assert attempts == REVOKERS * REVOKED_TOKENS
    # Every token was revoked once: by a direct call or by its parent's cascade.
    assert revoked_ids == Counter(dict.fromkeys(token_ids, 1))
    assert revoked_by_calls >= len(roots)

    revocations = revocations_by_token(ledger)
    assert sorted(revocations) == token_ids
    assert all(len(found) == 1 for found in revocations.values())
    for token_id, secret in secrets.items():
        assert ledger.verify(secret).reason == "revoked", token_id
    assert_log_sound(ledger)


# -- (c) mixed load -------------------------------------------------------------------------------


@pytest.mark.slow
def test_mixed_load_keeps_the_log_gap_free_chained_and_projected(
    ledger: Ledger, pg_url: str
) -> None:
    """4 writers (issue, derive, revoke, create resources, change grants, move the account) and
    4 verifiers for MIXED_LOAD_SECONDS: positions gap-free, chain valid, live projections equal
    a fresh fold of the log, no token revoked twice, no revocation ever undone, no error."""
    build_world(ledger)
    secrets: dict[str, str] = {}
    for i in range(30):
        command: c.Command
        if i % 3 == 0:
            command = c.IssueToken(principal=SA)
        else:
            command = c.build(
                c.IssueToken, principal=BOB, grants=[{"resource": ALPHA, "level": "read"}]
            )
        result = ledger.execute(command, OPERATOR)
        assert result.issued is not None
        assert result.secret is not None
        secrets[result.issued.token_id] = result.secret
    shared = sorted(secrets)

    context = spawn()
    start = context.Barrier(MIXED_WRITERS + MIXED_VERIFIERS)
    out: Queue[Any] = context.Queue()
    writers = [
        context.Process(
            target=mixed_writer, args=(pg_url, w, MIXED_LOAD_SECONDS, shared, start, out)
        )
        for w in range(MIXED_WRITERS)
    ]
    verifiers = [
        context.Process(
            target=mixed_verifier, args=(pg_url, v, MIXED_LOAD_SECONDS, secrets, start, out)
        )
        for v in range(MIXED_VERIFIERS)
    ]
    reports = run_workers(writers + verifiers, out, timeout=MIXED_LOAD_SECONDS + REPORT_TIMEOUT)

    for role, report in reports.items():
        assert report["errors"] == [], f"{role}: {report['errors'][:5]}"
        if role.startswith("writer"):
            assert report["counts"]["ok"] >= 10, (role, report["counts"])
        else:
            assert report["answers"] >= 10, (role, report["answers"])
            assert report["resurrected"] == [], role

    state = assert_log_sound(ledger)
    assert len(state.tokens) > len(secrets)
    now = ledger.now()
    for token_id, secret in secrets.items():
        token = state.tokens[token_id]
        assert ledger.verify(secret).active == token.live(now), token_id
    again = fold_log(ledger)
    assert again.tokens == state.tokens
