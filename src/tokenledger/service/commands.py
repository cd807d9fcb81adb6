"""Running a command: one transaction that takes the write lock, decides, appends the events
and folds them into the inline projections, then commits.

Previewing one (a dry run): the same decision on a read snapshot, without the write lock,
giving the events the run would append and appending nothing."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, NoReturn, cast

import msgspec

from tokenledger.domain.events import Event, TokenIssued
from tokenledger.domain.model import Actor
from tokenledger.domain.outcome import Outcome, outcome_of
from tokenledger.domain.secrets import (
    TokenKind,
    generate_secret,
    hash_secret,
    new_token_id,
    role_key_text,
)
from tokenledger.errors import ValidationError
from tokenledger.projections import Projector, SqlLedgerView
from tokenledger.projections.gc_pause import gc_paused
from tokenledger.store import EventStore, RecordedEvent, WriteTransaction
from tokenledger.store.backend import Backend, WriteStrategy
from tokenledger.store.mapper import to_pending
from tokenledger.store.record_json import record_dict
from tokenledger.store.records import uuid7

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from tokenledger.domain import commands as c

__all__ = [
    "CommandPreview",
    "CommandResult",
    "PreviewReady",
    "Previewing",
    "new_account_id",
    "preview_command",
    "preview_first",
    "previews_only",
    "refuse_in_dry_run",
    "run_command",
]

logger = logging.getLogger("tokenledger")


class CommandResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a command appended (``events``, ``records``), what that amounts to (``outcome``),
    and the one-time secret when it issued a token or credential."""

    command_id: str
    correlation_id: str
    events: tuple[Event, ...]
    records: tuple[RecordedEvent, ...]
    outcome: Outcome
    secret: str | None = None

    @property
    def revoked(self) -> list[str]:
        """Token ids this command revoked (its cascade included), in log order."""
        return list(self.outcome.revoked)

    @property
    def issued(self) -> TokenIssued | None:
        return self.outcome.issued


def new_account_id() -> str:
    """A new Dyff account id: a random UUID's 32 hexadecimal digits, as Dyff makes them."""
    return uuid.uuid4().hex


def run_command(
    store: EventStore,
    projector: Projector,
    command: c.Command,
    actor: Actor,
    *,
    correlation_id: str | None = None,
) -> CommandResult:
    """Decide and record ``command`` atomically; raise a ``LedgerError`` and append nothing
    when it is refused."""
    # The decisions (and pydantic, through the commands) load with the first command, not
    # with a process that only verifies or lists.
    from tokenledger.domain.decide import Context, decide

    secrets: list[str] = []
    minted: set[str] = set()
    # Under the write lock, one command at a time: the collector is paused for the
    # decision and its writes (thousands of objects in a cascade), never for long.
    with (
        store.transaction(
            actor=actor.label, correlation_id=correlation_id, via=actor.token_id
        ) as tx,
        gc_paused(),
    ):

        def mint(kind: TokenKind) -> tuple[str, str]:
            secret = generate_secret(kind)
            token_id = new_token_id(tx.recorded_at)
            if kind is TokenKind.ROLE:
                # A role key is presented (and so hashed) with its access id.
                secret = role_key_text(token_id, secret)
            secrets.append(secret)
            minted.add(token_id)
            return token_id, hash_secret(secret)

        # The decision reads before anything is written, under the write lock: what it
        # looked up once (an account, a user) stays as it was for the rest of it.
        view = SqlLedgerView(tx.connection, remember=True)
        context = Context(actor=actor, now=tx.recorded_at, mint=mint, new_account_id=new_account_id)
        events = decide(command, view, context)
        for event in events:
            if isinstance(event, TokenIssued) and event.token_id in minted:
                tx.new_stream(event.stream_id)  # no need to read its version: none yet
        # One decision for the events and their rows: a command's few are sent in one
        # pipeline where the backend has them (one round trip); a cascade's thousands are
        # loaded in bulk (COPY), which a pipeline cannot carry.
        strategy = tx.write_strategy(len(events))
        pipelined = strategy is WriteStrategy.PIPELINED
        with tx.backend.pipeline(tx.connection) if pipelined else nullcontext():
            records = tx.append([to_pending(event) for event in events], strategy=strategy)
            pairs = list(zip(records, events, strict=True))
            projector.apply(tx.connection, pairs, strategy=strategy)
        result = CommandResult(
            command_id=tx.command_id,
            correlation_id=tx.correlation_id,
            events=tuple(events),
            records=tuple(records),
            outcome=outcome_of(events),
            secret=secrets[0] if secrets else None,
        )
    # Names and ids only: a command's fields may be personal data, never a secret.
    logger.info(
        "%s by %s appended %d event(s) up to position %s (correlation %s)",
        type(command).__name__,
        actor.label,
        len(records),
        records[-1].position if records else "-",
        result.correlation_id,
    )
    return result


# -- dry runs ----------------------------------------------------------------------------------


class CommandPreview(msgspec.Struct, frozen=True, kw_only=True):
    """What a command would append if it ran now: its ``events``, their ``records`` as the
    log would hold them (positions after ``log_position``, the head the decision read) and
    what they amount to (``outcome``). Ids minted for it are fresh ones a real run does not
    reuse; no secret is kept."""

    events: tuple[Event, ...]
    records: tuple[RecordedEvent, ...]
    outcome: Outcome
    log_position: int

    def event_dicts(self) -> list[dict[str, Any]]:
        """The records as JSON-ready dicts, each field as the log holds it (``data`` the
        event itself), times written as the hash chain writes them."""
        return [record_dict(record) for record in self.records]


