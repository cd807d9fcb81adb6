"""``Ledger.verify``'s answer cache: never stale after this process's own writes, and across
processes stale for at most ``verify_staleness`` seconds (on SQLite and PostgreSQL)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time

from tokenledger.domain import commands as c
from tokenledger.domain.model import Actor
from tokenledger.domain.permissions import Level
from tokenledger.domain.secrets import TokenKind, generate_secret
from tokenledger.errors import ValidationError
from tokenledger.service import DEFAULT_VERIFY_STALENESS, Ledger
from tokenledger.store import open_event_store

OPERATOR = Actor.operator("alice")
SA = "ci@acme.service.tokenledger"
# Later than any real clock the fixture writes under: recorded times never go backwards.
START = datetime(2031, 5, 1, 9, 0, tzinfo=UTC)


def open_ledger(url: str, staleness: float | None = DEFAULT_VERIFY_STALENESS) -> Ledger:
    return Ledger(open_event_store(url, auto_upgrade=True), verify_staleness=staleness)


@pytest.fixture
def writer(database_url: str) -> Iterator[Ledger]:
    """The process that writes (and has its own cache)."""
    ledger = open_ledger(database_url)
    for command in (
        c.CreateOrg(org="acme"),
        c.CreateResource(path="acme/alpha"),
        c.CreateServiceAccount(name="ci", org="acme", resource="acme/alpha", level=Level.WRITE),
    ):
        ledger.execute(command, OPERATOR)
    yield ledger
    ledger.close()


def issue(ledger: Ledger, **fields: object) -> tuple[str, str]:
    result = ledger.execute(c.IssueToken(principal=SA, **fields), OPERATOR)  # type: ignore[arg-type]
    issued = result.issued
    assert result.secret is not None
    assert issued is not None
    return result.secret, issued.token_id


def revoke(ledger: Ledger, token_id: str) -> None:
    ledger.execute(c.RevokeToken(token_id=token_id), OPERATOR)


def active(ledger: Ledger, secret: str) -> bool:
    return ledger.verify(secret, resource="acme/alpha", level=Level.READ).active


def test_a_revocation_through_this_ledger_is_seen_at_once(writer: Ledger) -> None:
    with freeze_time(START):
        secret, token_id = issue(writer)
        assert active(writer, secret)
        assert active(writer, secret)  # now from the cache
        revoke(writer, token_id)  # no time passes at all
        answer = writer.verify(secret, resource="acme/alpha", level=Level.READ)
        assert (answer.active, answer.reason) == (False, "revoked")


def test_another_process_revocation_is_seen_within_the_staleness_bound(
    writer: Ledger, database_url: str
) -> None:
    reader = open_ledger(database_url, staleness=1.0)
    try:
        with freeze_time(START) as frozen:
            secret, token_id = issue(writer)
            assert active(reader, secret)
            revoke(writer, token_id)
            frozen.tick(timedelta(seconds=0.5))
            assert active(reader, secret), "within the bound the cached answer may stand"
            frozen.tick(timedelta(seconds=0.6))
            assert not active(reader, secret), "past the bound the revocation must show"
    finally:
        reader.close()


@pytest.mark.parametrize("staleness", [0.0, None], ids=["staleness-0", "no-cache"])
def test_staleness_zero_and_no_cache_are_never_stale(
    writer: Ledger, database_url: str, staleness: float | None
) -> None:
    reader = open_ledger(database_url, staleness=staleness)
    try:
        with freeze_time(START):
            secret, token_id = issue(writer)
            assert active(reader, secret)
            revoke(writer, token_id)
            assert not active(reader, secret)
    finally:
        reader.close()


def test_a_cached_answer_is_not_served_past_the_token_expiry(
    writer: Ledger, database_url: str
) -> None:
    reader = open_ledger(database_url, staleness=60.0)
    try:
        with freeze_time(START) as frozen:
            secret, _ = issue(writer, expires_at=START + timedelta(seconds=30))
            assert active(reader, secret)
            frozen.tick(timedelta(seconds=31))  # well within the staleness bound
            answer = reader.verify(secret, resource="acme/alpha", level=Level.READ)
            assert (answer.active, answer.reason) == (False, "expired")
    finally:
        reader.close()


def test_answers_differ_by_resource_and_level(writer: Ledger) -> None:
    secret, _ = issue(writer, grants=[{"resource": "acme/alpha", "level": "read"}])
    assert writer.verify(secret, resource="acme/alpha", level=Level.READ).allowed
    assert not writer.verify(secret, resource="acme/alpha", level=Level.WRITE).allowed
    assert writer.verify(secret, resource="acme/alpha", level=Level.READ).allowed


def test_invalid_input_is_refused_every_time_and_never_cached(writer: Ledger) -> None:
    secret, _ = issue(writer)
    for _ in range(2):
        with pytest.raises(ValidationError):
            writer.verify(secret, resource="not a path!")
        assert writer.verify("tls_not-a-secret").reason == "malformed"
        typo = secret[:-1] + ("y" if secret.endswith("x") else "x")  # a bad checksum
        assert writer.verify(typo).reason == "malformed"


def test_unknown_and_malformed_answers_are_never_cached(writer: Ledger) -> None:
    """Guessing must not fill the cache: only answers about real tokens are kept."""
    writer.use_answer_cache(60.0)
    secret, _ = issue(writer)
    guessed = generate_secret(TokenKind.SERVICE)  # well formed, but no such token
    typo = secret[:-1] + ("y" if secret.endswith("x") else "x")
    jwt_shaped = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln"
    for _ in range(2):
        assert writer.verify(guessed).reason == "unknown"
        assert writer.verify(typo).reason == "malformed"
        assert writer.introspect(guessed, None, issuer="t").reason == "unknown"
        assert writer.introspect(typo, None, issuer="t").reason == "malformed"
        assert not writer.introspect(jwt_shaped, None, issuer="t").active
    assert writer.cached_answers == 0
    assert writer.verify(secret).active
    assert writer.cached_answers == 1  # a real token's answer is kept


def test_a_negative_staleness_is_refused(database_url: str) -> None:
    store = open_event_store(database_url, auto_upgrade=True)
    try:
        with pytest.raises(ValidationError, match="between 0 and 60 seconds"):
            Ledger(store, verify_staleness=-1)
    finally:
        store.engine.dispose()


def test_a_revocation_by_another_os_process_is_seen_past_the_bound(
    writer: Ledger, database_url: str, tmp_path: Path
) -> None:
    """The CLI in a child process revokes; this process's frozen clock shows the bound."""
    bound = 1.0
    writer.use_answer_cache(bound)
    with freeze_time(START) as frozen:
        secret, token_id = issue(writer)
        assert active(writer, secret)
        cli = Path(sys.executable).with_name("tokenledger")
        # No pipes: reading them would poll with timeouts on the frozen clock.
        subprocess.run(
            [str(cli), "--db", database_url, "tokens", "revoke", token_id],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={"PATH": str(cli.parent), "HOME": str(tmp_path)},
        )
        assert active(writer, secret), "the child's write did not go through this cache"
        frozen.tick(timedelta(seconds=bound + 0.1))
        assert not active(writer, secret)
