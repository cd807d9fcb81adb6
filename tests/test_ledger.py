"""The ledger service end to end on SQLite and PostgreSQL: cascades, verification, secrecy."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from tokenledger.domain import commands as c
from tokenledger.domain.events import ServiceAccountDeleted, TokenRevoked, UserDisabled
from tokenledger.domain.model import Actor
from tokenledger.domain.permissions import Level
from tokenledger.errors import (
    Conflict,
    LedgerError,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from tokenledger.projections import audit_queries as audit
from tokenledger.projections.projector import BULK_EVENTS
from tokenledger.service import CommandResult, Ledger
from tokenledger.store import open_event_store
from tokenledger.store.mapper import decode_event, to_pending

OPERATOR = Actor.operator("alice")
SA = "ci@acme.service.tokenledger"
START = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    instance = Ledger(open_event_store(database_url, auto_upgrade=True))
    yield instance
    instance.close()


def run(ledger: Ledger, command: c.Command, actor: Actor = OPERATOR) -> CommandResult:
    return ledger.execute(command, actor)


@dataclass
class World:
    sa_tokens: list[CommandResult]
    bob_token: CommandResult


def build_world(ledger: Ledger) -> World:
    for command in (
        c.CreateOrg(org="acme"),
        c.CreateResource(path="acme/alpha"),
        c.CreateResource(path="acme/alpha/raw"),
        c.CreateResource(path="acme/beta"),
        c.CreateUser(email="bob@acme.io", name="Bob"),
        c.AddMember(org="acme", email="bob@acme.io"),
        c.SetGrant(principal="bob@acme.io", resource="acme/alpha", level=Level.WRITE),
        c.CreateServiceAccount(name="ci", org="acme", resource="acme/alpha", level=Level.WRITE),
    ):
        run(ledger, command)
    sa_tokens = [
        run(ledger, c.IssueToken(principal=SA, name="deploy")),
        run(
            ledger,
            c.IssueToken(principal=SA, grants=[{"resource": "acme/alpha/raw", "level": "read"}]),
        ),
    ]
    bob = run(
        ledger,
        c.IssueToken(
            principal="bob@acme.io", grants=[{"resource": "acme/alpha", "level": "write"}]
        ),
    )
    return World(sa_tokens=sa_tokens, bob_token=bob)


def secret(result: CommandResult) -> str:
    assert result.secret is not None
    return result.secret


def assert_cascade(result: CommandResult, expected_tokens: set[str], reason: str) -> None:
    """One TokenRevoked per token, all linked to the causing command and correlation id."""
    revocations = [(r, decode_event(r)) for r in result.records if r.event_type == "TokenRevoked"]
    assert {ev.token_id for _, ev in revocations if isinstance(ev, TokenRevoked)} == (
        expected_tokens
    )
    assert len(revocations) == len(expected_tokens)
    for record, event in revocations:
        assert isinstance(event, TokenRevoked)
        assert event.reason == reason
        assert record.command_id == result.command_id
        assert record.correlation_id == result.correlation_id
    assert {r.command_id for r in result.records} == {result.command_id}


def test_verification_allows_within_grants_and_refuses_beyond(ledger: Ledger) -> None:
    world = build_world(ledger)
    deploy = secret(world.sa_tokens[0])
    answer = ledger.verify(deploy, resource="acme/alpha/raw", level=Level.WRITE)
    assert (answer.active, answer.allowed, answer.reason) == (True, True, None)
    assert answer.sub == SA
    assert answer.scope == "write:acme/alpha"
    assert answer.token_id == world.sa_tokens[0].issued.token_id  # type: ignore[union-attr]
    refused = ledger.verify(deploy, resource="acme/beta", level=Level.READ)
    assert (refused.active, refused.allowed, refused.reason) == (True, False, "not_allowed")
    assert ledger.verify(deploy).allowed


def test_malformed_and_unknown_secrets(ledger: Ledger) -> None:
    world = build_world(ledger)
    good = secret(world.bob_token)
    assert ledger.verify(good[:-1] + ("A" if good[-1] != "A" else "B")).reason == "malformed"
    assert ledger.verify("hello").reason == "malformed"
    from tokenledger.domain.secrets import TokenKind, generate_secret

    assert ledger.verify(generate_secret(TokenKind.PERSONAL)).reason == "unknown"


def test_expired_tokens_do_not_verify(ledger: Ledger) -> None:
    with freeze_time(START):
        world = build_world(ledger)
    with freeze_time(START + timedelta(days=29)):
        assert ledger.verify(secret(world.bob_token)).active
    with freeze_time(START + timedelta(days=30, seconds=1)):
        assert ledger.verify(secret(world.bob_token)).reason == "expired"
        assert ledger.verify(secret(world.sa_tokens[0])).active  # a year for accounts


def test_lowering_a_users_grant_narrows_their_tokens_without_revoking(ledger: Ledger) -> None:
    world = build_world(ledger)
    bob = secret(world.bob_token)
    assert ledger.verify(bob, resource="acme/alpha", level=Level.WRITE).allowed
    result = run(
        ledger, c.SetGrant(principal="bob@acme.io", resource="acme/alpha", level=Level.READ)
    )
    assert result.revoked == []
    narrowed = ledger.verify(bob, resource="acme/alpha", level=Level.WRITE)
    assert (narrowed.active, narrowed.reason) == (True, "not_allowed")
    assert ledger.verify(bob, resource="acme/alpha", level=Level.READ).allowed
    assert narrowed.scope == "read:acme/alpha"


def test_cascade_move_service_account_revokes_all_its_tokens(ledger: Ledger) -> None:
    world = build_world(ledger)
    result = run(
        ledger,
        c.SetServiceAccountPermission(account_id=SA, resource="acme/beta", level=Level.WRITE),
    )
    ids = {t.issued.token_id for t in world.sa_tokens}  # type: ignore[union-attr]
    assert_cascade(result, ids, "service_account_moved")
    for token in world.sa_tokens:
        assert ledger.verify(secret(token)).reason == "revoked"
    assert ledger.verify(secret(world.bob_token)).active
    # New tokens follow the new project.
    fresh = run(ledger, c.IssueToken(principal=SA))
    assert ledger.verify(secret(fresh), resource="acme/beta", level=Level.WRITE).allowed


def test_a_cascade_of_many_tokens_is_projected_and_audited_like_a_small_one(
    ledger: Ledger,
) -> None:
    # From BULK_EVENTS events on, a command's rows are folded and loaded in bulk.
    build_world(ledger)
    count = BULK_EVENTS + 20
    tokens = [run(ledger, c.IssueToken(principal=SA)) for _ in range(count)]
    result = run(
        ledger,
        c.SetServiceAccountPermission(account_id=SA, resource="acme/beta", level=Level.WRITE),
    )
    assert len(result.records) >= BULK_EVENTS
    for token in tokens[:: count // 10]:
        assert ledger.verify(secret(token)).reason == "revoked"
    issued = tokens[0].events[0].token_id  # type: ignore[union-attr]
    trail = audit.search(ledger.store, audit.AuditQuery(subject=issued))
    assert [entry.record.event_type for entry in trail][:2] == ["TokenRevoked", "TokenIssued"]
    assert trail[0].record.correlation_id == result.correlation_id


def test_changing_only_the_level_revokes_nothing(ledger: Ledger) -> None:
    world = build_world(ledger)
    result = run(
        ledger,
        c.SetServiceAccountPermission(account_id=SA, resource="acme/alpha", level=Level.READ),
    )
    assert result.revoked == []
    deploy = secret(world.sa_tokens[0])
    assert not ledger.verify(deploy, resource="acme/alpha", level=Level.WRITE).allowed
    assert ledger.verify(deploy, resource="acme/alpha", level=Level.READ).allowed


def test_cascade_delete_service_account(ledger: Ledger) -> None:
    world = build_world(ledger)
    result = run(ledger, c.DeleteServiceAccount(account_id=SA))
    assert_cascade(
        result,
        {t.issued.token_id for t in world.sa_tokens},  # type: ignore[union-attr]
        "service_account_deleted",
    )
    assert ledger.verify(secret(world.sa_tokens[1])).reason == "revoked"


def test_cascade_disable_user(ledger: Ledger) -> None:
    world = build_world(ledger)
    result = run(ledger, c.DisableUser(email="bob@acme.io", reason="left"))
    assert_cascade(
        result,
        {world.bob_token.issued.token_id},  # type: ignore[union-attr]
        "user_disabled",
    )
    assert ledger.verify(secret(world.bob_token)).reason == "revoked"


def test_cascade_remove_member(ledger: Ledger) -> None:
    world = build_world(ledger)
    result = run(ledger, c.RemoveMember(org="acme", email="bob@acme.io"))
    assert_cascade(
        result,
        {world.bob_token.issued.token_id},  # type: ignore[union-attr]
        "member_removed",
    )
    assert ledger.verify(secret(world.bob_token)).reason == "revoked"
    assert ledger.grants_of(OPERATOR, "bob@acme.io") == []


def test_cascade_revoke_parent_revokes_descendants(ledger: Ledger) -> None:
    world = build_world(ledger)
    parent = world.bob_token.issued.token_id  # type: ignore[union-attr]
    child = run(ledger, c.IssueToken(parent_id=parent))
    grandchild = run(ledger, c.IssueToken(parent_id=child.issued.token_id))  # type: ignore[union-attr]
    result = run(ledger, c.RevokeToken(token_id=parent, reason="leaked"))
    assert result.revoked == [
        parent,
        child.issued.token_id,  # type: ignore[union-attr]
        grandchild.issued.token_id,  # type: ignore[union-attr]
    ]
    for token in (child, grandchild):
        assert ledger.verify(secret(token)).reason == "revoked"


def test_cascade_delete_resource(ledger: Ledger) -> None:
    world = build_world(ledger)
    inside = run(
        ledger,
        c.IssueToken(
            principal="bob@acme.io", grants=[{"resource": "acme/alpha/raw", "level": "read"}]
        ),
    )
    run(ledger, c.DeleteServiceAccount(account_id=SA))
    result = run(ledger, c.DeleteResource(path="acme/alpha", recursive=True))
    assert_cascade(
        result,
        {world.bob_token.issued.token_id, inside.issued.token_id},  # type: ignore[union-attr]
        "resource_deleted",
    )
    assert ledger.verify(secret(inside)).reason == "revoked"
    assert [r.path for r in ledger.list_resources(OPERATOR, "acme")] == ["acme", "acme/beta"]


def test_principal_disabled_without_a_cascade_still_fails_verification(ledger: Ledger) -> None:
    """Defence in depth: a disabled principal's token is refused even if it escaped revocation."""
    world = build_world(ledger)
    event = UserDisabled(email="bob@acme.io")
    with ledger.store.transaction(actor="test") as tx:
        records = tx.append([to_pending(event)])
        ledger.projector.apply(tx.connection, [(records[0], event)])
    assert ledger.verify(secret(world.bob_token)).reason == "principal_disabled"