class _WritesNothing:
    """A backend that reads as ``backend`` does and writes nothing: a preview builds its
    records with the very code that appends them (positions, stream versions, the hash
    chain), and no row reaches the database."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def insert_events(self, connection: Connection, records: Any, *, bulk: bool) -> None:
        pass

    def announce_head(self, connection: Connection, position: int) -> None:
        pass


#: The isolation a preview reads at, per backend: one snapshot across its statements.
#: SQLite's deferred BEGIN already reads one (from its first read to its end).
_ONE_SNAPSHOT: dict[str, dict[str, Any]] = {
    "postgresql": {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True},
}


def preview_command(
    store: EventStore,
    command: c.Command,
    actor: Actor,
    *,
    correlation_id: str | None = None,
) -> CommandPreview:
    """What ``run_command`` would append now: the same decision on the same state, read in
    one snapshot and without the write lock, so that a preview never waits for a writer nor
    holds one up. Raise the ``LedgerError`` the run would raise when it is refused. Nothing
    is appended: the transaction is rolled back."""
    from tokenledger.domain.decide import Context, decide

    minted: set[str] = set()
    options = _ONE_SNAPSHOT.get(store.backend.name, {})
    with store.engine.connect().execution_options(**options) as connection:
        transaction = connection.begin()
        try:
            command_id = uuid7()
            # The run's own bookkeeping (the head, the time never going back, positions,
            # stream versions, hashes) over a backend that inserts nothing.
            tx = WriteTransaction(
                connection,
                backend=cast("Backend", _WritesNothing(store.backend)),
                clock=store.clock,
                actor=actor.label,
                command_id=command_id,
                correlation_id=correlation_id or command_id,
                via=actor.token_id,
            )
            head = tx.head.position

            def mint(kind: TokenKind) -> tuple[str, str]:
                # A fresh id, and a secret made only to be hashed as a run's would be, then
                # dropped: a preview's events are shown, never its secrets.
                secret = generate_secret(kind)
                token_id = new_token_id(tx.recorded_at)
                if kind is TokenKind.ROLE:
                    secret = role_key_text(token_id, secret)
                minted.add(token_id)
                return token_id, hash_secret(secret)

            view = SqlLedgerView(connection, remember=True)
            context = Context(
                actor=actor, now=tx.recorded_at, mint=mint, new_account_id=new_account_id
            )
            events = decide(command, view, context)
            for event in events:
                if isinstance(event, TokenIssued) and event.token_id in minted:
                    tx.new_stream(event.stream_id)
            records = tx.append([to_pending(event) for event in events])
        finally:
            transaction.rollback()
    logger.info(
        "%s by %s previewed: %d event(s) after position %s, nothing appended",
        type(command).__name__,
        actor.label,
        len(records),
        head,
    )
    return CommandPreview(
        events=tuple(events),
        records=tuple(records),
        outcome=outcome_of(events),
        log_position=head,
    )


class PreviewReady(Exception):
    """A dry run's answer, raised in place of a command's result: whatever the caller would
    have done with the result (and outside the ledger) is skipped, and whoever asked for the
    dry run shows ``preview``."""

    def __init__(self, preview: CommandPreview) -> None:
        super().__init__(f"dry run: {len(preview.events)} event(s) would be appended")
        self.preview = preview


class Previewing:
    """An ``execute`` callable for a dry run, given to the service functions that take one:
    it previews the command and raises ``PreviewReady``; it never returns."""

    def __init__(
        self,
        preview: Callable[..., CommandPreview],
        *,
        correlation_id: str | None = None,
        log_position: Callable[[], int],
    ) -> None:
        self._preview = preview
        self._correlation_id = correlation_id
        self._log_position = log_position

    def __call__(
        self, command: c.Command, actor: Actor, *, correlation_id: str | None = None
    ) -> NoReturn:
        raise PreviewReady(
            self._preview(command, actor, correlation_id=correlation_id or self._correlation_id)
        )

    def nothing_appended(self) -> NoReturn:
        """Answer that the command would append nothing (it would succeed without an event)."""
        raise PreviewReady(
            CommandPreview(
                events=(), records=(), outcome=outcome_of(()), log_position=self._log_position()
            )
        )


def preview_first(execute: Callable[..., object], command: c.Command, actor: Actor) -> None:
    """In a dry run (``execute`` is ``Previewing``), answer now: before the caller does
    anything outside the ledger that the run does before recording (deriving a secret,
    writing a key file). Otherwise nothing."""
    if isinstance(execute, Previewing):
        execute(command, actor)


_previews_only: ContextVar[bool] = ContextVar("tokenledger_previews_only", default=False)


@contextmanager
def previews_only() -> Iterator[None]:
    """Around a dry run's work (an HTTP request with ``dry_run=true``): a command run for real
    in it (``refuse_in_dry_run``, at ``Ledger.execute``) is refused, so that a call that does
    not honour the dry run changes nothing rather than make the change."""
    token = _previews_only.set(True)
    try:
        yield
    finally:
        _previews_only.reset(token)


def refuse_in_dry_run() -> None:
    """Raise ``ValidationError`` inside ``previews_only``: the caller asked for a dry run,
    and this call offers none."""
    if _previews_only.get():
        raise ValidationError("this call has no dry run: nothing was changed")
