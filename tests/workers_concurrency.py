"""Worker processes for tests/test_concurrency.py (importable by the spawn start method).

Each worker opens its own ``Ledger`` on the database URL it is given, does its part, and
reports what it saw on a queue: the parent process checks the log against those reports.
Failures are reported, never raised past the worker, so the parent shows what went wrong.
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Callable
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Barrier, Event
from typing import Any

from tokenledger.domain import commands as c
from tokenledger.domain.model import Actor
from tokenledger.domain.permissions import Level
from tokenledger.errors import Conflict, NotFound
from tokenledger.service import Ledger

OPERATOR = Actor.operator("concurrency-test")
ORG = "acme"
ALPHA = "acme/alpha"
BETA = "acme/beta"
SA = "ci@acme.service.tokenledger"
BOB = "bob@acme.io"

#: How long a worker polls for a condition another process brings about.
POLL_DEADLINE_SECONDS = 120.0


def build_world(ledger: Ledger) -> None:
    """acme with projects alpha and beta, bob (member, write on alpha), the account ci (write
    on alpha)."""
    for command in (
        c.CreateOrg(org=ORG),
        c.CreateResource(path=ALPHA),
        c.CreateResource(path=f"{ALPHA}/raw"),
        c.CreateResource(path=BETA),
        c.CreateUser(email=BOB),
        c.AddMember(org=ORG, email=BOB),
        c.SetGrant(principal=BOB, resource=ALPHA, level=Level.WRITE),
        c.CreateServiceAccount(name="ci", org=ORG, resource=ALPHA, level=Level.WRITE),
    ):
        ledger.execute(command, OPERATOR)


def _reporting(out: Queue[Any], role: str, body: Callable[[], Any]) -> None:
    try:
        out.put((role, "ok", body()))
    except BaseException:
        out.put((role, "error", traceback.format_exc()))


def _poll_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + POLL_DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(0.001)


# -- (a) an issuer against a mover --------------------------------------------------------------


def issue_loop(
    url: str, done: Event, tail: int, progress: Synchronized[int], out: Queue[Any]
) -> None:
    """Issue tokens for the service account (its default grant: its permission, wherever it
    lies at that moment) until ``done`` is set, then ``tail`` more; report (token id, secret,
    position, grants) of each."""

    def body() -> list[tuple[str, str, int, list[tuple[str, str]]]]:
        ledger = Ledger.open(url)
        issued = []
        after_done = 0
        try:
            while after_done < tail:
                if done.is_set():
                    after_done += 1
                result = ledger.execute(
                    c.IssueToken(principal=SA, name=f"loop-{len(issued)}"), OPERATOR
                )
                event = result.issued
                assert event is not None
                assert result.secret is not None
                grants = [(g.resource, g.level) for g in event.grants]
                issued.append((event.token_id, result.secret, result.records[0].position, grants))
                with progress.get_lock():
                    progress.value += 1
        finally:
            ledger.close()
        return issued

    _reporting(out, "issuer", body)


def move_loop(
    url: str, moves: int, gap: int, done: Event, progress: Synchronized[int], out: Queue[Any]
) -> None:
    """Move the account's permission alpha -> beta -> alpha ... ``moves`` times, each once the
    issuer has committed ``gap`` more tokens since the previous move committed (so that every
    move has tokens issued before it and after it); then set ``done``. Report each move's
    (position, correlation id, project, revoked token ids)."""

    def body() -> list[tuple[int, str, str, list[str]]]:
        ledger = Ledger.open(url)
        report = []
        try:
            for i in range(moves):
                target = progress.value + gap
                _poll_until(lambda t=target: progress.value >= t, f"{target} issued tokens")
                project = BETA if i % 2 == 0 else ALPHA
                result = ledger.execute(
                    c.SetServiceAccountPermission(
                        account_id=SA, resource=project, level=Level.WRITE
                    ),
                    OPERATOR,
                )
                report.append(
                    (result.records[0].position, result.correlation_id, project, result.revoked)
                )
        finally:
            done.set()
            ledger.close()
        return report

    _reporting(out, "mover", body)


# -- (b) many revokers of the same tokens -----------------------------------------------------


def revoke_each(url: str, token_ids: list[str], seed: int, start: Barrier, out: Queue[Any]) -> None:
    """Revoke every token of ``token_ids`` in a shuffled order, all workers starting together;
    report what each attempt gave: the revoked ids, a Conflict's message, or any other error."""

    def body() -> dict[str, list[Any]]:
        ledger = Ledger.open(url)
        order = list(token_ids)
        random.Random(seed).shuffle(order)
        outcome: dict[str, list[Any]] = {"revoked": [], "conflicts": [], "errors": []}
        try:
            start.wait(timeout=POLL_DEADLINE_SECONDS)
            for token_id in order:
                try:
                    result = ledger.execute(c.RevokeToken(token_id=token_id), OPERATOR)
                except Conflict as exc:
                    outcome["conflicts"].append((token_id, type(exc).__name__, str(exc)))
                except Exception as exc:
                    outcome["errors"].append((token_id, f"{type(exc).__name__}: {exc}"))
                else:
                    outcome["revoked"].append((token_id, result.revoked))
        finally:
            ledger.close()
        return outcome

    _reporting(out, f"revoker-{seed}", body)