def test_a_deleted_service_account_fails_verification_without_a_cascade_too(
    ledger: Ledger,
) -> None:
    """The same defence for a service account's token, answered from one statement (the
    token joined with its account's permission): also when no answer is cached."""
    world = build_world(ledger)
    cold = Ledger(ledger.store, verify_staleness=None)
    token = secret(world.sa_tokens[0])
    try:
        assert cold.verify(token, resource="acme/alpha").allowed
        event = ServiceAccountDeleted(account_id=SA)
        with ledger.store.transaction(actor="test") as tx:
            records = tx.append([to_pending(event)])
            ledger.projector.apply(tx.connection, [(records[0], event)])
        for verifier in (cold, ledger):
            answer = verifier.verify(token, resource="acme/alpha")
            assert (answer.active, answer.reason) == (False, "principal_disabled")
    finally:
        cold.close()


def test_rejected_commands_append_nothing(ledger: Ledger) -> None:
    build_world(ledger)
    head = ledger.store.head()
    rejected: list[tuple[c.Command, type[LedgerError]]] = [
        (c.CreateOrg(org="acme"), Conflict),
        (c.CreateResource(path="acme/nothing/here"), NotFound),
        (
            c.IssueToken(
                principal="bob@acme.io", grants=[{"resource": "acme/beta", "level": "read"}]
            ),
            PermissionDenied,
        ),
        (c.RevokeToken(token_id="tok_0000000000000000"), NotFound),
    ]
    for command, error in rejected:
        with pytest.raises(error):
            run(ledger, command)
    assert ledger.store.head() == head


