"""Audit queries, explanations, exports and time travel, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from click.testing import CliRunner, Result
from freezegun import freeze_time

from tokenledger.cli import cli
from tokenledger.domain import commands as c
from tokenledger.domain.model import Actor
from tokenledger.domain.permissions import Level
from tokenledger.errors import NotFound, ValidationError
from tokenledger.projections.audit_queries import AuditQuery, explain, search
from tokenledger.service import CommandResult, Ledger
from tokenledger.store import EventStore, open_event_store
from tokenledger.store.engine import WRITE_OPTION
from tokenledger.store.migrate import migrations_dir

OPERATOR = Actor.operator("alice")
SA = "ingest@acme.service.tokenledger"
T0 = datetime(2026, 4, 1, 10, 0, tzinfo=UTC)


@dataclass
class Story:
    url: str
    ledger: Ledger
    first: CommandResult
    second: CommandResult
    moved: CommandResult


@pytest.fixture
def story(database_url: str) -> Iterator[Story]:
    """Day 0: an org, a project pair, a service account with two tokens. Day 2: it moves."""
    ledger = Ledger(open_event_store(database_url, auto_upgrade=True))
    with freeze_time(T0):
        for command in (
            c.CreateOrg(org="acme"),
            c.CreateResource(path="acme/alpha"),
            c.CreateResource(path="acme/beta"),
            c.CreateServiceAccount(
                name="ingest", org="acme", resource="acme/alpha", level=Level.WRITE
            ),
        ):
            ledger.execute(command, OPERATOR)
        first = ledger.execute(c.IssueToken(principal=SA, name="first"), OPERATOR)
        second = ledger.execute(c.IssueToken(principal=SA, name="second"), OPERATOR)
    with freeze_time(T0 + timedelta(days=1)):
        ledger.execute(
            c.SetServiceAccountPermission(account_id=SA, resource="acme/alpha", level=Level.READ),
            Actor.operator("bob"),
        )
    with freeze_time(T0 + timedelta(days=2)):
        moved = ledger.execute(
            c.SetServiceAccountPermission(account_id=SA, resource="acme/beta", level=Level.WRITE),
            Actor.operator("bob"),
        )
    yield Story(database_url, ledger, first, second, moved)
    ledger.close()


def token_id(result: CommandResult) -> str:
    assert result.issued is not None
    return result.issued.token_id


def run(url: str, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--db", url, *args], input=stdin)


def positions(entries: list[object]) -> list[int]:
    return [e.record.position for e in entries]  # type: ignore[attr-defined]


def test_search_by_subject_actor_type_and_correlation(story: Story) -> None:
    store = story.ledger.store
    about_sa = search(store, AuditQuery(subject=SA))
    assert [e.record.event_type for e in about_sa][:3] == [
        "TokenRevoked",
        "TokenRevoked",
        "ServiceAccountPermissionMoved",
    ]
    assert positions(about_sa) == sorted(positions(about_sa), reverse=True)  # newest first
    by_bob = search(store, AuditQuery(actor="operator:bob", oldest_first=True))
    assert [e.record.event_type for e in by_bob] == [
        "ServiceAccountPermissionLevelChanged",
        "ServiceAccountPermissionMoved",
        "TokenRevoked",
        "TokenRevoked",
    ]
    revoked = search(store, AuditQuery(event_type="TokenRevoked"))
    assert {e.event.token_id for e in revoked} == {  # type: ignore[attr-defined]
        token_id(story.first),
        token_id(story.second),
    }
    cascade = search(store, AuditQuery(correlation_id=story.moved.correlation_id))
    assert len(cascade) == 3
    assert (
        search(store, AuditQuery(subject="acme/beta", event_type="ResourceCreated"))[
            0
        ].record.stream_id
        == "resource:acme/beta"
    )
    assert len(search(store, AuditQuery(subject="acme", limit=2))) == 2


def test_search_by_time_window(story: Story) -> None:
    store = story.ledger.store
    day1 = search(
        store, AuditQuery(since=T0 + timedelta(hours=12), until=T0 + timedelta(days=1, hours=12))
    )
    assert [e.record.event_type for e in day1] == ["ServiceAccountPermissionLevelChanged"]


def test_a_time_window_with_a_subject_actor_or_type(story: Story) -> None:
    """The audit index keeps no time: the window becomes one of positions, whose bounds
    fall between transactions (the since inclusive, the until exclusive) or past the log."""
    store = story.ledger.store
    day1, day2 = T0 + timedelta(days=1), T0 + timedelta(days=2)

    def types(**filters: object) -> list[str]:
        return [e.record.event_type for e in search(store, AuditQuery(**filters))]  # type: ignore[arg-type]

    assert types(subject=SA, since=day1, until=day2) == ["ServiceAccountPermissionLevelChanged"]
    assert types(actor="operator:bob", until=day2) == ["ServiceAccountPermissionLevelChanged"]
    assert types(event_type="TokenRevoked", since=day2) == ["TokenRevoked", "TokenRevoked"]
    assert types(event_type="TokenRevoked", since=day2 + timedelta(microseconds=1)) == []
    assert types(subject=SA, since=T0 + timedelta(days=30)) == []
    assert len(types(subject=SA, until=T0 + timedelta(days=30))) == len(types(subject=SA))
    assert types(subject=SA, since=T0 - timedelta(days=1), until=T0) == []
    # Day 0's six commands share one timestamp: a bound there takes all of them or none.
    assert types(subject=SA, since=T0, until=T0 + timedelta(microseconds=1), oldest_first=True) == [
        "ServiceAccountCreated",
        "TokenIssued",
        "TokenIssued",
    ]
    assert types(subject=SA, since=T0 + timedelta(microseconds=1), until=day1) == []
    # Naive bounds are UTC; other offsets are converted.
    plus_two = timezone(timedelta(hours=2))
    assert types(subject=SA, since=day1.replace(tzinfo=None), until=day2) == [
        "ServiceAccountPermissionLevelChanged"
    ]
    assert types(subject=SA, since=day1.astimezone(plus_two), until=day2.astimezone(plus_two)) == [
        "ServiceAccountPermissionLevelChanged"
    ]


def test_a_time_window_on_an_empty_log(store: EventStore) -> None:
    assert search(store, AuditQuery(subject=SA, since=T0)) == []
    assert search(store, AuditQuery(actor="operator:bob", until=T0)) == []


def test_the_audit_index_times_migrate_down_and_up(story: Story) -> None:
    """Revision 0006 drops the audit index's copy of the time, and 0007 its index by position;
    going back restores both (the times from the log), and coming forward again leaves the
    queries as they were."""
    store = story.ledger.store
    before = positions(search(store, AuditQuery(subject=SA, since=T0 + timedelta(days=1))))
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    with store.engine.connect().execution_options(**{WRITE_OPTION: True}) as connection:
        with connection.begin():
            config.attributes["connection"] = connection
            command.downgrade(config, "0005")
        times = connection.execute(
            sa.text(
                "SELECT count(*) FROM audit_index JOIN events USING (position)"
                " WHERE audit_index.recorded_at = events.recorded_at"
            )
        ).scalar()
        rows = connection.execute(sa.text("SELECT count(*) FROM audit_index")).scalar()
        old_indexes = {index["name"] for index in sa.inspect(connection).get_indexes("audit_index")}
        connection.rollback()
        assert "ix_audit_index_position" in old_indexes
        assert times == rows
        assert rows
        with connection.begin():
            command.upgrade(config, "head")
    inspector = sa.inspect(store.engine)
    columns = {column["name"] for column in inspector.get_columns("audit_index")}
    indexes = {index["name"] for index in inspector.get_indexes("audit_index")}
    assert "recorded_at" not in columns
    assert "ix_audit_index_recorded_at" not in indexes
    assert "ix_audit_index_position" not in indexes
    assert positions(search(store, AuditQuery(subject=SA, since=T0 + timedelta(days=1)))) == before


def test_search_refuses_unknown_types_and_limits() -> None:
    with pytest.raises(ValidationError, match="unknown event type"):
        AuditQuery(event_type="DROP TABLE")
    with pytest.raises(ValidationError, match="--limit"):
        AuditQuery(limit=0)


def test_explain_names_the_root_cause_of_a_cascade(story: Story) -> None:
    explanation = explain(story.ledger.store, token_id(story.first))
    assert explanation.principal == SA
    kinds = [e.record.event_type for e in explanation.story]
    assert kinds == [
        "TokenIssued",
        "ServiceAccountPermissionLevelChanged",
        "ServiceAccountPermissionMoved",
        "TokenRevoked",
    ]
    assert explanation.root_cause is not None
    assert explanation.root_cause.record.event_type == "ServiceAccountPermissionMoved"
    assert explanation.root_cause.record.actor == "operator:bob"
    assert explanation.siblings == [token_id(story.second)]
    text = "\n".join(explanation.lines())
    assert "root cause: " in text
    assert "moved from acme/alpha to acme/beta" in text
    assert "by operator:bob" in text
    with pytest.raises(NotFound):
        explain(story.ledger.store, "tok_0000000000000000")


def test_explain_a_token_revoked_directly(story: Story) -> None:
    fresh = story.ledger.execute(c.IssueToken(principal=SA), OPERATOR)
    child = story.ledger.execute(c.IssueToken(parent_id=token_id(fresh)), OPERATOR)
    story.ledger.execute(c.RevokeToken(token_id=token_id(fresh), reason="rotated"), OPERATOR)
    parent_story = explain(story.ledger.store, token_id(fresh))
    assert parent_story.root_cause is not None
    assert parent_story.root_cause.record.event_type == "TokenRevoked"
    assert parent_story.siblings == [token_id(child)]
    child_story = explain(story.ledger.store, token_id(child))
    assert "parent_revoked" in "\n".join(child_story.lines())


def test_audit_cli(story: Story) -> None:
    table = run(story.url, "audit", "--subject", SA, "--limit", "3")
    assert table.exit_code == 0, table.output
    assert len(table.stdout.splitlines()) == 3
    lines = run(story.url, "audit", "--type", "TokenRevoked", "--jsonl").stdout.splitlines()
    assert {json.loads(line)["data"]["reason"] for line in lines} == {"service_account_moved"}
    document = json.loads(run(story.url, "audit", "--actor", "operator:bob", "--json").stdout)
    assert len(document) == 4
    explained = run(story.url, "audit", "explain", token_id(story.first), "--json")
    assert explained.exit_code == 0, explained.output
    assert json.loads(explained.stdout)["root_cause"]["event_type"] == (
        "ServiceAccountPermissionMoved"
    )
    assert run(story.url, "audit", "--since", "yesterday").exit_code == 2


def test_export_jsonl_and_cloudevents(story: Story) -> None:
    jsonl = run(story.url, "audit", "export", "--since", (T0 + timedelta(days=1)).isoformat())
    assert jsonl.exit_code == 0, jsonl.output
    assert len(jsonl.stdout.splitlines()) == 4
    cloud = run(story.url, "audit", "export", "--format", "cloudevents")
    events = [json.loads(line) for line in cloud.stdout.splitlines()]
    assert len(events) == story.ledger.store.head().position
    first = events[0]
    assert first["specversion"] == "1.0"
    assert first["type"] == "io.tokenledger.OrgCreated.v1"
    assert first["source"] == "urn:tokenledger"
    assert first["time"].endswith("Z")
    assert first["tlposition"] == 1
    for secret in (story.first.secret, story.second.secret):
        assert secret is not None
        assert secret not in cloud.stdout
        assert secret.split("_", 1)[1] not in cloud.stdout


def test_verify_at_a_past_time(story: Story) -> None:
    secret = story.first.secret
    assert secret is not None
    assert story.ledger.verify(secret).reason == "revoked"
    then, position = story.ledger.verify_at(
        secret, T0 + timedelta(hours=1), resource="acme/alpha", level=Level.WRITE
    )
    assert (then.active, then.allowed) == (True, True)
    assert position == 6
    narrowed, _ = story.ledger.verify_at(
        secret, T0 + timedelta(days=1, hours=1), resource="acme/alpha", level=Level.WRITE
    )
    assert (narrowed.active, narrowed.reason) == (True, "not_allowed")
    # A moment the log cannot answer for is refused, saying which side it falls on.
    with pytest.raises(ValidationError, match="is before the first event"):
        story.ledger.verify_at(secret, T0 - timedelta(days=1))
    with pytest.raises(ValidationError, match="is after now"):
        story.ledger.verify_at(secret, story.ledger.now() + timedelta(days=1))
    for moment, said in (
        (T0 - timedelta(days=1), "before the first event"),
        (T0 + timedelta(days=3650), "after now"),
    ):
        for args in (("tokens", "verify"), ("tokens", "list", "--principal", SA)):
            refused = run(story.url, *args, "--at", moment.isoformat(), stdin=secret)
            assert refused.exit_code == 2, refused.output
            assert said in refused.stderr
            assert "Traceback" not in refused.output

    cli_answer = run(
        story.url,
        "tokens",
        "verify",
        "--at",
        (T0 + timedelta(hours=1)).isoformat(),
        "--json",
        stdin=secret,
    )
    assert cli_answer.exit_code == 0, cli_answer.output
    assert json.loads(cli_answer.stdout)["as_of_position"] == 6
    now_answer = run(story.url, "tokens", "verify", stdin=secret)
    assert now_answer.exit_code == 1


def test_tokens_list_at_a_past_time(story: Story) -> None:
    assert story.ledger.tokens_of(OPERATOR, SA) == []
    then = story.ledger.tokens_of(OPERATOR, SA, at=T0 + timedelta(hours=1))
    assert {t.token_id for t in then} == {token_id(story.first), token_id(story.second)}
    listed = run(
        story.url,
        "tokens",
        "list",
        "--principal",
        SA,
        "--at",
        (T0 + timedelta(hours=1)).isoformat(),
        "--json",
    )
    assert listed.exit_code == 0, listed.output
    assert {t["status"] for t in json.loads(listed.stdout)} == {"active"}


def test_a_token_sees_only_what_it_may_and_may_not_maintain(story: Story) -> None:
    fresh = story.ledger.execute(c.IssueToken(principal=SA), OPERATOR)
    assert fresh.secret is not None
    env = {"TOKENLEDGER_TOKEN": fresh.secret}
    mine = CliRunner().invoke(
        cli, ["--db", story.url, "audit", "--json", "--limit", "500"], env=env
    )
    assert mine.exit_code == 0, mine.output
    seen = json.loads(mine.stdout)
    assert seen
    assert all(SA in json.dumps(entry["data"]) for entry in seen)
    for args in (["replay"], ["replay", "--check"], ["audit", "export"]):
        refused = CliRunner().invoke(cli, ["--db", story.url, *args], env=env)
        assert refused.exit_code == 4, refused.output
        assert "only an operator" in refused.stderr


def test_an_org_subject_finds_its_service_accounts_events_in_order(database_url: str) -> None:
    """Tokens of two accounts revoked in turn: the org's newest (or oldest) three are the
    three newest (oldest) of both, once each, whatever the limit cuts."""
    ledger = Ledger(open_event_store(database_url, auto_upgrade=True))
    try:
        for command in (
            c.CreateOrg(org="acme"),
            c.CreateOrg(org="other"),
            c.CreateResource(path="acme/alpha"),
            c.CreateResource(path="other/x"),
            c.CreateServiceAccount(name="a", org="acme", resource="acme/alpha", level=Level.READ),
            c.CreateServiceAccount(name="b", org="acme", resource="acme/alpha", level=Level.READ),
            c.CreateServiceAccount(name="z", org="other", resource="other/x", level=Level.READ),
        ):
            ledger.execute(command, OPERATOR)
        revoked = []
        for name in ("a", "b", "z", "a", "b", "a"):
            org = "other" if name == "z" else "acme"
            issued = ledger.execute(
                c.IssueToken(principal=f"{name}@{org}.service.tokenledger"), OPERATOR
            ).outcome.issued
            assert issued is not None
            # A revocation names the token and its account only, not the org.
            result = ledger.execute(c.RevokeToken(token_id=issued.token_id), OPERATOR)
            revoked.append((org, result.records[0].position))
        acme = [position for org, position in revoked if org == "acme"]

        def found(**filters: object) -> list[int]:
            query = AuditQuery(subject="acme", event_type="TokenRevoked", **filters)  # type: ignore[arg-type]
            return positions(search(ledger.store, query))

        assert found(limit=3) == sorted(acme, reverse=True)[:3]
        assert found(limit=3, oldest_first=True) == sorted(acme)[:3]
        assert found(limit=50) == sorted(acme, reverse=True)  # each once, other's left out
    finally:
        ledger.close()


def test_an_org_with_hundreds_of_accounts_is_searched_whole(database_url: str) -> None:
    """More accounts than one statement may merge (SQLite allows 500 terms): still one answer."""
    ledger = Ledger(open_event_store(database_url, auto_upgrade=True))
    try:
        ledger.execute(c.CreateOrg(org="big"), OPERATOR)
        ledger.execute(c.CreateResource(path="big/p"), OPERATOR)
        for n in range(501):
            ledger.execute(
                c.CreateServiceAccount(name=f"a{n}", org="big", resource="big/p", level=Level.READ),
                OPERATOR,
            )
        revoked = []
        for n in (0, 250, 500):
            issued = ledger.execute(
                c.IssueToken(principal=f"a{n}@big.service.tokenledger"), OPERATOR
            ).outcome.issued
            assert issued is not None
            result = ledger.execute(c.RevokeToken(token_id=issued.token_id), OPERATOR)
            revoked.append(result.records[0].position)
        query = AuditQuery(subject="big", event_type="TokenRevoked", limit=2)
        assert positions(search(ledger.store, query)) == sorted(revoked, reverse=True)[:2]
    finally:
        ledger.close()