# -- (c) mixed load -------------------------------------------------------------------------------


def mixed_writer(
    url: str,
    worker: int,
    seconds: float,
    shared_token_ids: list[str],
    start: Barrier,
    out: Queue[Any],
) -> None:
    """Until ``seconds`` have passed: issue, derive and revoke tokens, create resources, change
    bob's grant and (worker 0) move the service account. Refusals a concurrent change can
    cause (Conflict, NotFound) are counted; anything else is an error."""

    def body() -> dict[str, Any]:
        ledger = Ledger.open(url)
        rng = random.Random(1000 + worker)
        mine: list[str] = []
        counts = {"ok": 0, "refused": 0}
        errors: list[str] = []
        try:
            start.wait(timeout=POLL_DEADLINE_SECONDS)
            deadline = time.monotonic() + seconds
            step = 0
            while time.monotonic() < deadline:
                step += 1
                command = _random_command(rng, worker, step, mine, shared_token_ids)
                try:
                    result = ledger.execute(command, OPERATOR)
                except (Conflict, NotFound):
                    counts["refused"] += 1
                    continue
                except Exception as exc:
                    errors.append(f"{type(command).__name__}: {type(exc).__name__}: {exc}")
                    continue
                counts["ok"] += 1
                if result.issued is not None:
                    mine.append(result.issued.token_id)
        finally:
            ledger.close()
        return {"counts": counts, "errors": errors, "issued": len(mine)}

    _reporting(out, f"writer-{worker}", body)


def _random_command(
    rng: random.Random, worker: int, step: int, mine: list[str], shared: list[str]
) -> c.Command:
    if worker == 0 and step % 7 == 0:
        project = rng.choice([ALPHA, BETA])
        return c.SetServiceAccountPermission(account_id=SA, resource=project, level=Level.WRITE)
    choice = rng.randrange(6)
    if choice == 0:
        return c.IssueToken(principal=SA, name=f"w{worker}-{step}")
    if choice == 1:
        return c.build(
            c.IssueToken, principal=BOB, grants=[{"resource": f"{ALPHA}/raw", "level": "read"}]
        )
    if choice == 2 and mine:
        return c.build(c.IssueToken, parent_id=rng.choice(mine))
    if choice == 3:
        pool = mine if mine and rng.random() < 0.5 else shared
        return c.RevokeToken(token_id=rng.choice(pool))
    if choice == 4:
        return c.CreateResource(path=f"{ALPHA}/w{worker}-{step}")
    return c.SetGrant(principal=BOB, resource=ALPHA, level=rng.choice([Level.READ, Level.WRITE]))


def mixed_verifier(
    url: str,
    worker: int,
    seconds: float,
    secrets: dict[str, str],
    start: Barrier,
    out: Queue[Any],
) -> None:
    """Until ``seconds`` have passed: verify random secrets of ``secrets`` (token id -> secret).
    Report how many answers came back, any error, and any token that answered active after
    this verifier had seen it revoked (a revocation must never be undone)."""

    def body() -> dict[str, Any]:
        ledger = Ledger.open(url)
        rng = random.Random(2000 + worker)
        ids = sorted(secrets)
        seen_revoked: set[str] = set()
        resurrected: list[str] = []
        errors: list[str] = []
        answers = 0
        try:
            start.wait(timeout=POLL_DEADLINE_SECONDS)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                token_id = rng.choice(ids)
                try:
                    answer = ledger.verify(secrets[token_id], resource=ALPHA, level=Level.READ)
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                answers += 1
                if answer.reason == "revoked":
                    seen_revoked.add(token_id)
                elif answer.active and token_id in seen_revoked:
                    resurrected.append(token_id)
                if answer.active and answer.token_id != token_id:
                    errors.append(f"{token_id} verified as {answer.token_id}")
        finally:
            ledger.close()
        return {"answers": answers, "errors": errors, "resurrected": resurrected}

    _reporting(out, f"verifier-{worker}", body)
