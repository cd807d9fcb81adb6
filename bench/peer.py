"""The peer side: W2 and W3's read with the ``eventsourcing`` package (the ``bench`` extra).

``python -m bench.peer W2|W3 --backend URL --size N`` prints one JSON object like
``bench.workloads``. The events mirror TokenLedger's: one aggregate (a service account) created
and given 9 tokens, saved at once (one transaction of 10 events), with the same fields and sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

__all__ = ["configure", "w2_append", "w3_read"]

PAGE = 1000
# 1,000 events per transaction (psycopg stalls on much larger pipelined saves).
_LOG_ACCOUNTS_PER_SAVE = 100


class ServiceAccount(Aggregate):
    @event("Created")
    def __init__(self, account_id: str, org: str, name: str, resource: str, level: str) -> None:
        self.account_id = account_id
        self.tokens: list[str] = []

    @event("TokenIssued")
    def issue(
        self,
        token_id: str,
        principal: str,
        kind: str,
        secret_hash: str,
        resource: str,
        level: str,
        issued_at: str,
        expires_at: str,
    ) -> None:
        self.tokens.append(token_id)


class Accounts(Application[UUID]):
    pass


def configure(url: str) -> None:
    """Point the peer at the same SQLite file system or PostgreSQL server as TokenLedger."""
    if url.startswith("postgresql"):
        parts = urlsplit(url)
        os.environ.update(
            PERSISTENCE_MODULE="eventsourcing.postgres",
            POSTGRES_DBNAME=parts.path.lstrip("/"),
            POSTGRES_HOST=parts.hostname or "127.0.0.1",
            POSTGRES_PORT=str(parts.port or 5432),
            POSTGRES_USER=parts.username or "postgres",
            POSTGRES_PASSWORD=parts.password or "postgres",
        )
    else:
        os.environ.update(
            PERSISTENCE_MODULE="eventsourcing.sqlite",
            SQLITE_DBNAME=url.removeprefix("sqlite:///"),
        )


def _write(app: Accounts, accounts: int, *, per_save: int = 1) -> int:
    """Save ``accounts`` aggregates of 10 events, ``per_save`` of them per transaction."""
    rng = random.Random(2)
    now = datetime.now(UTC)
    issued, expires = now.isoformat(), (now + timedelta(days=365)).isoformat()
    unsaved: list[ServiceAccount] = []
    for i in range(accounts):
        account_id = f"sa{i}@acme.service.tokenledger"
        account = ServiceAccount(account_id, "acme", f"sa{i}", "acme/alpha", "write")
        for _ in range(9):
            account.issue(
                token_id=f"tok_{rng.getrandbits(128):032x}",
                principal=account_id,
                kind="service",
                secret_hash=f"{rng.getrandbits(256):064x}",
                resource="acme/alpha",
                level="write",
                issued_at=issued,
                expires_at=expires,
            )
        unsaved.append(account)
        if len(unsaved) >= per_save:
            app.save(*unsaved)
            unsaved.clear()
    if unsaved:
        app.save(*unsaved)
    return accounts * 10


def w2_append(url: str, size: int) -> dict[str, Any]:
    configure(url)
    app = Accounts()
    started = time.perf_counter()
    events = _write(app, size)
    seconds = time.perf_counter() - started
    app.close()
    return {"events": events, "seconds": seconds, "events_per_second": events / seconds}


def w3_read(url: str, size: int) -> dict[str, Any]:
    """Write about ``size`` events (untimed; unless an earlier run on this database did), then
    read every notification back and decode it."""
    configure(url)
    app = Accounts()
    if not app.recorder.max_notification_id():
        # The log to read, written in large transactions (as TokenLedger's W3 log is).
        _write(app, max(size // 10, 1), per_save=_LOG_ACCOUNTS_PER_SAVE)
    app.close()
    app = Accounts()
    started = time.perf_counter()
    start, events = 1, 0
    while True:
        page = app.recorder.select_notifications(start=start, limit=PAGE)
        for notification in page:
            app.mapper.to_domain_event(notification)
        events += len(page)
        if len(page) < PAGE:
            break
        start = page[-1].id + 1
    seconds = time.perf_counter() - started
    app.close()
    return {"events": events, "seconds": seconds, "events_per_second": events / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("workload", choices=["W2", "W3"])
    parser.add_argument("--backend", required=True)
    parser.add_argument("--size", type=int, required=True)
    args = parser.parse_args()
    figures = (w2_append if args.workload == "W2" else w3_read)(args.backend, args.size)
    figures["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
