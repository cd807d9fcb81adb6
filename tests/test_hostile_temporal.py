"""Questions about the past under attack, on SQLite and PostgreSQL: what ``tokens verify
--at``, ``tokens list --at`` and ``audit who-can --at`` answer at a moment is what was answered
at that moment, through a rotation, suspensions of a token and of its service account, a
user disabled and revocations; and a resource is not answered for at a moment it did not
exist. Time moved with freezegun.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from freezegun import freeze_time
from freezegun.api import FrozenDateTimeFactory

from helpers import assert_one_line_error, cli_head, cli_json, cli_run

ANN, BOB = "ann@acme.io", "bob@acme.io"
CI = "ci@acme.service.tokenledger"
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def iso(moment: datetime) -> str:
    return moment.isoformat()


def _ok(url: str, *args: str) -> None:
    result = cli_run(url, *args)
    assert result.exit_code == 0, (args, result.output)


def _setup(url: str) -> None:
    for args in (
        ("db", "upgrade"),
        ("orgs", "create", "acme"),
        ("resources", "create", "acme/alpha"),
        ("users", "create", ANN),
        ("users", "create", BOB),
        ("orgs", "add-member", "acme", ANN, "--role", "admin"),
        ("orgs", "add-member", "acme", BOB),
        ("grants", "set", BOB, "acme/alpha", "write"),
        ("service-accounts", "create", "ci", "--org", "acme", "--resource", "acme/alpha",
         "--level", "write"),
    ):  # fmt: skip
        _ok(url, *args)


@dataclass
class Recorder:
    """Each token's answer, each principal's listing and who could read acme/alpha, as
    answered at each moment of the story, to be asked again afterwards ``--at`` it."""

    url: str
    clock: FrozenDateTimeFactory
    secrets: dict[str, str] = field(default_factory=dict)
    answered: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def issue(self, name: str, *args: str) -> str:
        issued = cli_json(self.url, "tokens", "create", *args)
        self.secrets[name] = issued["secret"]
        return str(issued["token_id"])

    def answers(self, at: str | None = None) -> dict[str, Any]:
        moment = ["--at", at] if at is not None else []
        found: dict[str, Any] = {}
        for name, secret in self.secrets.items():
            verify = ["tokens", "verify", "--resource", "acme/alpha", "--json", *moment]
            answer = json.loads(cli_run(self.url, *verify, stdin=secret).stdout)
            found[name] = {key: answer.get(key) for key in ("active", "reason", "allowed", "exp")}
        for principal in (BOB, CI):
            listing = cli_json(
                self.url, "tokens", "list", "--principal", principal, "--all", *moment
            )
            found[principal] = sorted(
                (t["token_id"], t["status"], t["expires_at"], json.dumps(t["grants"]))
                for t in listing
            )
        who = cli_json(self.url, "audit", "who-can", "acme/alpha", "read", *moment)
        found["who-can"] = (
            sorted(p["principal"] for p in who["principals"]),
            sorted(t["token_id"] for t in who["tokens"]),
        )
        return found

    def record(self, label: str) -> None:
        """Answers a little after the step (not at its instant), then time moves on."""
        self.clock.tick(timedelta(minutes=10))
        self.answered.append((label, iso(datetime.now(UTC)), self.answers()))
        self.clock.tick(timedelta(minutes=10))


@pytest.fixture
def recorded(database_url: str) -> Iterator[Recorder]:
    with freeze_time(T0) as clock:
        url = database_url
        _setup(url)
        clock.tick(HOUR)
        story = Recorder(url, clock)
        bob = story.issue(
            "bob", "--principal", BOB, "--resource", "acme/alpha", "--level", "read",
            "--expires-in", "3d",
        )  # fmt: skip
        ci = story.issue(
            "ci", "--principal", CI, "--resource", "acme/alpha", "--level", "read",
            "--expires-in", "3d",
        )  # fmt: skip
        child = cli_run(
            url, "tokens", "create", "--resource", "acme/alpha", "--level", "read",
            "--parent", bob, "--json", token=story.secrets["bob"],
        )  # fmt: skip
        assert child.exit_code == 0, child.output
        story.secrets["child"] = json.loads(child.stdout)["secret"]
        story.record("issued")
        rotated = cli_json(url, "tokens", "rotate", bob, "--overlap", "2h")
        successor = rotated["token_id"]
        story.secrets["successor"] = rotated["secret"]
        story.record("rotated: bob's and its child's expiry brought forward")
        _ok(url, "tokens", "disable", bob)
        _ok(url, "tokens", "disable", successor)
        story.record("disabled, the child with its parent")
        _ok(url, "service-accounts", "disable", CI)
        story.record("the service account disabled")
        _ok(url, "tokens", "enable", bob)
        _ok(url, "tokens", "enable", successor)
        story.record("enabled")
        clock.tick(2 * HOUR)
        story.record("the overlap over")
        _ok(url, "service-accounts", "enable", CI)
        _ok(url, "grants", "set", BOB, "acme/alpha", "none")
        story.record("bob's grant removed")
        _ok(url, "grants", "set", BOB, "acme/alpha", "write")
        _ok(url, "users", "disable", BOB)
        story.record("bob disabled")
        _ok(url, "tokens", "revoke", ci)
        story.record("revoked")
        clock.tick(timedelta(days=4))
        story.record("all expired")
        yield story


def test_each_past_answer_is_what_was_answered_then(recorded: Recorder) -> None:
    for label, moment, then in recorded.answered:
        asked = recorded.answers(moment)
        assert {key: asked[key] for key in then} == then, label
        # A token issued after the moment is unknown at it.
        for key in asked.keys() - then.keys():
            assert asked[key]["reason"] == "unknown", (label, key)


# -- a resource that did not exist at the moment asked -----------------------------------------


@pytest.fixture
def late_resource(database_url: str) -> Iterator[str]:
    """ann holds an acme:admin token from the start; acme/late is created two hours later,
    deleted at four hours and created again at six; bob holds write on it whenever it
    exists."""
    with freeze_time(T0) as clock:
        _setup(database_url)
        cli_json(database_url, "tokens", "create", "--principal", ANN, "--resource", "acme",
                 "--level", "admin")  # fmt: skip
        clock.tick(2 * HOUR)
        _ok(database_url, "resources", "create", "acme/late")
        _ok(database_url, "grants", "set", BOB, "acme/late", "write")
        clock.tick(2 * HOUR)
        _ok(database_url, "resources", "delete", "acme/late")
        clock.tick(2 * HOUR)
        _ok(database_url, "resources", "create", "acme/late")
        _ok(database_url, "grants", "set", BOB, "acme/late", "write")
        clock.tick(HOUR)
        yield database_url


def _unknown(url: str, *args: str) -> None:
    head = cli_head(url)
    assert_one_line_error(cli_run(url, *args), 2, "unknown resource acme/late")
    assert cli_head(url) == head


def test_who_can_before_the_resource_was_created_is_unknown_resource(late_resource: str) -> None:
    _unknown(late_resource, "audit", "who-can", "acme/late", "read", "--at", iso(T0 + HOUR))


def test_who_can_while_the_resource_was_deleted_is_unknown_resource(late_resource: str) -> None:
    _unknown(late_resource, "audit", "who-can", "acme/late", "read", "--at", iso(T0 + 5 * HOUR))


def test_live_before_the_resource_was_created_is_unknown_resource(late_resource: str) -> None:
    window = f"{iso(T0 + 30 * timedelta(minutes=1))}..{iso(T0 + HOUR)}"
    _unknown(late_resource, "tokens", "live", "--during", window, "--resource", "acme/late")


def test_who_can_while_the_resource_existed_answers(late_resource: str) -> None:
    then = cli_json(
        late_resource, "audit", "who-can", "acme/late", "write", "--at", iso(T0 + 3 * HOUR)
    )
    assert BOB in {p["principal"] for p in then["principals"]}


def test_who_can_on_an_org_root_answers_at_any_moment_since_the_org(late_resource: str) -> None:
    """An org's root is the subject of every event in the org (a child's deletion among
    them): it exists from the org's creation on, whatever happened below it."""
    for hours in (1, 5, 7):
        then = cli_json(
            late_resource, "audit", "who-can", "acme", "admin", "--at", iso(T0 + hours * HOUR)
        )
        assert ANN in {p["principal"] for p in then["principals"]}, hours
