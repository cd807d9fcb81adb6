"""Recording credentials' uses off the verification path.

Noting a use (``UsageRecorder.note``; ``note_id`` on the hot path) is one append of the
credential's id to a list in memory, and once a second a stamp of the time: no lock, no I/O,
so a verification never waits on a write. Every
second a background thread counts the notes per credential and interval bucket
(``domain.usage.bucket_of``) and writes each bucket once it has closed; ``close`` writes what
is left (the open bucket included). Every write is one command (``RecordUses``), so one
transaction and one append for all the credentials it holds, decided by
``domain.decide_usage`` (at most one ``TokenUsed`` per credential and bucket). A crash loses
the uses noted since the last write: at most the open bucket's (plus, were it writing then,
the bucket just closed).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
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
#: How often (seconds) the background thread counts the notes and writes closed buckets.
_COUNT_EVERY = 1.0

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
    """Notes uses as they happen, counts them per credential and interval bucket, and writes
    the closed buckets in one command per flush.

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
        # Each use appends its credential's id to a list: a single step under the GIL, so
        # noting takes no lock, loses nothing and allocates nothing. The time is noted apart,
        # once a second at most and at each bucket's start (``stamp``): the uses noted after
        # a stamp are counted at its time, so a use's time is known to the second. The list
        # is counted into ``_counts`` (bucket -> credential -> [uses, last use's time]) off
        # the verification path: every second by the thread, and by each flush.
        self._ids: list[str] = []
        #: The hot path's way in: ``stamp(now)`` unless ``stamp_from <= now < stamp_until``,
        #: then ``note_id(credential_id)``.
        self.note_id: Callable[[str], None] = self._ids.append
        self.stamp_from = 0.0
        self.stamp_until = 0.0
        self._stamps: list[tuple[int, float]] = []  # (the id's position it applies from, time)
        self._counted = 0  # ids counted so far: the position of ``_ids[0]``
        self._stamped_at = 0.0  # the time of the uses at the list's start
        self._counts: dict[int, dict[str, list[float]]] = {}
        self._lock = threading.Lock()  # guards the stamps and the counts
        self._flush_lock = threading.Lock()  # one flush at a time, from counting to commit
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._run, name="tokenledger-usage", daemon=True)
            self._thread.start()

    @property
    def interval(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    def note(self, credential_id: str | None, timestamp: float | None = None) -> None:
        """One successful use of ``credential_id`` now (or at ``timestamp``): memory only."""
        if credential_id is None:
            return
        now = self._timestamp() if timestamp is None else timestamp
        if not self.stamp_from <= now < self.stamp_until:
            self.stamp(now)
        self._ids.append(credential_id)

    def stamp(self, now: float) -> float:
        """The uses noted from now on happen at ``now`` (seconds since the epoch), until the
        returned moment (a second later, or the next bucket's start) or the next stamp."""
        with self._lock:
            self._stamps.append((self._counted + len(self._ids), now))
            until = min(now + 1.0, (bucket_of(now, self.seconds) + 1) * self.seconds)
            self.stamp_from, self.stamp_until = now, until
            return until

    @property
    def pending(self) -> int:
        """How many (bucket, credential) counts wait to be written."""
        with self._lock:
            self._count_notes()
            return sum(len(counts) for counts in self._counts.values())

    def _count_notes(self) -> None:
        """Move the notes so far into the counts (under ``_lock``): each run of ids between
        two stamps is counted at the first one's time."""
        ids = self._ids
        taken = len(ids)
        if not taken:
            return
        batch = ids[:taken]
        del ids[:taken]  # notes made meanwhile lie after ``taken`` and stay
        start, end = self._counted, self._counted + taken
        self._counted = end
        runs: list[tuple[int, float]] = [(start, self._stamped_at)]
        later: list[tuple[int, float]] = []
        for position, moment in self._stamps:
            (runs if position < end else later).append((max(position, start), moment))
        self._stamps = later
        for index, (position, moment) in enumerate(runs):
            until = runs[index + 1][0] if index + 1 < len(runs) else end
            if until > position:
                run = batch[position - start : until - start]
                self._add(bucket_of(moment, self.seconds), run, moment)
        self._stamped_at = runs[-1][1]

    def _add(self, bucket: int, ids: list[str], moment: float) -> None:
        counts = self._counts.setdefault(bucket, {})
        for credential, number in Counter(ids).items():
            entry = counts.get(credential)
            if entry is None:
                counts[credential] = [number, moment]
            else:
                entry[0] += number
                entry[1] = max(entry[1], moment)

    def flush(self, now: datetime | None = None, *, everything: bool = False) -> int:
        """Write the counts of every bucket closed at ``now`` (default: the clock's now), or
        of every bucket with ``everything``, in one command; the number of ``TokenUsed``
        events appended. Counts that could not be written are kept for the next flush."""
        moment = self._timestamp() if now is None else now.timestamp()
        current = bucket_of(moment, self.seconds)
        with self._flush_lock:
            with self._lock:
                self._count_notes()
                taken = {
                    bucket: counts
                    for bucket, counts in self._counts.items()
                    if everything or bucket < current
                }
                for bucket in taken:
                    del self._counts[bucket]
            if not taken:
                return 0
            return self._write(taken)

    def _write(self, taken: dict[int, dict[str, list[float]]]) -> int:
        from tokenledger.domain import commands as c  # pydantic loads with the first write

        uses = [
            c.NotedUse(
                credential_id=credential,
                bucket_start=datetime.fromtimestamp(bucket * self.seconds, UTC),
                count=int(number),
                last_used_at=datetime.fromtimestamp(last, UTC),
            )
            for bucket, counts in sorted(taken.items())
            for credential, (number, last) in counts.items()
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
            with self._lock:
                for bucket, counts in taken.items():
                    for credential, (number, last) in counts.items():
                        entry = self._counts.setdefault(bucket, {}).setdefault(
                            credential, [0, last]
                        )
                        entry[0] += number
                        entry[1] = max(entry[1], last)
            return 0
        return len(result.events)

    def close(self) -> None:
        """Stop the thread and write every count left, the open bucket's included."""
        self._stopped.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=30)
        self.flush(everything=True)

    # -- the background thread ------------------------------------------------------------

    def _run(self) -> None:
        # Counts the notes every second (so the list stays short) and writes each bucket
        # once it has closed.
        while not self._stopped.wait(_COUNT_EVERY):
            try:
                self.flush()
            except Exception:  # never let the thread die: the next round tries again
                logger.exception("recording credential uses failed")
