"""A process's follower of the log: it keeps the answer cache exact as commits land.

One daemon thread per ``Ledger`` that asks for it (every API worker does) holds a
catch-up subscription from the log's head. Each event it receives drops exactly the
cached answers the event may change (``domain.affected``), then moves ``position``: the
cache's answers reflect at least every event up to it. Callers that need an answer
reflecting a given position wait for it here (``wait_for``), bounded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from tokenledger.domain.affected import EVERY_ANSWER, Affected, answers_affected
from tokenledger.service.subscription import Subscription
from tokenledger.store import EventStore, RecordedEvent
from tokenledger.store.eventstore import read_head
from tokenledger.store.mapper import decode_event

__all__ = ["LogFollower"]

logger = logging.getLogger(__name__)

#: How long one wait for commits lasts before the follower looks at whether it should stop.
_WAIT_SLICE = 1.0
#: Backoff after a failed read of the log (the database is down): it tries again.
_RETRY_BACKOFF = (0.05, 0.1, 0.25, 0.5, 1.0)


class LogFollower:
    """Applies each committed event to ``drop`` (what it affects), in log order, once."""

    def __init__(self, store: EventStore, drop: Callable[[Affected], None]) -> None:
        self._store = store
        self._drop = drop
        self._subscription: Subscription | None = None
        # -1 until the follower has read where the log's head is (the database may be
        # unreachable when the process starts).
        self._position = -1
        self._advanced = threading.Condition()
        self._stopped = threading.Event()
        try:
            self._start()
        except Exception:  # the database is unreachable: the thread starts when it is back
            logger.warning("the log's head cannot be read yet: following it once it can be")
        self._thread = threading.Thread(target=self._run, name="tokenledger-follow", daemon=True)
        self._thread.start()

    @property
    def position(self) -> int:
        """Every event up to this position has been applied."""
        return self._position

    def is_current(self) -> bool:
        """Whether the follower hears of every commit (see ``Subscription.is_current``):
        while it does not, the cache must not vouch for its answers by itself."""
        subscription = self._subscription
        return (
            subscription is not None
            and not self._stopped.is_set()
            and subscription.is_current()
            # What the subscription has read is applied: its caught-up page may still be
            # on its way to ``_apply``.
            and self._position >= subscription.position
        )

    def wait_for(self, position: int, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until ``position`` has been applied."""
        if self._position >= position:
            return True
        deadline = time.monotonic() + timeout
        with self._advanced:
            while self._position < position:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopped.is_set():
                    return False
                self._advanced.wait(remaining)
            return True

    def close(self) -> None:
        self._stopped.set()
        if self._subscription is not None:
            self._subscription.close()
        self._thread.join(timeout=5)

    def _start(self) -> Subscription:
        """A subscription from the log's head, with every answer kept so far dropped: one
        kept before the follower knew where it starts may predate events it will never
        apply. Dropped after the head is read, so an answer computed from then on (the drop
        refuses those computed across it) reflects at least the head."""
        with self._store.engine.connect() as connection:
            head = read_head(connection).position
        self._drop(EVERY_ANSWER)
        subscription = Subscription(self._store, after=head)
        with self._advanced:
            self._position = head
            self._subscription = subscription
            self._advanced.notify_all()
        return subscription

    def _run(self) -> None:
        subscription = self._subscription
        failures = 0
        try:
            while not self._stopped.is_set():
                try:
                    if subscription is None:
                        subscription = self._start()
                    batch = subscription.next_batch(timeout=_WAIT_SLICE)
                    if batch:
                        self._apply(batch)
                    failures = 0
                except Exception as error:  # the database is unreachable: try again, logged
                    if self._stopped.is_set():
                        return
                    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
                    logger.warning("following the log failed, retrying: %s", reason)
                    self._stopped.wait(_RETRY_BACKOFF[min(failures, len(_RETRY_BACKOFF) - 1)])
                    failures += 1
        finally:
            # Stopped, or failed in a way of its own: never vouch again.
            self._stopped.set()
            if subscription is not None:  # started after ``close`` looked, perhaps
                subscription.close()

    def _apply(self, batch: list[RecordedEvent]) -> None:
        """Drop what ``batch`` affects, then move ``position`` past it. The subscription has
        moved past it already, so nothing here may fail half-way: an event this version
        cannot read may change anything."""
        for record in batch:
            try:
                affected = answers_affected(decode_event(record))
            except Exception:
                affected = EVERY_ANSWER
            if affected:
                self._drop(affected)
        with self._advanced:
            self._position = batch[-1].position
            self._advanced.notify_all()
