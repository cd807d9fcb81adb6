"""Answers reused while the log stands still, or until an event changes them.

Every answer the ledger gives about a token (is it active, whose is it, what
may it do) is a function of the log and of the time. So an answer computed
when the log's head was at position *n* stays right for as long as the head is
still at *n*, except that an active token may expire: each entry keeps its
``exp`` and is not served past it.

``staleness`` bounds how long the cache may go without re-reading the head:
``0`` reads it (one small indexed query) on every lookup, so no answer is ever
stale; a positive value trades that query for a bounded delay, e.g. ``0.05``
lets a revocation reach this process's answers within 50 ms. Each ``Ledger``
owns one cache (so each worker process its own); writes made through it
invalidate it at once.

A process that follows the log (``service.follower``: every API worker) keeps a
``FollowedCache`` instead, which the events themselves keep exact: each drops
the answers it may change, and the head is read only while the follower cannot
hear of new commits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from tokenledger.domain.affected import EVERY_ANSWER, Affected

if TYPE_CHECKING:
    from tokenledger.service.follower import LogFollower

__all__ = ["FollowedCache", "HeadGatedCache"]

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    value: V
    expires: int | None


class _KeptAnswers(Generic[V]):
    """What both caches share: the entries, the head reader, the staleness bound, the clock."""

    def __init__(
        self,
        read_head: Callable[[], int],
        *,
        staleness: float = 0.0,
        max_entries: int = 100_000,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self._read_head = read_head
        self._staleness = staleness
        self._max_entries = max_entries
        # None: ``time.monotonic``, looked up at each call so that freezegun's patched
        # clock applies (and called directly: a hit costs one Python call less).
        self._clock = monotonic
        self._lock = threading.Lock()
        self._entries: dict[Hashable, _Entry[V]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def staleness(self) -> float:
        return self._staleness

    def _monotonic(self) -> float:
        clock = self._clock
        return time.monotonic() if clock is None else clock()

    def _serve(self, key: Hashable, now_epoch: float) -> V | None:
        """The kept answer, if there is one still within its token's expiry (counted)."""
        entry = self._entries.get(key)
        if entry is None or (entry.expires is not None and entry.expires <= now_epoch):
            return None
        self.hits += 1
        return entry.value


