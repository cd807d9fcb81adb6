"""Relaying the log to a NATS JetStream stream: every event once, in log order, as CloudEvents.

Exactly once follows from three things:

* Positions are gap-free and assigned in commit order, so how far the relay has gone is one
  number: the position of the last event the stream holds.
* That number is kept in the stream itself, never beside it. Each message carries its
  position (``Tl-Position``); on every connection the relay reads the stream's last message
  on its subject and subscribes to the log after that position. What the stream stored
  before a crash is not sent again, and nothing after it is skipped.
* Messages go one at a time, each acknowledgement awaited before the next is sent, so the
  stream holds a prefix of the log. Each carries ``Nats-Msg-Id`` = the event id: a publish
  repeated after a lost acknowledgement is dropped by the stream's duplicate window. Each
  also carries ``Nats-Expected-Last-Subject-Sequence`` = the stream sequence of the event
  before it: a second relay writing to the same subject is refused by the stream rather
  than interleaved, and the refused relay re-reads the stream's last message and goes on.

When NATS cannot be reached, or the connection drops, the relay says so in one line and
tries again with a growing pause (``RETRY_DELAYS``), resuming from the stream's last message.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from tokenledger.domain.names import shown
from tokenledger.errors import Conflict, ValidationError
from tokenledger.projections.audit_queries import AuditEntry, cloudevent
from tokenledger.service.subscription import Subscription
from tokenledger.store import EventStore, RecordedEvent
from tokenledger.store.mapper import decode_event

__all__ = [
    "DEFAULT_SOURCE",
    "DEFAULT_STREAM",
    "DEFAULT_SUBJECT",
    "MESSAGE_ID_HEADER",
    "POSITION_HEADER",
    "Relay",
    "RelayTarget",
    "relay_target",
]

DEFAULT_STREAM: Final = "TOKENLEDGER"
DEFAULT_SUBJECT: Final = "tokenledger.events"
#: The CloudEvents ``source`` attribute, as ``audit export --format cloudevents`` writes it.
DEFAULT_SOURCE: Final = "urn:tokenledger"

#: JetStream's de-duplication header: the event id.
MESSAGE_ID_HEADER: Final = "Nats-Msg-Id"
#: The event's log position: where to resume.
POSITION_HEADER: Final = "Tl-Position"
_EXPECTED_LAST_SUBJECT_SEQUENCE: Final = "Nats-Expected-Last-Subject-Sequence"
#: CloudEvents' NATS binding, structured mode.
_CONTENT_TYPE: Final = "application/cloudevents+json"

#: How long a stream the relay creates remembers message ids (seconds): far longer than a
#: publish is ever retried.
DUPLICATE_WINDOW: Final = 120.0
#: Pause after the first failure, doubled after each further one up to the last (seconds).
RETRY_DELAYS: Final = (0.1, 5.0)
#: How long to wait for a connection, and for each acknowledgement (seconds).
CONNECT_TIMEOUT: Final = 2
ACK_TIMEOUT: Final = 5.0

#: JetStream's error code for a publish whose expected last subject sequence is not the
#: stream's: something else wrote to the subject.
_WRONG_LAST_SEQUENCE: Final = 10071

_STREAM_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")
_SUBJECT_TOKEN = re.compile(r"[A-Za-z0-9_$-]+")
#: Longer subjects are a typo, not a name (NATS itself bounds a control line at 4 KiB).
_MAX_SUBJECT = 1024


@dataclass(frozen=True)
class RelayTarget:
    """Where the relay publishes: a NATS server, a JetStream stream, and a subject in it."""

    url: str
    stream: str = DEFAULT_STREAM
    subject: str = DEFAULT_SUBJECT
    source: str = DEFAULT_SOURCE

    @property
    def server(self) -> str:
        """The server as shown in messages: host and port, never a password in the URL."""
        parts = urlsplit(self.url)
        return f"nats://{parts.hostname}:{parts.port or 4222}"


def relay_target(
    url: str,
    *,
    stream: str = DEFAULT_STREAM,
    subject: str = DEFAULT_SUBJECT,
    source: str = DEFAULT_SOURCE,
) -> RelayTarget:
    """A checked ``RelayTarget``; ``ValidationError`` names what is wrong."""
    try:  # a malformed host (``[::1``, ``[zz]``) fails in urlsplit or in .hostname
        parts = urlsplit(url.strip())
        port = parts.port
        hostname = parts.hostname
    except ValueError as exc:
        raise ValidationError(f"--to {shown(url)}: {exc}") from exc
    if parts.scheme != "nats" or not hostname:
        raise ValidationError(f"--to takes a NATS server as nats://HOST:PORT, not {shown(url)}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValidationError(f"--to {shown(url)}: a NATS server's URL has no path or query")
    if port == 0:
        raise ValidationError(f"--to {shown(url)}: port 0 is no server's")
    if not _STREAM_NAME.fullmatch(stream):
        raise ValidationError(
            f"--stream {shown(stream)}: a stream name is letters, digits, '-' and '_'"
        )
    # A fixed subject: the stream's last message on it is the relay's checkpoint, which a
    # wildcard would not name.
    if len(subject) > _MAX_SUBJECT or not all(
        _SUBJECT_TOKEN.fullmatch(token) for token in subject.split(".")
    ):
        raise ValidationError(
            f"--subject {shown(subject)}: a subject is dot-separated words of letters, digits, "
            "'-', '_' and '$', without wildcards"
        )
    if not source.strip():
        raise ValidationError("--source cannot be empty")
    return RelayTarget(url=url.strip(), stream=stream, subject=subject, source=source)


@dataclass(frozen=True)
class _Checkpoint:
    """The last event the stream holds on the subject (position 0, sequence 0: none)."""

    position: int
    sequence: int
    #: The message's ``Nats-Msg-Id``: the id of the event it holds.
    event_id: str | None = None


class _Interrupted(Exception):
    """The connection must start over: it closed, or another writer moved the
    subject on."""


class Relay:
    """Publishes the log of ``store`` to ``target``; ``run`` until caught up or stopped.

    ``progress`` receives a line when the relay has caught up; ``trouble`` one per failure
    it recovers from (NATS unreachable, the connection lost).
    """

    def __init__(
        self,
        store: EventStore,
        target: RelayTarget,
        *,
        progress: Callable[[str], None],
        trouble: Callable[[str], None],
    ) -> None:
        self._store = store
        self._target = target
        self._progress = progress
        self._trouble = trouble
        #: The last position the stream is known to hold.
        self.position = 0

    async def run(self, stop: asyncio.Event, *, once: bool = False) -> int:
        """Relay until ``stop`` is set or, with ``once``, until the log's head at the start
        is in the stream; return the last position the stream holds.

        A failure to reach NATS is retried; one that retrying cannot mend (the stream or
        the subject belong to something else) raises a ``LedgerError``.
        """
        first_delay, longest_delay = RETRY_DELAYS
        delay = first_delay
        while not stop.is_set():
            connected = asyncio.Event()
            try:
                await self._connection(stop, once, connected)
                return self.position
            except (OSError, TimeoutError, nats.errors.Error, _Interrupted) as exc:
                if connected.is_set():
                    delay = first_delay  # it worked until now: start the backoff afresh
                self._trouble(
                    f"cannot relay to {self._target.server}: {_reason(exc)}; "
                    f"retrying in {delay:g} s"
                )
            await _wait(stop, delay)
            delay = min(delay * 2, longest_delay)
        return self.position

    async def _connection(self, stop: asyncio.Event, once: bool, connected: asyncio.Event) -> None:
        """Connect, resume after the stream's last message, and relay until stopped (or, with
        ``once``, at the head); raises when the connection fails."""
        lost = asyncio.Event()
        last_error: list[Exception] = []  # the client's latest, for the line ``run`` says

        async def closed() -> None:
            lost.set()

        async def keep(error: Exception) -> None:
            # What goes wrong surfaces as the exception of the call it breaks, reported
            # once by ``run``; the client's own report would be a traceback per error.
            last_error[:] = [error]

        # The client's own retrying is kept to the least it allows (its connect tries a
        # server twice at least; 0 would mean forever): one loop, ``run``'s, retries, always
        # resuming from what the stream holds.
        try:
            client = await nats.connect(
                self._target.url,
                name="tokenledger-relay",
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0,
                connect_timeout=CONNECT_TIMEOUT,
                error_cb=keep,
                closed_cb=closed,
            )
        except nats.errors.NoServersError as exc:
            # Says only that every attempt failed; the last attempt's error says why.
            raise (last_error[0] if last_error else exc) from None
        try:
            js = client.jetstream(timeout=ACK_TIMEOUT)
            await self._ensure_stream(js)
            checkpoint = await self._checkpoint(js)
            await asyncio.to_thread(self._check_same_log, checkpoint)
            self.position = checkpoint.position
            connected.set()
            head = (await asyncio.to_thread(self._store.head)).position if once else None
            with Subscription(self._store, after=checkpoint.position) as subscription:
                await self._relay(js, subscription, checkpoint.sequence, stop, lost, head)
        finally:
            await _close(client)

    async def _relay(
        self,
        js: JetStreamContext,
        subscription: Subscription,
        sequence: int,
        stop: asyncio.Event,
        lost: asyncio.Event,
        head: int | None,
    ) -> None:
        reported = -1  # the first time it catches up is always said
        while not stop.is_set():
            if head is not None and self.position >= head:
                break
            # Whether more is there already: if not, the relay has caught up.
            batch = await subscription.next_batch_async(timeout=0)
            if not batch:
                if self.position != reported:
                    self._progress(f"relayed up to position {self.position}")
                    reported = self.position
                batch = await _next_batch(subscription, stop, lost)
            for record in batch:
                if stop.is_set():
                    return  # the publish before has been acknowledged: a clean stop
                sequence = await self._publish(js, record, sequence)
                self.position = record.position
        if head is not None and reported != self.position:
            self._progress(f"relayed up to position {self.position}")

    async def _publish(self, js: JetStreamContext, record: RecordedEvent, sequence: int) -> int:
        """Publish one event and wait for the stream to hold it; its stream sequence."""
        body = msgspec.json.encode(
            cloudevent(AuditEntry(record, decode_event(record)), self._target.source)
        )
        headers = {
            MESSAGE_ID_HEADER: record.event_id,
            POSITION_HEADER: str(record.position),
            _EXPECTED_LAST_SUBJECT_SEQUENCE: str(sequence),
            "Content-Type": _CONTENT_TYPE,
        }
        try:
            ack = await js.publish(
                self._target.subject, body, stream=self._target.stream, headers=headers
            )
        except nats.js.errors.APIError as exc:
            if exc.err_code == _WRONG_LAST_SEQUENCE:
                raise _Interrupted(
                    f"the subject {self._target.subject} moved on without this relay "
                    "(another relay publishing to it?)"
                ) from exc
            raise
        return ack.seq

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        """The stream exists and stores the subject: created when missing."""
        name, subject = self._target.stream, self._target.subject
        try:
            info = await js.stream_info(name)
        except nats.js.errors.NotFoundError:
            try:
                await js.add_stream(
                    name=name, subjects=[subject], duplicate_window=DUPLICATE_WINDOW
                )
            except nats.js.errors.BadRequestError as exc:
                # Another stream holds the subject, or the server refuses the stream.
                raise Conflict(
                    f"cannot create the stream {name} for {subject}: {exc.description}"
                ) from exc
            return
        if not any(_matches(pattern, subject) for pattern in info.config.subjects or ()):
            raise Conflict(f"the stream {name} does not store the subject {shown(subject)}")

    async def _checkpoint(self, js: JetStreamContext) -> _Checkpoint:
        """Where the stream's last message on the subject leaves the relay."""
        name, subject = self._target.stream, self._target.subject
        try:
            message = await js.get_last_msg(name, subject)
        except nats.js.errors.NotFoundError:
            return _Checkpoint(position=0, sequence=0)
        raw = (message.headers or {}).get(POSITION_HEADER, "")
        if not raw.isdigit() or int(raw) < 1:
            raise Conflict(
                f"the last message on {subject} in the stream {name} has no {POSITION_HEADER} "
                "header: something else publishes there"
            )
        return _Checkpoint(
            position=int(raw),
            sequence=message.seq or 0,
            event_id=(message.headers or {}).get(MESSAGE_ID_HEADER),
        )

    def _check_same_log(self, checkpoint: _Checkpoint) -> None:
        """The stream's last message is this log's event at its position: a stream relayed
        from another ledger would otherwise be continued with this one's later events."""
        position = checkpoint.position
        if position == 0:
            return
        record = next(iter(self._store.read_all(from_position=position, batch_size=1)), None)
        if record is None or record.position != position:
            raise Conflict(
                f"the stream {self._target.stream} holds position {position} on "
                f"{self._target.subject}, beyond this log's head: it relays another ledger"
            )
        if record.event_id != checkpoint.event_id:
            raise Conflict(
                f"the stream {self._target.stream}'s message at position {position} is not "
                "this log's event: it relays another ledger"
            )


