"""One workload in a fresh process: ``python -m bench.workloads W2 --backend URL --size N``.

Prints one JSON object with the workload's figures and ``peak_rss_mib`` (this process's peak
resident memory, from ``getrusage``). The database at URL must exist and be empty (``bench.main``
creates and drops it); the schema is created here with ``auto_upgrade=True``.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tokenledger.domain import commands as c
from tokenledger.domain import events as e
from tokenledger.domain.model import Actor, service_account_id
from tokenledger.domain.permissions import Grant, Level
from tokenledger.domain.secrets import TokenKind, generate_secret, hash_secret, new_token_id
from tokenledger.projections import Projector
from tokenledger.projections.audit_queries import AuditQuery, search
from tokenledger.projections.rebuild import rebuild
from tokenledger.service import Ledger
from tokenledger.store import open_event_store
from tokenledger.store.backends import pipelined
from tokenledger.store.mapper import to_pending

__all__ = ["WORKLOADS", "run"]

OPERATOR = Actor.operator("bench")
ACTOR = "operator:bench"
SA_DOMAIN = "acme.service.tokenledger"  # bench.logs names its accounts sa<i>@ this
BULK = 5_000  # events per transaction when seeding tokens in bulk
# W4's synthetic secrets, kept in the run's scratch directory for the runs after the first.
W4_SECRETS = "w4-secrets.txt"
#: The interval W4's ledgers record uses at, as ``serve`` does by default.
USAGE_INTERVAL = timedelta(hours=1)

Figures = dict[str, Any]


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _open(url: str) -> Ledger:
    return Ledger(open_event_store(url, auto_upgrade=True))


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _setup_account(ledger: Ledger, name: str = "svc") -> str:
    """An org, two projects and a service account with write on the first; its id."""
    for command in (
        c.CreateOrg(org="acme"),
        c.CreateResource(path="acme/alpha"),
        c.CreateResource(path="acme/beta"),
        c.CreateServiceAccount(name=name, org="acme", resource="acme/alpha", level=Level.WRITE),
    ):
        ledger.execute(command, OPERATOR)
    return service_account_id(name, "acme")


def _seed_tokens(ledger: Ledger, principal: str, count: int) -> list[str]:
    """``count`` live tokens for ``principal`` with known secrets, in bulk; the secrets."""
    now = datetime.now(UTC)
    grant = Grant("acme/alpha", "write")
    secrets: list[str] = []
    projector = Projector()
    for start in range(0, count, BULK):
        batch: list[e.Event] = []
        for _ in range(min(BULK, count - start)):
            secret = generate_secret(TokenKind.SERVICE)
            secrets.append(secret)
            batch.append(
                e.TokenIssued(
                    token_id=new_token_id(datetime.now(UTC)),  # as if issued one by one
                    principal=principal,
                    kind="service",
                    secret_hash=hash_secret(secret),
                    grants=(grant,),
                    issued_at=now,
                    expires_at=now + timedelta(days=365),
                    issued_by=None,
                )
            )
        with ledger.store.transaction(actor=ACTOR) as tx:
            records = tx.append([to_pending(event) for event in batch])
            projector.apply(tx.connection, list(zip(records, batch, strict=True)), batched=True)
    return secrets


def _statements(engine: sa.Engine, call: Callable[[], object]) -> int:
    """How many statements ``call`` sends to the database (driver fast paths included)."""
    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append("")

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        call()
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    return len(seen)


def w1_commands(url: str, size: int, scratch: Path) -> Figures:
    ledger = _open(url)
    account = _setup_account(ledger)
    command = c.IssueToken(principal=account)
    latencies: list[float] = []
    started = time.perf_counter()
    for _ in range(size):
        t0 = time.perf_counter()
        ledger.execute(command, OPERATOR)
        latencies.append(time.perf_counter() - t0)
    seconds = time.perf_counter() - started
    statements = _statements(ledger.store.engine, lambda: ledger.execute(command, OPERATOR))
    ledger.close()
    return {
        "commands": size,
        "seconds": seconds,
        "statements_per_command": statements,
        "commands_per_second": size / seconds,
        "p50_ms": _percentile(latencies, 0.5) * 1e3,
        "p99_ms": _percentile(latencies, 0.99) * 1e3,
    }


def w2_batched_append(url: str, size: int, scratch: Path) -> Figures:
    """``size`` service accounts, each created with 9 tokens in one transaction of 10 events.

    Twice, on one database: appending alone (hash chain, stream versions, durable commit:
    what the peer does, it has no projections), then, for a fifth as many accounts, appending
    and folding the events into the inline projections in the same transaction (what every
    TokenLedger command does).
    """
    ledger = _open(url)
    ledger.execute(c.CreateOrg(org="acme"), OPERATOR)
    ledger.execute(c.CreateResource(path="acme/alpha"), OPERATOR)
    grant = Grant("acme/alpha", "write")
    now = datetime.now(UTC)
    rng = random.Random(2)

    def batch(name: str) -> list[e.Event]:
        account = service_account_id(name, "acme")
        # Ids as the ledger issues them: from the time of their transaction.
        issued = datetime.now(UTC)
        created = e.ServiceAccountCreated(
            account_id=account, org="acme", name=name, permission=grant
        )
        return [created] + [
            e.TokenIssued(
                token_id=new_token_id(issued),
                principal=account,
                kind="service",
                secret_hash=f"{rng.getrandbits(256):064x}",
                grants=(grant,),
                issued_at=now,
                expires_at=now + timedelta(days=365),
                issued_by=None,
            )
            for _ in range(9)
        ]

    def run(prefix: str, accounts: int, *, project: bool) -> float:
        started = time.perf_counter()
        for i in range(accounts):
            events = batch(f"{prefix}{i}")
            with ledger.store.transaction(actor=ACTOR) as tx:
                for event in events[1:]:  # tokens minted here: new streams, as the ledger's
                    tx.new_stream(event.stream_id)
                if not project:
                    tx.append([to_pending(event) for event in events])
                    continue
                # As a command does: the events and their rows in one pipeline (PostgreSQL).
                with pipelined(tx.connection):
                    records = tx.append([to_pending(event) for event in events])
                    ledger.projector.apply(tx.connection, list(zip(records, events, strict=True)))
        return time.perf_counter() - started

    append_seconds = run("a", size, project=False)
    # A fifth as many with projections: enough for a steady rate, and it keeps the full run short.
    projected = max(size // 5, 1)
    projected_seconds = run("p", projected, project=True)
    ledger.close()
    events = size * 10
    return {
        "events": events,
        "seconds": append_seconds,
        "events_per_second": events / append_seconds,
        "with_projections_events": projected * 10,
        "with_projections_events_per_second": projected * 10 / projected_seconds,
    }


def _write_log(url: str, size: int) -> None:
    """The synthetic log of ``bench.logs``, written by a child process (so RSS here is ours)."""
    subprocess.run(
        [sys.executable, "-m", "bench.logs", url, str(size)],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def w3_rebuild(url: str, size: int, scratch: Path) -> Figures:
    """Write the synthetic log (child process) unless an earlier run on this database did, then
    rebuild every projection here."""
    store = open_event_store(url, auto_upgrade=True)
    if store.head().position == 0:
        _write_log(url, size)
    before = _peak_rss_mib()
    report = rebuild(store)
    store.engine.dispose()
    return {
        "events": report.events,
        "seconds": report.seconds,
        "events_per_second": report.events / report.seconds,
        "rss_before_mib": before,
    }


def _sample(secrets: list[str], count: int) -> list[str]:
    """``count`` secrets drawn at random (with repeats), the same ones in every run."""
    rng = random.Random(4)
    return [secrets[rng.randrange(len(secrets))] for _ in range(count)]


def _verifications(ledger: Ledger, sample: list[str]) -> tuple[list[float], float]:
    """A verification of each secret of ``sample``: each one's seconds, and the total."""
    latencies: list[float] = []
    started = time.perf_counter()
    for secret in sample:
        t0 = time.perf_counter()
        answer = ledger.verify(secret, resource="acme/alpha", level=Level.READ)
        latencies.append(time.perf_counter() - t0)
        if not answer.allowed:
            raise RuntimeError(f"a seeded token was not allowed: {answer}")
    return latencies, time.perf_counter() - started


