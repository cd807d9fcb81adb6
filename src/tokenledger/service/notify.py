"""The deliverer of webhooks (``tokenledger notify``): follows the log, puts each event an
org's webhook asks for in an outbox, sends what is due, and retries what failed.

At least once follows from three things:

* Reading the log and queuing its deliveries is one transaction with moving the
  checkpoint (``webhook_checkpoints``): after a crash the deliverer reads on from the last
  position whose deliveries are queued, and a delivery queued twice is one row, since its
  id (``domain.webhooks.event_delivery_id``) is made from the webhook and the event.
* A delivery is marked delivered only after the receiver answered 2xx. A crash between the
  answer and the mark sends it again, with the same ``webhook-id``: receivers drop repeats.
* A failure (no connection, a timeout, any other status) is retried after a pause that
  doubles up to an hour (``domain.webhooks.retry_delay``), for as long as the webhook
  exists; deleting it stops its pending deliveries.

Expiry warnings come from a scan of the tokens expiring soon (``warn_expiring``), one
delivery per (webhook, token, warning), so each is queued once however often the scan runs.
Time comes from the ledger's clock, so tests move it rather than sleep.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Final

import httpx
import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tokenledger.clock import ensure_utc
from tokenledger.domain.authority import token_orgs
from tokenledger.domain.events import Event
from tokenledger.domain.model import TokenView
from tokenledger.domain.token_filter import TokenFilter
from tokenledger.domain.usage import last_active
from tokenledger.domain.webhooks import (
    DEFAULT_EXPIRY_WARNINGS,
    DEFAULT_UNUSED_AFTER,
    EXPIRING,
    UNUSED,
    concerns_org,
    due_warning,
    event_delivery_id,
    expiry_delivery_id,
    retry_delay,
    sign,
    signing_secrets,
    unused_delivery_id,
    webhook_type,
)
from tokenledger.projections import SqlLedgerView
from tokenledger.projections.audit_queries import AuditEntry, cloudevent
from tokenledger.projections.schema import webhooks
from tokenledger.projections.webhook_view import LiveWebhook, live_webhooks
from tokenledger.service.webhook_tables import webhook_checkpoints, webhook_deliveries
from tokenledger.store import EventStore, RecordedEvent
from tokenledger.store.chain import format_timestamp
from tokenledger.store.mapper import decode_event

__all__ = ["DEFAULT_SOURCE", "Notifier", "Round", "parse_warnings"]

#: The CloudEvents ``source`` attribute, as ``audit export --format cloudevents`` writes it.
DEFAULT_SOURCE: Final = "urn:tokenledger"
#: The checkpoint's row in ``webhook_checkpoints``.
CHECKPOINT: Final = "webhooks"
#: CloudEvents' HTTP binding, structured mode.
CONTENT_TYPE: Final = "application/cloudevents+json"
#: How long a receiver has to answer (seconds).
TIMEOUT: Final = 10.0
#: How many due deliveries one round sends at most.
ROUND_SIZE: Final = 500
#: How often the running deliverer scans for tokens near their expiry (seconds).
SCAN_INTERVAL: Final = 60.0
#: The longest the running deliverer waits for the log before looking at what is due.
POLL: Final = 1.0
#: How much of a receiver's failure is kept (characters).
_ERROR_LENGTH = 300


@dataclass(frozen=True, slots=True)
class Round:
    """What one round of sending did."""

    delivered: int
    failed: int


def parse_warnings(text: str) -> tuple[timedelta, ...]:
    """``14d,7d,1d``: how long before a token's expiry each warning goes out."""
    from tokenledger.domain.commands import parse_duration

    return tuple(sorted({parse_duration(part) for part in text.split(",")}, reverse=True))


