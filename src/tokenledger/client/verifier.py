"""``Verifier``: token answers in process, kept current by following the ledger's log.

::

    from tokenledger.client import Verifier

    with Verifier(database="postgresql://ledger@db/ledger") as verifier:
        verifier.wait_ready(timeout=30)
        answer = verifier.verify(secret, resource="acme/alpha", level=Level.WRITE)

    with Verifier(server="https://ledger.example", token=secret_of_the_verifier) as verifier:
        ...

Both forms fold the log in a background thread and answer with THE rule,
``domain.authority.verify_secret`` (``verify_token`` for the token a secret's hash names),
so an answer is the one the server gives for the same log position and moment.

* ``database=URL`` follows the log with a catch-up subscription (``Subscription``) and folds
  only the events a token's answer reads (``domain.state.TOKEN_ANSWER_EVENTS``) into a
  ``LedgerState``: every answer is computed here.
* ``server=URL, token=SECRET`` follows ``GET /v2/events/stream`` (Server-Sent Events) with
  that credential, reconnecting with ``Last-Event-ID`` and a backoff when the connection is
  lost. No credential given to the HTTP API sees every event (an org's admin sees the org's),
  and a token's answer may turn on events it does not see (its user's other orgs, the user
  record itself), so this form does not guess: a token whose revocation it has seen is
  answered here (a revocation is final, whatever else happened), and any other secret is
  answered by the server (``POST /v2/tokens/verify``) and kept until the log moves. The
  stream reports every position, seen or not, so a kept answer never outlives a change.

Answers are kept in a dict keyed by the secret's digest, the resource and the level, and all
of them are dropped whenever the log moves; an active answer is never served past its
``exp``. Unknown and malformed secrets are not kept. A warm answer is one dict lookup and one
read of the clock.

When its source goes away, a database-fed verifier answers as of ``position`` and reads on
from there once the database is back; a server-fed one drops the answers it kept (the server
is asked again, or the call fails) and reconnects. A refused credential stops it (``error``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
from sqlalchemy.engine import URL

from tokenledger.client.http import error_for
from tokenledger.client.results import convert
from tokenledger.client.urls import server_url
from tokenledger.clock import Clock, SystemClock, ensure_utc
from tokenledger.domain import events as e
from tokenledger.domain.authority import Verification, verify_secret
from tokenledger.domain.names import resource_path
from tokenledger.domain.permissions import Level
from tokenledger.domain.secrets import hash_secret, parse_secret, secret_digest
from tokenledger.domain.state import TOKEN_ANSWER_EVENTS, LedgerState, evolve
from tokenledger.errors import LedgerError, PermissionDenied, StorageError, ValidationError
from tokenledger.service.answers import CACHED_INACTIVE
from tokenledger.service.reading import valid

if TYPE_CHECKING:
    from tokenledger.store import EventStore

__all__ = ["MAX_KEPT", "RECONNECT_BACKOFF", "Verifier"]

logger = logging.getLogger(__name__)

#: Seconds between attempts to reconnect to the server's event stream.
RECONNECT_BACKOFF = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
#: Seconds without a byte from the server (it sends a keep-alive every 15) before the
#: connection is taken for lost.
STREAM_READ_TIMEOUT = 60.0

#: The most answers kept at once (all are dropped when there would be more).
MAX_KEPT = 100_000

#: The event types folded, by name (what the log and the stream call them).
_FOLDED = frozenset(kind.__struct_config__.tag for kind in TOKEN_ANSWER_EVENTS)
#: What a server-fed verifier folds: the tokens it sees, for the revocations it sees.
_TOKEN_EVENTS = frozenset({"TokenIssued", "TokenRevoked"})

_Key = tuple[bytes, str | None, Level]


class Verifier:
    """Token answers from an in-process fold of the log; see the module's docstring.

    Give ``database`` (a URL, as ``Ledger.open`` takes) or ``server`` and ``token`` (the
    credential the stream is read with). ``clock`` defaults to the system's.
    """

    def __init__(
        self,
        *,
        database: str | URL | None = None,
        server: str | None = None,
        token: str | None = None,
        clock: Clock | None = None,
        timeout: float = 30.0,
    ) -> None:
        if (database is None) == (server is None):
            raise ValidationError("a Verifier follows a database or a server: give one of them")
        if server is not None and not token:
            raise ValidationError("a Verifier following a server needs a token to read with")
        self._database = database
        self._server = server_url(server) if server is not None else None
        self._token = token
        self._timeout = timeout
        self._clock: Clock = clock or SystemClock()
        self._wall_clock = type(self._clock) is SystemClock
        self._state = LedgerState()
        self._folded = _FOLDED if database is not None else _TOKEN_EVENTS
        self._answers: dict[_Key, tuple[Verification, float | None]] = {}
        self._lock = threading.Lock()
        self._moved = threading.Condition(self._lock)
        self._generation = 0
        self._position = 0
        self._ready_at: int | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._stop_source: Any = None  # what close() closes to end a blocking read
        self._http: httpx.Client | None = None
        self._failures = 0  # attempts to reach the stream since it was last connected
        #: Why the verifier stopped following the log, if it did (a refused credential).
        self.error: LedgerError | None = None

    def __repr__(self) -> str:
        source = f"server={self._server!r}" if self._server else "database=..."
        return f"Verifier({source}, position={self._position})"

    # -- starting and stopping ----------------------------------------------------------

    def start(self) -> Verifier:
        """Start following the log in a daemon thread (once)."""
        if self._thread is None:
            target = self._follow_database if self._database is not None else self._follow_server
            self._thread = threading.Thread(target=target, name="tokenledger-verifier", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop following the log; answers already kept are still served until they lapse."""
        self._stopping.set()
        source = self._stop_source
        if source is not None:
            with contextlib.suppress(Exception):  # closing from another thread: best effort
                source.close()
        with self._moved:
            self._moved.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        if self._http is not None:
            self._http.close()

    def __enter__(self) -> Verifier:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- where it stands ----------------------------------------------------------------

    @property
    def position(self) -> int:
        """The last log position applied."""
        return self._position

    @property
    def ready(self) -> bool:
        """Whether the log as it stood at start has been applied."""
        ready_at = self._ready_at
        return ready_at is not None and self._position >= ready_at

    def wait_for(self, position: int, timeout: float | None = None) -> bool:
        """Wait until ``position`` has been applied (True), or ``timeout`` seconds pass or
        the verifier stops (False)."""
        with self._moved:
            return self._moved.wait_for(
                lambda: self._position >= position or self._stopped(), timeout
            ) and (self._position >= position)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the log as it stood at start has been applied."""
        with self._moved:
            return self._moved.wait_for(lambda: self.ready or self._stopped(), timeout) and (
                self.ready
            )

    def _stopped(self) -> bool:
        return self._stopping.is_set() or self.error is not None

    # -- answers ------------------------------------------------------------------------

    def verify(
        self, secret: str, resource: str | None = None, level: Level | None = None
    ) -> Verification:
        """Is the token active, and (given a resource) does it allow ``level`` (default
        read) there now? The server's answer for the same log position and moment."""
        wanted = level if level is not None else Level.READ
        key = (secret_digest(secret), resource, wanted)
        kept = self._answers.get(key)
        if kept is not None:
            answer, until = kept
            if until is None or self._now_timestamp() < until:
                return answer
        return self._answer(secret, key)

    def _now_timestamp(self) -> float:
        return time.time() if self._wall_clock else self._clock.now().timestamp()

    def _answer(self, secret: str, key: _Key) -> Verification:
        _, resource, wanted = key
        if resource is not None:
            resource = valid(resource_path, resource)
        with self._lock:
            generation = self._generation
            position = self._position
            if self._database is not None or self._seen_revoked(secret):
                answer = verify_secret(
                    self._state, secret, ensure_utc(self._clock.now()), resource=resource,
                    level=wanted,
                )  # fmt: skip
                self._keep(key, answer)
                return answer
        answer = self._ask_server(secret, resource, wanted, position)
        with self._lock:
            if generation == self._generation:  # nothing moved while the server answered
                self._keep(key, answer)
        return answer

    def _keep(self, key: _Key, answer: Verification) -> None:
        if len(self._answers) >= MAX_KEPT:  # a bound on memory, as the server's cache has
            self._answers.clear()
        if answer.active:
            self._answers[key] = (answer, float(answer.exp) if answer.exp is not None else None)
        elif answer.reason in CACHED_INACTIVE:
            self._answers[key] = (answer, None)

    def _seen_revoked(self, secret: str) -> bool:
        try:
            parse_secret(secret)
        except ValidationError:
            return True  # malformed: answered here, as the server would
        token = self._state.token_by_secret_hash(hash_secret(secret))
        return token is not None and token.revoked

    def _ask_server(
        self, secret: str, resource: str | None, wanted: Level, position: int
    ) -> Verification:
        """The server's answer, reflecting at least ``position`` (what the stream has said):
        a worker whose own follower lags is made to catch up, or to read through."""
        http = self._client()
        body: dict[str, object] = {"token": secret, "resource": resource, "min_position": position}
        if resource is not None:
            body["level"] = wanted.label
        try:
            response = http.post(
                "/v2/tokens/verify", json=body, headers={"Authorization": f"Bearer {self._token}"}
            )
        except httpx.HTTPError as exc:
            raise StorageError(f"cannot reach the server at {self._server}: {exc}") from None
        if not response.is_success:
            raise error_for(response)
        return convert(msgspec.json.decode(response.content), Verification, "a verification")

    def _client(self) -> httpx.Client:
        if self._stopping.is_set():
            raise LedgerError("the verifier is closed: it asks the server no more")
        if self._http is None:
            assert self._server is not None
            self._http = httpx.Client(base_url=self._server, timeout=self._timeout)
        return self._http

    # -- applying the log ---------------------------------------------------------------

    def _apply(self, folded: Sequence[tuple[e.Event, datetime]], position: int) -> None:
        """Fold ``folded`` (events with their times), note ``position`` as applied, drop
        every kept answer, and wake whoever waits."""
        with self._moved:
            for event, at in folded:
                self._fold(event, at)
            if position > self._position:
                self._position = position
            self._generation += 1
            self._answers.clear()
            self._moved.notify_all()

    def _fold(self, event: e.Event, at: datetime) -> None:
        unseen = isinstance(event, e.TokenRevoked) and event.token_id not in self._state.tokens
        if unseen and self._database is None:
            return  # a revocation of a token this credential did not see issued
        evolve(event, self._state, at)

    def _forget(self) -> None:
        with self._moved:
            self._generation += 1
            self._answers.clear()

    def _caught_up_at(self, head: int) -> None:
        with self._moved:
            if self._ready_at is None:
                self._ready_at = head
            self._moved.notify_all()

    def _follow_database(self) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        from tokenledger.store import open_event_store

        assert self._database is not None
        try:
            store = open_event_store(self._database, clock=self._clock)
        except LedgerError as exc:
            self._fail(exc)
            return
        try:
            while not self._stopping.is_set():
                try:
                    self._read_database(store)
                except (LedgerError, SQLAlchemyError, OSError) as exc:
                    if self._stopping.is_set():
                        return
                    # The database went away: read on from the position applied, once back.
                    logger.warning("reading the log failed, reading again: %s", exc)
                    self._back_off()
        except Exception as exc:  # a fault of its own: the thread must say why it stopped
            logger.exception("the verifier stopped following the log")
            self._fail(LedgerError(f"the verifier stopped: {exc}"))
        finally:
            store.engine.dispose()

    def _read_database(self, store: EventStore) -> None:
        from tokenledger.service.subscription import Subscription
        from tokenledger.store.mapper import decode_event

        head = store.head().position
        with Subscription(store, after=self._position) as subscription:
            self._stop_source = subscription
            self._failures = 0
            self._caught_up_at(head)
            while not self._stopping.is_set():
                batch = subscription.next_batch(timeout=1.0)
                if not batch:
                    continue
                folded = [
                    (decode_event(record), record.recorded_at)
                    for record in batch
                    if record.event_type in self._folded
                ]
                self._apply(folded, batch[-1].position)

    def _back_off(self) -> None:
        delay = RECONNECT_BACKOFF[min(self._failures, len(RECONNECT_BACKOFF) - 1)]
        self._failures += 1
        self._stopping.wait(delay)

    def _follow_server(self) -> None:
        while not self._stopping.is_set():
            try:
                self._read_stream()
            except PermissionDenied as exc:  # the credential is refused: retrying will not do
                self._fail(exc)
                return
            except (httpx.HTTPError, LedgerError, OSError) as exc:
                if self._stopping.is_set():
                    return
                if isinstance(exc, ValidationError):
                    self._fail(exc)
                    return
                logger.warning("the event stream was lost, reconnecting: %s", exc)
            # Unfollowed, the server's kept answers could outlive a change: ask it again.
            self._forget()
            self._back_off()

    def _read_stream(self) -> None:
        assert self._server is not None
        timeout = httpx.Timeout(self._timeout, read=STREAM_READ_TIMEOUT)
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Accept": "text/event-stream",
            "Last-Event-ID": str(self._position),
        }
        with httpx.Client(base_url=self._server, timeout=timeout) as http:
            self._stop_source = http
            if self._stopping.is_set():
                return
            with http.stream("GET", "/v2/events/stream", headers=headers) as response:
                if not response.is_success:
                    response.read()
                    raise error_for(response)
                self._failures = 0  # connected: the next loss starts the backoff again
                for message in _messages(response.iter_lines()):
                    if self._stopping.is_set():
                        return
                    self._take(message)
        raise LedgerError("the server ended the event stream")

    def _take(self, message: dict[str, str]) -> None:
        kind = message.get("event", "message")
        position = int(message["id"]) if message.get("id", "").isdigit() else None
        data = msgspec.json.decode(message.get("data", "null"))
        if kind == "position":
            if position is not None:
                self._apply([], position)
            if isinstance(data, dict) and isinstance(data.get("head"), int):
                self._caught_up_at(data["head"])
            return
        if position is None:
            return
        folded: list[tuple[e.Event, datetime]] = []
        if kind in self._folded and isinstance(data, dict):
            event = convert(data.get("data"), e.event_types()[kind], f"a {kind} event")
            folded.append((event, convert(data.get("time"), datetime, "a time")))
        self._apply(folded, position)

    def _fail(self, error: LedgerError) -> None:
        logger.warning("the verifier stopped: %s", error)
        with self._moved:
            self.error = error
            self._moved.notify_all()


def _messages(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """Server-Sent Events: each message's fields (comments skipped)."""
    fields: dict[str, str] = {}
    for line in lines:
        if not line:
            if fields:
                yield fields
                fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        fields[name] = f"{fields[name]}\n{value}" if name == "data" and name in fields else value
