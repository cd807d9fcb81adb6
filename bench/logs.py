"""Synthetic ledger logs of a given length, written straight to the event store.

The log is what a busy platform records: one org with projects, service
accounts, and mostly token issues, with revocations and permission changes
mixed in. Events are appended in large transactions without the inline
projections (the rebuild being measured builds those), so a million events
take about a minute to write rather than the hours a million commands would.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from tokenledger.domain import events as e
from tokenledger.domain.permissions import Grant
from tokenledger.domain.secrets import new_token_id
from tokenledger.store import EventStore
from tokenledger.store.mapper import to_pending

__all__ = ["write_log"]

PROJECTS = 100
ACCOUNTS = 1000
BATCH = 20_000


def write_log(store: EventStore, events: int, *, seed: int = 1) -> int:
    """Append about ``events`` events; return the head position."""
    rng = random.Random(seed)
    issued_at = datetime(2026, 1, 1, tzinfo=UTC)
    setup: list[e.Event] = [e.OrgCreated(org="acme")]
    setup += [e.ResourceCreated(path=f"acme/p{i}", kind="project") for i in range(PROJECTS)]
    accounts = [f"sa{i}@acme.service.tokenledger" for i in range(ACCOUNTS)]
    permission = {a: Grant(f"acme/p{i % PROJECTS}", "write") for i, a in enumerate(accounts)}
    setup += [
        e.ServiceAccountCreated(
            account_id=a, org="acme", name=a.split("@")[0], permission=permission[a]
        )
        for a in accounts
    ]
    pending = list(setup)
    live: list[tuple[str, str]] = []
    written = 0
    while written + len(pending) < events:
        roll = rng.random()
        if roll < 0.8 or not live:
            account = rng.choice(accounts)
            token_id = new_token_id(datetime.now(UTC))
            pending.append(
                e.TokenIssued(
                    token_id=token_id,
                    principal=account,
                    kind="service",
                    secret_hash=f"{rng.getrandbits(256):064x}",
                    grants=(permission[account],),
                    issued_at=issued_at,
                    expires_at=issued_at + timedelta(days=365),
                    issued_by=None,
                )
            )
            live.append((token_id, account))
        elif roll < 0.95:
            token_id, account = live.pop(rng.randrange(len(live)))
            pending.append(e.TokenRevoked(token_id=token_id, principal=account, reason="requested"))
        else:
            account = rng.choice(accounts)
            previous = permission[account]
            level = "read" if previous.level == "write" else "write"
            permission[account] = Grant(previous.resource, level)
            pending.append(
                e.ServiceAccountPermissionLevelChanged(
                    account_id=account, previous=previous, permission=permission[account]
                )
            )
        if len(pending) >= BATCH:
            written += _flush(store, pending)
    written += _flush(store, pending[: max(events - written, 0)])
    return store.head().position


def _flush(store: EventStore, pending: list[e.Event]) -> int:
    count = len(pending)
    if count:
        with store.transaction(actor="operator:bench") as tx:
            tx.append([to_pending(event) for event in pending])
    pending.clear()
    return count


def main() -> None:
    """``python -m bench.logs URL EVENTS``: write a synthetic log to a fresh ledger at URL."""
    import sys

    from tokenledger.store import open_event_store

    url, count = sys.argv[1], int(sys.argv[2])
    store = open_event_store(url, auto_upgrade=True)
    try:
        print(write_log(store, count))
    finally:
        store.engine.dispose()


if __name__ == "__main__":
    main()
