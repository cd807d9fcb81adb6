"""Catch-up subscriptions: the log's events after a checkpoint, then each commit as it lands.

A subscription reads the log in keyset pages from its checkpoint (``position``), so a
subscriber that falls behind holds one page, never the backlog. Once it has caught up it
waits on the database's commit signal (``store.notify``) and reads again only when that
moves: positions are gap-free and assigned in commit order, so "everything after my
position" is exact, with no gap and no duplicate, whatever wake-ups are lost or repeated.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from types import TracebackType

from tokenledger.errors import ValidationError
from tokenledger.store import EventStore, RecordedEvent
from tokenledger.store.eventstore import DEFAULT_BATCH_SIZE
from tokenledger.store.notify import CommitWatcher, commit_signal, release

__all__ = ["Subscription"]

#: How long the async form waits in one worker-thread call before looking again (seconds):
#: bounds how long a cancelled ``async for`` keeps its thread.
_ASYNC_SLICE = 1.0


class Subscription:
    """The events after ``after``, in log order; iterate it, or call ``next_batch``.

    ``position`` is the last position delivered. Close it (or use it as a context manager)
    to release the process's shared watcher.
    """

    def __init__(
        self, store: EventStore, *, after: int = 0, page_size: int = DEFAULT_BATCH_SIZE
    ) -> None:
        if after < 0:
            raise ValidationError("a subscription starts after a position of 0 or more")
        self._store = store
        self.position = after
        self._page_size = page_size
        self._signal, self._watcher = commit_signal(store.engine)
        if self._watcher is None:
            # An in-memory database lives in this process: its own commits are all there is.
            store.on_commit(self._signal.bump)
        self._closed = False
        # True when the last read returned a full page: more is there, read without waiting.
        self._behind = True
        # The signal's value just before the last read of the log.
        self._read_at = self._signal.generation
        # The watcher's start count when this subscription last caught up (-1: never).
        self._caught_up_at = -1

    # -- the sync form ---------------------------------------------------------------------

    def next_batch(self, timeout: float | None = None) -> list[RecordedEvent]:
        """The next events (at most a page), waiting up to ``timeout`` seconds (None:
        until some arrive) once caught up; an empty list when none arrived in time."""
        if self._closed:
            return []
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._behind:
            page = self._read()
            if page:
                return page
        while True:
            # Caught up as of the signal's value before the last read: any commit that read
            # did not see moves the signal past it.
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._signal.wait(self._read_at, remaining, lambda: self._closed):
                return []
            page = self._read()
            if page:
                return page
            # A wake-up for a commit already read (or a reconnect): nothing lost, wait on.

    def _read(self) -> list[RecordedEvent]:
        self._read_at = self._signal.generation
        starts = self._watcher_starts()
        self._behind = True  # until the read succeeds: a failed one is retried at once
        page = list(self._page())
        self._behind = len(page) == self._page_size
        if not self._behind:
            self._caught_up_at = starts
        if page:
            self.position = page[-1].position
        return page

    def _watcher_starts(self) -> int:
        watcher = self._watcher
        return watcher.starts if isinstance(watcher, CommitWatcher) else 0

    def is_current(self) -> bool:
        """Whether every commit so far has either been delivered or will wake this
        subscription: it has caught up since its watcher last started watching, and the
        watcher still watches. False while the database connection that carries the
        wake-ups is lost, and until the subscription has read the log again after it is
        back (whatever was committed in between was announced to no one)."""
        if self._closed:
            return False
        watcher = self._watcher
        if not isinstance(watcher, CommitWatcher):
            return True  # an in-memory database: its commits are this process's own
        return (
            not self._behind
            and self._caught_up_at == watcher.starts
            and watcher.hears_every_commit()
        )

    def _page(self) -> Iterator[RecordedEvent]:
        # One page only: read_all would go on to the next.
        records = self._store.read_all(from_position=self.position + 1, batch_size=self._page_size)
        for count, record in enumerate(records, start=1):
            yield record
            if count >= self._page_size:
                return

    def __iter__(self) -> Iterator[RecordedEvent]:
        while not self._closed:
            yield from self.next_batch()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._signal.poke()
        release(self._watcher)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- the async form --------------------------------------------------------------------

    async def next_batch_async(self, timeout: float | None = None) -> list[RecordedEvent]:
        """``next_batch`` in a worker thread, in slices so that cancelling returns soon."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self._closed:
            remaining = _ASYNC_SLICE if deadline is None else deadline - loop.time()
            batch = await asyncio.to_thread(self.next_batch, max(0.0, min(remaining, _ASYNC_SLICE)))
            if batch or (deadline is not None and loop.time() >= deadline):
                return batch
        return []

    async def __aiter__(self) -> AsyncIterator[RecordedEvent]:
        while not self._closed:
            for record in await self.next_batch_async():
                yield record