def test_acting_through_a_token(ledger: Ledger) -> None:
    world = build_world(ledger)
    sa_actor = ledger.authenticate(secret(world.sa_tokens[0]))
    assert sa_actor.principal == SA
    with pytest.raises(PermissionDenied):
        run(ledger, c.CreateUser(email="mallory@acme.io"), sa_actor)
    created = run(ledger, c.CreateResource(path="acme/alpha/new"), sa_actor)
    assert created.records[0].actor == SA
    run(
        ledger,
        c.RevokeToken(token_id=world.sa_tokens[0].issued.token_id),  # type: ignore[union-attr]
        OPERATOR,
    )
    with pytest.raises(PermissionDenied, match="revoked"):
        ledger.authenticate(secret(world.sa_tokens[0]))


def test_no_secret_is_stored_or_logged_anywhere(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    world = build_world(ledger)
    secrets = [secret(t) for t in (*world.sa_tokens, world.bob_token)]
    bodies = [s.split("_", 1)[1] for s in secrets]
    dump: list[str] = []
    inspector = sa.inspect(ledger.store.engine)
    with ledger.store.engine.connect() as conn:
        for table in inspector.get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                dump.extend(
                    v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in row
                )
    text = "\n".join(dump) + caplog.text
    assert "TokenIssued" in text  # the scan did read the log
    assert "IssueToken by operator:alice" in caplog.text  # and the log lines
    for value in (*secrets, *bodies):
        assert value not in text


def test_a_secret_given_where_an_id_belongs_is_never_repeated(ledger: Ledger) -> None:
    world = build_world(ledger)
    leaked = secret(world.bob_token)
    attempts = [
        lambda: ledger.get_token(OPERATOR, leaked),
        lambda: ledger.tokens_of(OPERATOR, leaked),
        lambda: ledger.grants_of(OPERATOR, leaked),
        lambda: run(ledger, c.build(c.RevokeToken, token_id=leaked)),
        lambda: run(ledger, c.build(c.CreateUser, email=leaked)),
        lambda: run(ledger, c.build(c.IssueToken, parent_id=leaked)),
    ]
    for attempt in attempts:
        with pytest.raises(LedgerError) as caught:
            attempt()
        assert leaked[4:] not in str(caught.value)
        assert "looks like a token secret" in str(caught.value)


def test_queries_check_and_normalise_their_arguments(ledger: Ledger) -> None:
    build_world(ledger)
    assert [g.resource for g in ledger.grants_of(OPERATOR, "Bob@ACME.io")] == ["acme/alpha"]
    with pytest.raises(ValidationError, match="invalid resource path"):
        ledger.list_resources(OPERATOR, "acme/../etc")
    with pytest.raises(ValidationError, match="invalid org name"):
        ledger.members(OPERATOR, "Acme Corp")
