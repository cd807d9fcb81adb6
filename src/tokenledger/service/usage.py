"""Recording credentials' uses off the verification path.

Noting a use (``UsageRecorder.note``) is a counter's increment in memory under a lock: no
I/O, so a verification never waits on a write. Uses are counted per credential and
interval bucket (``domain.usage.bucket_of``). A background thread writes each bucket once
it has closed, and ``close`` writes what is left (the open bucket included): every flush is
one command (``RecordUses``), so one transaction and one append for all the credentials it
holds, decided by ``domain.decide_usage`` (at most one ``TokenUsed`` per credential and
bucket). A crash loses the uses noted since the last flush: at most the open bucket's, plus
a closed one's whose flush was under way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from tokenledger.domain.model import Actor
from tokenledger.domain.usage import bucket_of, check_usage_interval, credential_kind

if TYPE_CHECKING:
    from tokenledger.domain import commands as c
    from tokenledger.service.commands import CommandResult

__all__ = ["USAGE_ACTOR", "UsageRecorder", "recording_uses"]

logger = logging.getLogger("tokenledger")

#: Who the log says recorded the uses: the ledger itself, as its operator.
USAGE_ACTOR = Actor.operator("tokenledger-usage")
#: Seconds after a bucket's end the background thread writes it (clocks of several
#: processes differ a little; a use noted just after the end belongs to the next bucket).
_GRACE = 1.0

_local = threading.local()


def recording_uses() -> bool:
    """Whether this thread is committing recorded uses (which change no token answer, so
    cached answers need not be dropped for them)."""
    return getattr(_local, "recording", False)


@contextmanager
def _recording() -> Iterator[None]:
    _local.recording = True
    try:
        yield
    finally:
        _local.recording = False


class UsageRecorder:
    """Counts uses per (bucket, credential) and writes them in one command per flush.

    ``execute`` runs a command for an actor (``Ledger.execute``); ``timestamp`` is the
    ledger's clock as seconds since the epoch.
    """

    def __init__(
        self,
        execute: Callable[[c.Command, Actor], CommandResult],
        timestamp: Callable[[], float],
        interval: timedelta,
        *,
        background: bool = True,
    ) -> None:
        self.seconds = check_usage_interval(interval)
        self._execute = execute
        self._timestamp = timestamp
        self._background = background
        # (bucket, credential id) -> [count, last use's timestamp]
        self._pending: dict[tuple[int, str], list[float]] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one flush at a time, start to commit
        self._newest_bucket = -1
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None

    @property
    def interval(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    def note(self, credential_id: str | None, timestamp: float | None = None) -> None:
        """One successful use of ``credential_id`` now (or at ``timestamp``): memory only."""
        if credential_id is None:
            return
        now = self._timestamp() if timestamp is None else timestamp
        key = (int(now // self.seconds), credential_id)
        with self._lock:
            seen = self._pending.get(key)
            if seen is not None:
                seen[0] += 1
                if now > seen[1]:
                    seen[1] = now
                return
            self._pending[key] = [1, now]
            if key[0] > self._newest_bucket:
                # A new bucket: the previous one has closed; the thread writes it.
                self._newest_bucket = key[0]
                if self._thread is None and self._background and not self._stopped:
                    self._start()
                self._wake.set()

    @property
    def pending(self) -> int:
        """How many (bucket, credential) counts wait to be written."""
        with self._lock:
            return len(self._pending)

    def flush(self, now: datetime | None = None, *, everything: bool = False) -> int:
        """Write the counts of every bucket closed at ``now`` (default: the clock's now), or
        of every bucket with ``everything``, in one command; the number of ``TokenUsed``
        events appended. Counts that could not be written are kept for the next flush."""
        from tokenledger.domain import commands as c  # pydantic loads with a flush

        moment = self._timestamp() if now is None else now.timestamp()
        current = bucket_of(moment, self.seconds)
        with self._flush_lock:
            with self._lock:
                taken = {
                    key: value
                    for key, value in self._pending.items()
                    if everything or key[0] < current
                }
                for key in taken:
                    del self._pending[key]
            uses = [
                c.NotedUse(
                    credential_id=credential,
                    bucket_start=datetime.fromtimestamp(bucket * self.seconds, UTC),
                    count=int(count),
                    last_used_at=datetime.fromtimestamp(last, UTC),
                )
                for (bucket, credential), (count, last) in taken.items()
                if credential_kind(credential) is not None
            ]
            if not uses:
                return 0
            command = c.RecordUses(interval=self.seconds, uses=tuple(uses))
            try:
                with _recording():
                    result = self._execute(command, USAGE_ACTOR)
            except Exception:
                logger.warning("recording %d credential use(s) failed; retrying later", len(uses))
                self._restore(taken)
                return 0
            return len(result.events)

    def _restore(self, taken: dict[tuple[int, str], list[float]]) -> None:
        with self._lock:
            for key, (count, last) in taken.items():
                seen = self._pending.setdefault(key, [0, last])
                seen[0] += count
                seen[1] = max(seen[1], last)

    def close(self) -> None:
        """Stop the thread and write every count left, the open bucket's included."""
        with self._lock:
            self._stopped = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(timeout=30)
        self.flush(everything=True)

    # -- the background thread ------------------------------------------------------------

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tokenledger-usage", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._until_next_bucket())
            self._wake.clear()
            if self._stopped:
                return
            try:
                self.flush()
            except Exception:  # never let the thread die: the next bucket tries again
                logger.exception("recording credential uses failed")

    def _until_next_bucket(self) -> float:
        now = self._timestamp()
        end = (bucket_of(now, self.seconds) + 1) * self.seconds
        return min(max(end - now, 0.0) + _GRACE, self.seconds + _GRACE)