def w4_verify(url: str, size: int, scratch: Path) -> Figures:
    """Cold: a ledger without the answer cache (every call reads the projections). Warm: the
    default ledger, after each token of the sample was verified once (the same random sample
    of ``size`` verifications, cold and warm; about 63 % of the tokens are in it). Both note
    each use (last used) as a served ledger does.

    The tokens are seeded once per database, by a child process (so RSS here is the
    verifications'), which keeps their synthetic secrets in ``scratch`` for the later runs:
    verifying changes no token (the uses written when a ledger closes change no answer), so
    every run finds the same tokens."""
    kept = scratch / W4_SECRETS
    if not kept.exists():
        seed = ["W4-seed", "--backend", url, "--size", str(size), "--scratch", str(scratch)]
        subprocess.run(
            [sys.executable, "-m", "bench.workloads", *seed],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    secrets = kept.read_text(encoding="ascii").split()
    if len(secrets) != size:
        raise RuntimeError(f"{kept} holds {len(secrets)} secrets, not {size}")
    sample = _sample(secrets, size)
    # Both ledgers record each token's use, as a served one does (``serve --usage-interval``,
    # 1 hour): the cost of noting uses is in the figures; writing them (at close) is not.
    cold = Ledger(open_event_store(url), verify_staleness=None, usage_interval=USAGE_INTERVAL)
    cold_latencies, cold_seconds = _verifications(cold, sample)
    statements = _statements(cold.store.engine, lambda: _verifications(cold, sample[:1]))
    cold.close()
    # The warm pass measures answers served from the cache within a 1 s staleness bound
    # (the default, 0, reads the head for every answer).
    warm = Ledger(open_event_store(url), verify_staleness=1.0, usage_interval=USAGE_INTERVAL)
    for secret in dict.fromkeys(sample):  # the answers the warm pass will ask for
        warm.verify(secret, resource="acme/alpha", level=Level.READ)
    warm_latencies, warm_seconds = _verifications(warm, sample)
    warm.close()
    return {
        "tokens": size,
        "verifications": size,
        "cold_verifications_per_second": size / cold_seconds,
        "cold_p50_us": _percentile(cold_latencies, 0.5) * 1e6,
        "cold_p99_us": _percentile(cold_latencies, 0.99) * 1e6,
        "statements_per_cold_verification": statements,
        "warm_verifications_per_second": size / warm_seconds,
        "warm_p50_us": _percentile(warm_latencies, 0.5) * 1e6,
        "warm_p99_us": _percentile(warm_latencies, 0.99) * 1e6,
    }


def w4_seed(url: str, size: int, scratch: Path) -> Figures:
    """W4's tokens: an account with ``size`` live tokens; their secrets kept in ``scratch``."""
    seeding = _open(url)
    account = _setup_account(seeding)
    secrets = _seed_tokens(seeding, account, size)
    seeding.close()
    (scratch / W4_SECRETS).write_text("\n".join(secrets), encoding="ascii")
    return {"tokens": size}


def w5_cascade(url: str, size: int, scratch: Path) -> Figures:
    ledger = _open(url)
    account = _setup_account(ledger)
    _seed_tokens(ledger, account, size)
    t0 = time.perf_counter()
    result = ledger.execute(
        c.SetServiceAccountPermission(account_id=account, resource="acme/beta", level=Level.WRITE),
        OPERATOR,
    )
    seconds = time.perf_counter() - t0
    ledger.close()
    return {"tokens": size, "revoked": len(result.revoked), "seconds": seconds}


def w7_bulk_revoke(url: str, size: int, scratch: Path) -> Figures:
    """An account with ``size`` live tokens, all selected by one filter: the preview, then
    one ``RevokeTokensWhere`` revoking them all (one event each, one correlation id)."""
    ledger = _open(url)
    account = _setup_account(ledger)
    t0 = time.perf_counter()
    _seed_tokens(ledger, account, size)
    seeded = time.perf_counter() - t0
    where = c.TokenCriteria(principal=account, resource="acme/alpha")
    t0 = time.perf_counter()
    matched = ledger.preview_revocation(OPERATOR, where)
    previewed = time.perf_counter() - t0
    t0, cpu0 = time.perf_counter(), time.process_time()
    result = ledger.execute(c.RevokeTokensWhere(where=where, reason="bench"), OPERATOR)
    revoked, revoked_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    ledger.close()
    return {
        "tokens": size,
        "matched": len(matched),
        "revoked": len(result.revoked),
        "seed_seconds": seeded,
        "preview_seconds": previewed,
        "revoke_seconds": revoked,
        # This process's CPU time alone (not the database server's): on a shared machine,
        # what the revocation costs here whatever else runs.
        "revoke_cpu_seconds": revoked_cpu,
        "events_per_second": len(result.revoked) / revoked,
    }


def w6_audit(url: str, size: int, scratch: Path) -> Figures:
    """Audit queries on a rebuilt log; writes and rebuilds one first unless the database has one."""
    store = open_event_store(url, auto_upgrade=True)
    if store.head().position == 0:
        _write_log(url, size)
        rebuild(store)
    if store.engine.dialect.name == "postgresql":
        # The log was written a moment ago: give the planner the statistics autovacuum
        # would have gathered on a ledger that has been running (the rebuild analyzed
        # the projection tables itself).
        with store.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE events")
            connection.commit()
    with store.engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT correlation_id FROM events WHERE event_type = 'TokenRevoked' LIMIT 50"
        ).all()
    correlations = [row[0] for row in rows] or ["missing"]
    rng = random.Random(6)
    figures: Figures = {"events": store.head().position}

    def by_subject() -> AuditQuery:
        return AuditQuery(subject=f"sa{rng.randrange(1000)}@{SA_DOMAIN}")

    def by_correlation() -> AuditQuery:
        return AuditQuery(correlation_id=rng.choice(correlations))

    queries: tuple[tuple[str, Callable[[], AuditQuery]], ...] = (
        ("subject", by_subject),
        ("correlation_id", by_correlation),
    )
    for name, make in queries:
        samples: list[float] = []
        found = 0
        for _ in range(50):
            query = make()
            t0 = time.perf_counter()
            found += len(search(store, query))
            samples.append(time.perf_counter() - t0)
        figures[f"{name}_p50_ms"] = statistics.median(samples) * 1e3
        figures[f"{name}_results"] = found
    store.engine.dispose()
    return figures


WORKLOADS: dict[str, Callable[[str, int, Path], Figures]] = {
    "W1": w1_commands,
    "W2": w2_batched_append,
    "W3": w3_rebuild,
    "W4": w4_verify,
    "W4-seed": w4_seed,
    "W5": w5_cascade,
    "W6": w6_audit,
    "W7": w7_bulk_revoke,
}


def run(name: str, url: str, size: int, scratch: Path) -> Figures:
    figures = WORKLOADS[name](url, size, scratch)
    figures["peak_rss_mib"] = _peak_rss_mib()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("workload", choices=sorted(WORKLOADS))
    parser.add_argument("--backend", required=True, help="database URL (or SQLite file path)")
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument(
        "--scratch",
        type=Path,
        required=True,
        help="a directory the runs on this database share (W4 keeps its secrets there)",
    )
    args = parser.parse_args()
    print(json.dumps(run(args.workload, args.backend, args.size, args.scratch)))


if __name__ == "__main__":
    main()
