"""Running a command: one transaction that takes the write lock, decides, appends the events
and folds them into the inline projections, then commits."""

from __future__ import annotations

import logging
import uuid
from contextlib import nullcontext
from typing import TYPE_CHECKING

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
from tokenledger.projections import Projector, SqlLedgerView
from tokenledger.projections.gc_pause import gc_paused
from tokenledger.store import EventStore, RecordedEvent
from tokenledger.store.backend import WriteStrategy
from tokenledger.store.mapper import to_pending

if TYPE_CHECKING:
    from tokenledger.domain import commands as c

__all__ = ["CommandResult", "new_account_id", "run_command"]

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