class HeadGatedCache(_KeptAnswers[V]):
    """A map from keys to answers, emptied whenever the log's head moves."""

    def __init__(
        self,
        read_head: Callable[[], int],
        *,
        staleness: float = 0.0,
        max_entries: int = 100_000,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(
            read_head, staleness=staleness, max_entries=max_entries, monotonic=monotonic
        )
        self._head = -1
        # When the head was last read (by ``monotonic``); None: not since the last drop.
        self._checked: float | None = None

    def generation(self) -> int:
        """The head the cache is at (re-read if older than ``staleness``)."""
        now = self._monotonic()
        # Read without the lock: a fresh check needs no write, and a racing
        # ``invalidate`` leaves ``_head`` at -1, which no answer computed before
        # it can be stored under (see ``put``).
        checked = self._checked
        if checked is not None and now - checked < self._staleness:
            return self._head
        head = self._read_head()
        with self._lock:
            self._checked = now
            if head != self._head:
                self._entries.clear()
                self._head = head
            return self._head

    def get(self, key: Hashable, now_epoch: float) -> tuple[V | None, int]:
        """(the cached answer or None, the generation a new answer should be stored under)."""
        generation = self.generation()
        entry = self._entries.get(key)  # one dict read: atomic, no lock needed
        if entry is not None and (entry.expires is None or entry.expires > now_epoch):
            self.hits += 1
            return entry.value, generation
        self.misses += 1
        return None, generation

    def lookup(self, key: Hashable, now_epoch: float) -> V | None:
        """The cached answer or None; unlike ``get`` the head is only read when there is an
        entry to vouch for, so a miss costs no query (take ``generation()`` before computing
        the answer to ``put``). The hot path of ``Ledger.verify``: one dict read and one
        clock read on a hit."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        checked = self._checked
        clock = self._clock
        now = time.monotonic() if clock is None else clock()
        if checked is None or now - checked >= self._staleness:
            self.generation()  # re-reads the head; empties the cache if it moved
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
        if entry.expires is not None and entry.expires <= now_epoch:
            self.misses += 1
            return None
        self.hits += 1
        return entry.value

    def peek(self, key: Hashable, now_epoch: float) -> V | None:
        """The cached answer if the head was read less than ``staleness`` ago; never reads
        the head itself, so it never blocks on the database (for the event loop)."""
        with self._lock:
            if self._checked is None or self._monotonic() - self._checked >= self._staleness:
                return None
            return self._serve(key, now_epoch)

    def put(
        self,
        key: Hashable,
        value: V,
        expires: int | None,
        generation: int,
        filed_under: tuple[str | None, ...] = (),
    ) -> None:
        """Keep ``value`` unless the head moved while it was being computed (the head is
        all this cache goes by: ``filed_under`` is for ``FollowedCache``)."""
        with self._lock:
            if generation != self._head:
                return
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
            self._entries[key] = _Entry(value, expires)

    def invalidate(self) -> None:
        """Forget everything (this process just wrote to the log)."""
        with self._lock:
            self._entries.clear()
            self._head = -1
            self._checked = None


class FollowedCache(_KeptAnswers[V]):
    """A map from keys to answers, kept exact by the events a ``LogFollower`` applies.

    Each answer is filed under the ids it depends on (its token's id, its principal); an
    event drops the answers filed under the ids it names, or every answer
    (``domain.affected``). While the follower hears of every commit, an answer is served
    with no database query at all. While it does not (its database connection is lost,
    or it has not caught up since it came back), an answer is served only if the log's
    head, re-read at most every ``staleness`` seconds, is no further than the follower
    has applied: otherwise answers are read through until it has caught up.
    """

    def __init__(
        self,
        follower: LogFollower,
        read_head: Callable[[], int],
        *,
        staleness: float = 0.0,
        max_entries: int = 100_000,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(
            read_head, staleness=staleness, max_entries=max_entries, monotonic=monotonic
        )
        self._follower = follower
        # Each kept answer's key under the ids it depends on, and those ids by key.
        self._filed: dict[str, set[Hashable]] = {}
        self._names_of: dict[Hashable, tuple[str, ...]] = {}
        # Moves with every drop: an answer computed across a drop is not kept (see ``put``).
        self._epoch = 0
        # The last read of the head while the follower was not current: when (monotonic
        # seconds), and whether the follower had applied exactly that head.
        self._last_check: tuple[float, bool] | None = None

    def generation(self) -> int:
        """The epoch to ``put`` a new answer under; take it before computing the answer."""
        return self._epoch

    def vouched(self) -> bool:
        """Whether the kept answers may be served now (may read the head; see the class)."""
        if self._follower.is_current():
            return True
        check = self._last_check
        if check is not None and self._monotonic() - check[0] < self._staleness:
            return check[1]
        now = self._monotonic()
        applied = self._follower.position
        # Equal, not merely no further: a head behind what was applied is a log restored
        # to an earlier point, whose new events reuse positions already applied.
        applied_head = self._read_head() == applied
        self._last_check = (now, applied_head)  # one attribute: read without the lock
        return applied_head

    def past_bound(self) -> bool:
        """Whether serving needs a read of the head first (the follower does not hear of
        every commit, and the last check is older than ``staleness``)."""
        if self._follower.is_current():
            return False
        check = self._last_check
        return check is None or self._monotonic() - check[0] >= self._staleness

    def lookup(self, key: Hashable, now_epoch: float) -> V | None:
        """The kept answer, or None (then compute it, taking ``generation()`` first)."""
        # Vouched for before the entry is read: an entry read first could be one that an
        # event applied meanwhile has dropped.
        if not self.vouched():
            self.misses += 1
            return None
        entry = self._entries.get(key)
        if entry is None or (entry.expires is not None and entry.expires <= now_epoch):
            self.misses += 1
            return None
        self.hits += 1
        return entry.value

    def get(self, key: Hashable, now_epoch: float) -> tuple[V | None, int]:
        generation = self.generation()
        return self.lookup(key, now_epoch), generation

    def peek(self, key: Hashable, now_epoch: float) -> V | None:
        """The kept answer if it may be served without reading the head (for the event loop)."""
        if not self._follower.is_current():
            check = self._last_check
            if check is None or not check[1] or self._monotonic() - check[0] >= self._staleness:
                return None
        return self._serve(key, now_epoch)

    def put(
        self,
        key: Hashable,
        value: V,
        expires: int | None,
        generation: int,
        filed_under: tuple[str | None, ...] = (),
    ) -> None:
        """Keep ``value`` unless something was dropped while it was being computed (the
        event that dropped it may be one the answer did not see)."""
        names = tuple(name for name in filed_under if name is not None)
        with self._lock:
            if generation != self._epoch:
                return
            if len(self._entries) >= self._max_entries:
                self._forget_all()
            self._entries[key] = _Entry(value, expires)
            self._names_of[key] = names
            for name in names:
                self._filed.setdefault(name, set()).add(key)

    def drop(self, affected: Affected) -> None:
        """Forget the answers an applied event may have changed."""
        with self._lock:
            self._epoch += 1
            if affected.everything:
                self._forget_all()
                return
            for name in affected.ids:
                for key in self._filed.pop(name, ()):
                    self._entries.pop(key, None)
                    # Unfiled from its other names too, so no set keeps a dead key.
                    for other in self._names_of.pop(key, ()):
                        filed = self._filed.get(other)
                        if filed is not None:
                            filed.discard(key)
                            if not filed:
                                del self._filed[other]

    def _forget_all(self) -> None:
        self._entries.clear()
        self._filed.clear()
        self._names_of.clear()

    def invalidate(self) -> None:
        """Forget everything (this process just wrote to the log)."""
        self.drop(EVERY_ANSWER)
