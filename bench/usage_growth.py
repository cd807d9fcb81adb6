"""How much the log grows for recording uses (last used), on SQLite.

``python -m bench.usage_growth [--tokens N] [--intervals K]``: a fresh SQLite ledger (a temporary
file, WAL, ``synchronous=FULL``) with ``N`` live tokens, each verified once in each of ``K``
intervals; the uses are written as a served ledger writes them (``Ledger.flush_uses``: one
command per interval). Prints the bytes the ``events`` table (its rows and its indexes) and the
audit index (its rows and its indexes) grew by, per ``TokenUsed`` event, measured with SQLite's
``dbstat`` (the pages each table and index uses), and the payload's own size.

The log grows by one event per credential used in an interval, whatever the number of
verifications: per million verifications, by (distinct credentials x intervals) events.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.workloads import _seed_tokens, _setup_account
from tokenledger.domain.permissions import Level
from tokenledger.service import Ledger
from tokenledger.store import open_event_store

__all__ = ["measure"]

INTERVAL = timedelta(hours=1)


class _Clock:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment


def _bytes_of(path: Path, table: str) -> int:
    """The bytes of the pages ``table`` and its indexes use."""
    with sqlite3.connect(path) as connection:
        names = [table] + [
            name
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", (table,)
            )
        ]
        marks = ",".join("?" * len(names))
        (total,) = connection.execute(
            f"SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name IN ({marks})", names
        ).fetchone()
    return int(total)


def _payload(path: Path) -> float:
    with sqlite3.connect(path) as connection:
        (average,) = connection.execute(
            "SELECT AVG(LENGTH(data)) FROM events WHERE event_type = 'TokenUsed'"
        ).fetchone()
    return float(average or 0)


def measure(tokens: int, intervals: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="tl_usage_") as directory:
        path = Path(directory) / "ledger.db"
        url = f"sqlite:///{path}"
        seeding = Ledger(open_event_store(url, auto_upgrade=True))
        account = _setup_account(seeding)
        secrets = _seed_tokens(seeding, account, tokens)
        seeding.close()
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + INTERVAL
        clock = _Clock(start)
        ledger = Ledger(open_event_store(url, clock=clock))
        ledger.record_uses(INTERVAL, background=False)
        before = _bytes_of(path, "events"), _bytes_of(path, "audit_index")
        written = 0
        for interval in range(intervals):
            clock.moment = start + interval * INTERVAL + timedelta(minutes=1)
            for secret in secrets:
                ledger.verify(secret, resource="acme/alpha", level=Level.READ)
            clock.moment += INTERVAL
            written += ledger.flush_uses()
        ledger.close()
        events = _bytes_of(path, "events") - before[0]
        audit = _bytes_of(path, "audit_index") - before[1]
        payload = _payload(path)
    return {
        "tokens": tokens,
        "intervals": intervals,
        "token_used_events": written,
        "events_bytes_per_event": events / written,
        "audit_index_bytes_per_event": audit / written,
        "payload_bytes_per_event": payload,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--intervals", type=int, default=3)
    options = parser.parse_args()
    figures = measure(options.tokens, options.intervals)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