async def _next_batch(
    subscription: Subscription, stop: asyncio.Event, lost: asyncio.Event
) -> list[RecordedEvent]:
    """The next events, or nothing once ``stop`` is set; raises when the connection closes
    while the log is quiet, so that it is re-established before there is anything to send."""
    reading = asyncio.ensure_future(subscription.next_batch_async())
    stopping = asyncio.ensure_future(stop.wait())
    closing = asyncio.ensure_future(lost.wait())
    try:
        await asyncio.wait({reading, stopping, closing}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in (stopping, closing):
            waiter.cancel()
    if reading.done():
        return reading.result()
    reading.cancel()
    with suppress(asyncio.CancelledError):
        await reading
    if lost.is_set() and not stop.is_set():
        raise _Interrupted("the connection closed")
    return []


def _matches(pattern: str, subject: str) -> bool:
    """Whether a stream's subject ``pattern`` (with NATS's ``*`` and ``>``) takes ``subject``."""
    wanted, given = pattern.split("."), subject.split(".")
    for index, token in enumerate(wanted):
        if token == ">":
            return len(given) > index
        if index >= len(given) or (token != "*" and token != given[index]):
            return False
    return len(wanted) == len(given)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _close(client: Client) -> None:
    # A connection that is already gone has nothing to flush.
    with suppress(OSError, TimeoutError, nats.errors.Error):
        await client.close()


def _reason(exc: BaseException) -> str:
    """One line saying what went wrong."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = " ".join(str(exc).split())
    return text.removeprefix("nats: ") or type(exc).__name__
