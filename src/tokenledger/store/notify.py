"""Wake-ups when the log grows: one watcher per database per process, shared by its readers.

A ``CommitSignal`` is a counter that a watcher bumps whenever the log may have grown. A
reader notes the counter, reads the log, and, finding nothing new, waits for the counter
to move: any commit it did not see happened after its read began, so its wake-up comes
after the noted value and the wait ends. Nothing reads the log while nothing changes.

* PostgreSQL: every append sends ``pg_notify`` with the new head in the writer's
  transaction (``Backend.announce_head``), delivered only if it commits. Each process
  holds one ``LISTEN`` connection per database (``PostgresListener``). When it is lost,
  it reconnects with a short backoff and bumps the counter once listening again: a
  notification sent while it was down is lost, so every reader re-reads from its
  checkpoint.
* SQLite: a dedicated connection asks for ``PRAGMA data_version`` a few milliseconds
  apart (``SQLiteWatcher``); the value changes when another connection commits, and only
  then is the counter bumped. It reads no table.

Watchers are counted by their subscribers (``acquire``/``release``) and stop with the
last one.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine

__all__ = [
    "CHANNEL_SQL",
    "LISTENER_APPLICATION_NAME",
    "CommitSignal",
    "CommitWatcher",
    "PostgresListener",
    "SQLiteWatcher",
    "channel_query",
    "commit_signal",
    "release",
]

logger = logging.getLogger(__name__)

#: The ``application_name`` of each process's listening connection (``pg_stat_activity``).
LISTENER_APPLICATION_NAME = "tokenledger-listen"

#: The channel name, computed on the server from the events table's oid: ledgers in other
#: schemas or databases of one server do not wake each other.
CHANNEL_SQL = "'tokenledger_events_' || 'events'::regclass::oid::text"

#: How often SQLite's change counter is asked for (seconds): a cheap pragma, no table read.
SQLITE_CHECK_INTERVAL = 0.005
#: Backoff between attempts to re-establish a lost listening connection (seconds).
RECONNECT_BACKOFF = (0.05, 0.1, 0.25, 0.5, 1.0)
#: After this many quiet seconds a listening connection proves it still hears notifications:
#: it notifies its own channel and waits for that to come back. A connection can go silent
#: without an error (a half-open TCP connection, a pooler that accepts LISTEN but never
#: delivers), and only a notification that makes the round trip shows it does not.
PROOF_INTERVAL = 2.0
#: A listener whose last proof (any notification received) is older than this no longer
#: vouches that it hears every commit; one whose own notification has not come back in this
#: long reconnects.
PROOF_BOUND = 6.0
#: The payload of a proof: not a commit, so no reader is woken for it.
PROOF_PAYLOAD = "proof"
#: So that sending on a connection that went silent fails in seconds rather than hours.
_LISTENER_TCP = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 2,
    "tcp_user_timeout": 5000,
}


def channel_query() -> str:
    return f"SELECT {CHANNEL_SQL}"


class CommitSignal:
    """A counter bumped when the log may have grown, with waiting for it to move."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._generation = 0

    @property
    def generation(self) -> int:
        with self._condition:
            return self._generation

    def bump(self) -> None:
        with self._condition:
            self._generation += 1
            self._condition.notify_all()

    def poke(self) -> None:
        """Wake every waiter without a change (a subscription closing)."""
        with self._condition:
            self._condition.notify_all()

    def wait(self, seen: int, timeout: float | None, stop: Callable[[], bool]) -> bool:
        """Wait until the counter differs from ``seen`` (True), ``stop()`` holds or
        ``timeout`` seconds pass (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            while self._generation == seen:
                if stop():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._condition.wait(remaining)
            return True


class CommitWatcher:
    """A daemon thread bumping a ``CommitSignal``, counted by its users; one per ``key``
    (the database) per process."""

    def __init__(self, key: tuple[Any, ...]) -> None:
        self.key = key
        self.signal = CommitSignal()
        self.users = 0
        #: Set while the watcher sees every commit; cleared when it may miss some.
        self.watching = threading.Event()
        #: How many times watching (re)started: a reader that caught up before the last
        #: start may have missed commits made while no one watched.
        self.starts = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"tokenledger-{key[0]}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self.watching.clear()
        self.signal.poke()

    def _run(self) -> None:
        raise NotImplementedError

    def hears_every_commit(self) -> bool:
        """Whether every commit from now on will bump the signal."""
        return self.watching.is_set()

    def _started_watching(self) -> None:
        """Watching from now on: whatever was committed before is for readers to re-read."""
        self.starts += 1
        self.watching.set()
        self.signal.bump()


class SQLiteWatcher(CommitWatcher):
    """``PRAGMA data_version`` on a connection of its own: it changes when another
    connection commits (every writer's, this process's or another's)."""

    def __init__(self, path: str) -> None:
        super().__init__(("sqlite", path))
        self.path = path

    def _run(self) -> None:
        connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            last = connection.execute("PRAGMA data_version").fetchone()[0]
            self._started_watching()
            while not self._stopped.wait(SQLITE_CHECK_INTERVAL):
                current = connection.execute("PRAGMA data_version").fetchone()[0]
                if current != last:
                    last = current
                    self.signal.bump()
        except sqlite3.Error as error:  # the file went away: wake readers, who will see
            logger.warning("stopped watching %s for commits: %s", self.path, error)
            self.watching.clear()
            self.signal.bump()
        finally:
            connection.close()


class PostgresListener(CommitWatcher):
    """One ``LISTEN`` connection, re-established when lost."""

    def __init__(self, conninfo: str) -> None:
        super().__init__(("postgresql", conninfo))
        self.conninfo = conninfo
        # When a notification last arrived on the connection (monotonic seconds).
        self._proven_at = 0.0

    def hears_every_commit(self) -> bool:
        return self.watching.is_set() and time.monotonic() - self._proven_at < PROOF_BOUND

    def _run(self) -> None:
        import psycopg

        failures = 0
        while not self._stopped.is_set():
            try:
                with psycopg.connect(
                    self.conninfo,
                    autocommit=True,
                    application_name=LISTENER_APPLICATION_NAME,
                    **_LISTENER_TCP,  # type: ignore[arg-type]
                ) as connection:
                    channel = connection.execute(channel_query()).fetchone()[0]  # type: ignore[index]
                    connection.execute(f'LISTEN "{channel}"')
                    failures = 0
                    self._proven_at = time.monotonic()
                    # Whatever was committed while no one listened is read now.
                    self._started_watching()
                    self._listen(connection, channel)
            except Exception as error:  # any loss of the connection: reconnect
                self.watching.clear()
                if self._stopped.is_set():
                    return
                reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
                logger.warning("listening for commits failed, reconnecting: %s", reason)
                self.signal.bump()
                delay = RECONNECT_BACKOFF[min(failures, len(RECONNECT_BACKOFF) - 1)]
                failures += 1
                self._stopped.wait(delay)

    def _listen(self, connection: Any, channel: str) -> None:
        """Bump the signal for each commit announced; prove the connection when quiet."""
        own = connection.info.backend_pid
        proof_sent: float | None = None
        while not self._stopped.is_set():
            for note in connection.notifies(timeout=1.0):
                if note.payload == PROOF_PAYLOAD:
                    if note.pid == own:  # ours came back: the connection hears
                        self._proven_at = time.monotonic()
                        proof_sent = None
                    continue  # another process's proof: nothing was committed
                self._proven_at = time.monotonic()
                self.signal.bump()
            now = time.monotonic()
            if proof_sent is None and now - self._proven_at >= PROOF_INTERVAL:
                connection.execute("SELECT pg_notify(%s, %s)", (channel, PROOF_PAYLOAD))
                proof_sent = now
            elif proof_sent is not None and now - proof_sent > PROOF_BOUND:
                raise ConnectionError("its own notification did not come back")


_watchers: dict[tuple[Any, ...], CommitWatcher] = {}
_watchers_lock = threading.Lock()


def commit_signal(engine: Engine) -> tuple[CommitSignal, object]:
    """The shared signal for ``engine``'s database and a handle to ``release``; for an
    in-memory database, a signal of its own that the caller bumps on its commits."""
    from tokenledger.store.backends import backend_for

    fresh = backend_for(engine).commit_watcher(engine.url)
    if fresh is None:
        return CommitSignal(), None
    with _watchers_lock:
        watcher = _watchers.get(fresh.key)
        if watcher is None:
            watcher = _watchers[fresh.key] = fresh
            watcher.start()
        watcher.users += 1
        return watcher.signal, watcher


def release(handle: object) -> None:
    """One user fewer of a watcher; the last one stops it."""
    if not isinstance(handle, CommitWatcher):
        return
    with _watchers_lock:
        handle.users -= 1
        if handle.users > 0:
            return
        _watchers.pop(handle.key, None)
    handle.stop()
