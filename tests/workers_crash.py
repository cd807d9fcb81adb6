"""Worker processes for tests/test_crash_safety.py (importable by the spawn start method).

``move_until_killed`` runs one big command (moving a service account that holds thousands of
tokens, so the cascade revokes them all) and, at a chosen point inside its transaction, tells
the parent through a pipe that it got there. At the "frozen" points it then waits (still
inside the transaction) until the parent kills it with SIGKILL; at ``free_running`` it keeps
going, so the kill lands wherever the command happens to be.
"""

from __future__ import annotations

from multiprocessing.connection import Connection as PipeEnd
from typing import Any

import msgspec
from sqlalchemy import event

from tokenledger.domain import commands as c
from tokenledger.domain.decide import Context, decide
from tokenledger.domain.events import TokenIssued
from tokenledger.domain.model import Actor
from tokenledger.domain.permissions import Level
from tokenledger.domain.secrets import TokenKind, generate_secret, hash_secret, new_token_id
from tokenledger.projections import SqlLedgerView
from tokenledger.service import Ledger
from tokenledger.store.mapper import to_pending

OPERATOR = Actor.operator("crash-test")
ORG = "acme"
ALPHA = "acme/alpha"
BETA = "acme/beta"
SA = "bulk@acme.service.tokenledger"

#: Where the worker stops and waits to be killed, all inside the command's transaction.
FROZEN_POINTS = (
    "deciding",  # holding the write lock, reading state, nothing written yet
    "appended",  # every event of the command inserted into the log, no projection yet
    "projecting",  # halfway through folding the revocations into the projections
    "before_commit",  # everything written, COMMIT not yet sent
)
#: Signals once the events are inserted and carries on: the kill lands where it lands.
FREE_RUNNING = "free_running"
#: Signals after the command returned (committed): the kill must leave all of it.
AFTER_COMMIT = "after_commit"


def build_world(ledger: Ledger, tokens: int) -> dict[str, str]:
    """acme with projects alpha and beta, the account ``bulk`` (write on alpha) and ``tokens``
    of its tokens; return token id -> secret.

    The first token comes from the real decision (``decide``); the others are copies of it
    with their own id and secret, all recorded in one transaction so that building thousands
    of them stays quick.
    """
    for command in (
        c.CreateOrg(org=ORG),
        c.CreateResource(path=ALPHA),
        c.CreateResource(path=BETA),
        c.CreateServiceAccount(name="bulk", org=ORG, resource=ALPHA, level=Level.WRITE),
    ):
        ledger.execute(command, OPERATOR)
    minted: list[str] = []
    with ledger.store.transaction(actor=OPERATOR.label) as tx:

        def mint(kind: TokenKind) -> tuple[str, str]:
            minted.append(generate_secret(kind))
            return new_token_id(tx.recorded_at), hash_secret(minted[-1])

        context = Context(actor=OPERATOR, now=tx.recorded_at, mint=mint)
        [first] = decide(c.IssueToken(principal=SA), SqlLedgerView(tx.connection), context)
        assert isinstance(first, TokenIssued)
        decided = [first]
        for _ in range(tokens - 1):
            token_id, secret_hash = mint(TokenKind.SERVICE)
            decided.append(
                msgspec.structs.replace(first, token_id=token_id, secret_hash=secret_hash)
            )
        records = tx.append([to_pending(e) for e in decided])
        ledger.projector.apply(tx.connection, list(zip(records, decided, strict=True)))
    return {event.token_id: secret for event, secret in zip(decided, minted, strict=True)}


def move_until_killed(url: str, point: str, target: str, pipe: PipeEnd) -> None:
    """Move the account to ``target`` and signal on ``pipe`` at ``point`` (see above)."""
    ledger = Ledger.open(url)
    engine = ledger.store.engine
    counts = {"update_tokens": 0}

    def arrived(wait: bool) -> None:
        pipe.send(point)
        if wait:
            pipe.recv()  # never answered: the parent kills this process instead

    @event.listens_for(engine, "before_cursor_execute")
    def _before(*args: Any) -> None:
        statement = str(args[2]).lstrip().upper()
        # The decision reading the account's tokens: the write lock is held by then.
        if point == "deciding" and statement.startswith("SELECT") and "FROM TOKENS" in statement:
            arrived(wait=True)

    @event.listens_for(engine, "after_cursor_execute")
    def _after(*args: Any) -> None:
        statement = str(args[2]).lstrip().upper()
        # A cascade's events are inserted with COPY on PostgreSQL.
        if statement.startswith(("INSERT INTO EVENTS", "COPY EVENTS")):
            if point == "appended":
                arrived(wait=True)
            elif point == FREE_RUNNING:
                arrived(wait=False)
        elif statement.startswith("UPDATE TOKENS"):
            # A cascade's updates come as one executemany (args[3] its rows) or, on
            # PostgreSQL, as an update of an array of keys (args[3]["keys"]).
            params = args[3]
            if args[5]:
                counts["update_tokens"] += len(params)
            elif isinstance(params, dict) and "keys" in params:
                counts["update_tokens"] += len(params["keys"])
            else:
                counts["update_tokens"] += 1
            if point == "projecting" and counts["update_tokens"] >= 500:
                arrived(wait=True)

    @event.listens_for(engine, "commit")
    def _commit(*args: Any) -> None:
        if point == "before_commit":
            arrived(wait=True)

    command = c.SetServiceAccountPermission(account_id=SA, resource=target, level=Level.WRITE)
    ledger.execute(command, OPERATOR)
    if point == AFTER_COMMIT:
        arrived(wait=True)
    ledger.close()