class Notifier:
    """Delivers the webhooks of the ledger ``store`` with secrets made from ``webhook_key``.

    ``progress`` receives a line per delivery; ``trouble`` one per failed attempt."""

    def __init__(
        self,
        store: EventStore,
        webhook_key: bytes,
        *,
        warnings: Sequence[timedelta] = DEFAULT_EXPIRY_WARNINGS,
        unused_after: timedelta | None = DEFAULT_UNUSED_AFTER,
        source: str = DEFAULT_SOURCE,
        rng: random.Random | None = None,
        progress: Callable[[str], None] = lambda line: None,
        trouble: Callable[[str], None] = lambda line: None,
        timeout: float = TIMEOUT,
    ) -> None:
        self._store = store
        self._key = webhook_key
        self._warnings = tuple(warnings)
        self._unused_after = unused_after
        self._source = source
        self._rng = rng or random.Random()
        self._progress = progress
        self._trouble = trouble
        # No redirects: a webhook's URL is where its deliveries go, and nowhere else.
        self._http = httpx.Client(timeout=timeout, follow_redirects=False)

    def close(self) -> None:
        self._http.close()

    def now(self) -> datetime:
        return ensure_utc(self._store.clock.now())

    # -- running ---------------------------------------------------------------------------

    def run_once(self) -> Round:
        """Queue what the log holds and what expiry warnings are due, then try each due
        delivery once."""
        self.catch_up()
        self.warn_expiring()
        self.warn_unused()
        return self.deliver_due()

    def run(self, stop: threading.Event) -> None:
        """Follow the log and deliver until ``stop`` is set."""
        from tokenledger.service.subscription import Subscription

        scanned_at: float | None = None
        with Subscription(self._store, after=self.checkpoint()) as subscription:
            wait = 0.0
            while not stop.is_set():
                batch = subscription.next_batch(timeout=wait)
                if batch:
                    self.queue(batch)
                if scanned_at is None or time.monotonic() - scanned_at >= SCAN_INTERVAL:
                    self.warn_expiring()
                    self.warn_unused()
                    scanned_at = time.monotonic()
                sent = self.deliver_due(stop)
                # More may be due at once when a round was full; else look again soon.
                wait = 0.0 if sent.delivered + sent.failed >= ROUND_SIZE else POLL

    def run_until(self, stop: threading.Event) -> None:
        """``run``, started again after a pause when it fails (the database unreachable, say),
        until ``stop`` is set: for a deliverer inside another process."""
        while not stop.is_set():
            try:
                self.run(stop)
            except Exception as exc:  # any failure: said in one line, then retried
                self._trouble(f"stopped: {' '.join(str(exc).split())[:200]}; restarting in 5 s")
                stop.wait(5.0)

    # -- the log into the outbox ------------------------------------------------------------

    def checkpoint(self) -> int:
        """The last log position whose deliveries are queued."""
        query = sa.select(webhook_checkpoints.c.position).where(
            webhook_checkpoints.c.name == CHECKPOINT
        )
        with self._store.engine.connect() as connection:
            return int(connection.execute(query).scalar_one_or_none() or 0)

    def catch_up(self) -> int:
        """Queue the deliveries of every event after the checkpoint; how many were queued."""
        queued = 0
        page: list[RecordedEvent] = []
        for record in self._store.read_all(from_position=self.checkpoint() + 1):
            page.append(record)
            if len(page) == 1000:
                queued += self.queue(page)
                page = []
        if page:
            queued += self.queue(page)
        return queued

    def queue(self, records: Sequence[RecordedEvent]) -> int:
        """Queue the deliveries of ``records`` and move the checkpoint past them, in one
        transaction."""
        if not records:
            return 0
        now = self.now()
        with self._store.engine.begin() as connection:
            hooks = live_webhooks(connection)
            # With no webhook, nothing is decoded: the checkpoint just moves on.
            rows = [
                self._event_row(hook, record, event, kind, now)
                for record in (records if hooks else ())
                for event, kind in [_typed(record)]
                if kind is not None
                for hook in hooks
                if _wants(hook, record.position, event, kind)
            ]
            _insert_new(connection, rows)
            _advance(connection, records[-1].position)
        return len(rows)

    def _event_row(
        self, hook: LiveWebhook, record: RecordedEvent, event: Event, kind: str, now: datetime
    ) -> dict[str, Any]:
        body = cloudevent(AuditEntry(record, event), self._source)
        body["type"] = f"io.tokenledger.{kind}"
        delivery_id = event_delivery_id(hook.webhook.webhook_id, record.event_id)
        return _row(delivery_id, hook.webhook.webhook_id, kind, record.position, body, now)

    # -- expiry warnings -----------------------------------------------------------------

    def warn_expiring(self) -> int:
        """Queue a ``token.expiring`` delivery for each live token whose warning is due, to
        each webhook of its orgs that asks for them; how many were queued."""
        if not self._warnings:
            return 0
        now = self.now()
        with self._store.engine.begin() as connection:
            hooks = [h for h in live_webhooks(connection) if EXPIRING in h.webhook.events]
            if not hooks:
                return 0
            # The one rule of which tokens expire within a window (``domain.token_filter``).
            expiring = TokenFilter(expires_within=max(self._warnings))
            matches = expiring.matcher()
            view = SqlLedgerView(connection)
            rows: list[dict[str, Any]] = []
            for token in view.token_candidates(expiring, now):
                if not matches(token, now):
                    continue
                assert token.expires_at is not None
                before = due_warning(token.expires_at, now, self._warnings)
                if before is None:
                    continue
                rows += self._notices(
                    hooks,
                    token,
                    EXPIRING,
                    partial(expiry_delivery_id, token_id=token.token_id, before=before),
                    now,
                    expires_at=format_timestamp(token.expires_at),
                    warning_seconds=int(before.total_seconds()),
                )
            _insert_new(connection, rows)
        return len(rows)

    def warn_unused(self) -> int:
        """Queue a ``token.unused`` delivery for each live token unused for ``unused_after``
        (the one rule: ``domain.token_filter``'s ``unused_for``), once per token and last
        use, to each webhook of its orgs that asks for them; how many were queued."""
        if self._unused_after is None:
            return 0
        now = self.now()
        token_filter = TokenFilter(unused_for=self._unused_after)
        with self._store.engine.begin() as connection:
            hooks = [h for h in live_webhooks(connection) if UNUSED in h.webhook.events]
            if not hooks:
                return 0
            matches = token_filter.matcher()
            view = SqlLedgerView(connection)
            rows: list[dict[str, Any]] = []
            for token in view.token_candidates(token_filter, now):
                if not matches(token, now):
                    continue
                since = last_active(token)
                rows += self._notices(
                    hooks,
                    token,
                    UNUSED,
                    partial(unused_delivery_id, token_id=token.token_id, last_active=since),
                    now,
                    last_used=format_timestamp(token.last_used_at) if token.last_used_at else None,
                    unused_seconds=int((now - since).total_seconds()),
                )
            _insert_new(connection, rows)
        return len(rows)

    def _notices(
        self,
        hooks: Sequence[LiveWebhook],
        token: TokenView,
        kind: str,
        delivery_id_for: Callable[[str], str],
        now: datetime,
        **data: Any,
    ) -> list[dict[str, Any]]:
        """One delivery of ``kind`` about ``token`` (made by a scan, not by a log event) to
        each of ``hooks`` whose org the token reaches."""
        orgs = token_orgs(token)
        rows = []
        for hook in hooks:
            if hook.webhook.org not in orgs:
                continue
            delivery_id = delivery_id_for(hook.webhook.webhook_id)
            body = {
                "specversion": "1.0",
                "id": delivery_id,
                "source": self._source,
                "type": f"io.tokenledger.{kind}",
                "subject": f"token:{token.token_id}",
                "time": format_timestamp(now),
                "datacontenttype": "application/json",
                "data": {
                    "token_id": token.token_id,
                    "principal": token.principal,
                    "kind": token.kind,
                    "name": token.name,
                    "org": hook.webhook.org,
                    **data,
                },
            }
            rows.append(_row(delivery_id, hook.webhook.webhook_id, kind, None, body, now))
        return rows

    # -- sending -----------------------------------------------------------------------------

    def deliver_due(self, stop: threading.Event | None = None) -> Round:
        """Try each delivery due now once (a webhook whose receiver just failed is left for
        the next round); mark each delivered on a 2xx, else schedule its retry."""
        now = self.now()
        table = webhook_deliveries
        query = (
            sa.select(
                table.c.delivery_id,
                table.c.webhook_id,
                table.c.body,
                table.c.attempts,
                webhooks.c.url,
                webhooks.c.secret_generation,
                webhooks.c.rotated_at,
            )
            .join(webhooks, webhooks.c.webhook_id == table.c.webhook_id)
            .where(
                table.c.delivered_at.is_(None),
                table.c.next_attempt_at <= now,
                webhooks.c.deleted_at.is_(None),
            )
            .order_by(table.c.next_attempt_at, table.c.position, table.c.delivery_id)
            .limit(ROUND_SIZE)
        )
        with self._store.engine.connect() as connection:
            due = connection.execute(query).all()
        delivered = failed = 0
        failing: set[str] = set()
        for delivery_id, webhook_id, body, attempts, url, generation, rotated_at in due:
            if stop is not None and stop.is_set():
                break
            if webhook_id in failing:
                continue
            secrets = signing_secrets(self._key, webhook_id, generation, rotated_at, self.now())
            error = self._send(url, secrets, delivery_id, body.encode())
            sent_at = self.now()
            if error is None:
                changes: dict[str, Any] = {
                    "attempts": attempts + 1,
                    "delivered_at": sent_at,
                    "next_attempt_at": None,
                    "last_error": None,
                }
                delivered += 1
                self._progress(f"delivered {delivery_id} to {webhook_id}")
            else:
                pause = retry_delay(attempts + 1, self._rng)
                changes = {
                    "attempts": attempts + 1,
                    "next_attempt_at": sent_at + pause,
                    "last_error": error[:_ERROR_LENGTH],
                }
                failed += 1
                failing.add(webhook_id)
                self._trouble(
                    f"cannot deliver {delivery_id} to {webhook_id}: {error}; "
                    f"retrying in {pause.total_seconds():.0f} s"
                )
            with self._store.engine.begin() as connection:
                connection.execute(
                    sa.update(table)
                    .where(table.c.delivery_id == delivery_id, table.c.delivered_at.is_(None))
                    .values(changes)
                )
        return Round(delivered=delivered, failed=failed)

    def _send(self, url: str, secrets: Sequence[str], delivery_id: str, body: bytes) -> str | None:
        """POST one delivery, signed now; None on a 2xx, else why it failed (one line)."""
        timestamp = int(self.now().timestamp())
        headers = {
            "content-type": CONTENT_TYPE,
            "user-agent": "tokenledger-webhooks",
            "webhook-id": delivery_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secrets, delivery_id, timestamp, body),
        }
        try:
            response = self._http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return _reason(exc)
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"


def _typed(record: RecordedEvent) -> tuple[Event, str | None]:
    event = decode_event(record)
    return event, webhook_type(event)


def _wants(hook: LiveWebhook, position: int, event: Event, kind: str) -> bool:
    """Whether the webhook is sent this event: created before it, asking for its type, and
    of an org the event concerns."""
    return (
        hook.created_position < position
        and kind in hook.webhook.events
        and concerns_org(event, hook.webhook.org)
    )


def _row(
    delivery_id: str,
    webhook_id: str,
    kind: str,
    position: int | None,
    body: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    return {
        "delivery_id": delivery_id,
        "webhook_id": webhook_id,
        "event_type": kind,
        "position": position,
        "body": msgspec.json.encode(body).decode(),
        "created_at": now,
        "attempts": 0,
        "next_attempt_at": now,
        "delivered_at": None,
        "last_error": None,
    }


def _insert_new(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert the rows whose delivery id is not there yet (a repeat is a no-op)."""
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        connection.execute(pg_insert(webhook_deliveries).on_conflict_do_nothing(), rows)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        connection.execute(sqlite_insert(webhook_deliveries).on_conflict_do_nothing(), rows)


def _advance(connection: Connection, position: int) -> None:
    """Move the checkpoint to ``position``, never backwards."""
    table = webhook_checkpoints
    moved = connection.execute(
        sa.update(table)
        .where(table.c.name == CHECKPOINT, table.c.position < position)
        .values(position=position)
    )
    if moved.rowcount == 0:
        exists = connection.execute(
            sa.select(table.c.position).where(table.c.name == CHECKPOINT)
        ).first()
        if exists is None:
            connection.execute(sa.insert(table).values(name=CHECKPOINT, position=position))


def _reason(exc: BaseException) -> str:
    """One line saying what went wrong."""
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
