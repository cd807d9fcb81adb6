"""Webhooks: an org's subscriptions (``tokenledger webhooks``) and their deliverer
(``tokenledger notify``), against a real HTTP receiver on loopback, on SQLite and PostgreSQL.

The receiver checks every delivery's Standard Webhooks signature with the secret
``webhooks create`` printed, with its own HMAC, not the ledger's. Retries are driven by
moving time with freezegun and running ``notify --once``, never by sleeping; the kill -9
test runs ``tokenledger notify`` as a process of its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner, Result
from freezegun import freeze_time

from api_helpers import Api, make_api
from helpers import assert_one_line_error, cli_head, cli_json, cli_run, head_position
from tokenledger.cli.app import cli
from tokenledger.service.webhook_tables import outbox_metadata
from tokenledger.store import open_event_store

SA = "bot@acme.service.tokenledger"
START = datetime(2030, 1, 1, tzinfo=UTC)
CLI = [sys.executable, "-c", "from tokenledger.cli import main; main()"]
#: Generous: only a failure ever waits this long.
WAIT = 60.0


# -- a receiver ---------------------------------------------------------------------------


class Receiver:
    """An HTTP server on loopback that records each POST; ``status`` is what it answers,
    ``down()`` closes its port (connection refused) until ``up()``."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 204
        self.delay = 0.0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        self.up()

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["content-length"])
                body = self.rfile.read(length)
                if len(body) < length:
                    return  # the sender died mid-request: nothing was delivered
                if receiver.delay:
                    time.sleep(receiver.delay)  # a slow receiver, for the kill -9 test
                with receiver._lock:
                    receiver.received.append(
                        {
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                            "answered": receiver.status,
                        }
                    )
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
        self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def accepted(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.received if 200 <= r["answered"] < 300]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    if found._server is not None:
        found.down()


@pytest.fixture
def url(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A ledger with org acme (project alpha, service account bot) and org beta."""
    monkeypatch.setenv("TOKENLEDGER_KEYS_FILE", str(tmp_path / "keys.json"))
    open_event_store(database_url, auto_upgrade=True).engine.dispose()
    for args in (
        ("orgs", "create", "acme"),
        ("orgs", "create", "beta"),
        ("resources", "create", "acme/alpha"),
        ("resources", "create", "beta/gamma"),
        ("service-accounts", "create", "bot", "--org", "acme", "--resource", "acme/alpha"),
        ("service-accounts", "create", "bot", "--org", "beta", "--resource", "beta/gamma"),
    ):
        more = ("--level", "read") if args[0] == "service-accounts" else ()
        result = cli_run(database_url, *args, *more)
        assert result.exit_code == 0, result.output
    return database_url


def create_webhook(url: str, receiver: Receiver, events: str, org: str = "acme") -> dict[str, Any]:
    created: dict[str, Any] = cli_json(
        url, "webhooks", "create", org, "--url", receiver.url, "--events", events
    )
    return created


def issue(url: str, principal: str = SA, resource: str = "acme/alpha", **more: str) -> str:
    args = ["tokens", "create", "--principal", principal, "--resource", resource]
    args += ["--level", "read"]
    for option, value in more.items():
        args += [f"--{option.replace('_', '-')}", value]
    token_id: str = cli_json(url, *args)["token_id"]
    return token_id


def notify_once(url: str, *more: str) -> None:
    result = cli_run(url, "notify", "--once", *more)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.stderr


def verify_signature(secret: str, delivery: dict[str, Any]) -> None:
    """Standard Webhooks: v1,base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))."""
    headers = delivery["headers"]
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + delivery["body"]
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert f"v1,{expected}" in headers["webhook-signature"].split(" ")


def cloudevents(receiver: Receiver) -> list[dict[str, Any]]:
    return [json.loads(r["body"]) for r in receiver.accepted()]


def deliveries(url: str, webhook_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = cli_json(url, "webhooks", "deliveries", webhook_id)
    return found


# -- what is delivered ----------------------------------------------------------------------


def test_deliveries_are_signed_cloudevents_of_the_types_asked_for(
    url: str, receiver: Receiver
) -> None:
    webhook = create_webhook(url, receiver, "token.revoked,token.issued")
    assert webhook["id"].startswith("wh_")
    assert webhook["events"] == ["token.issued", "token.revoked"]
    secret = webhook["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    token_id = issue(url)
    revoked = cli_run(url, "tokens", "revoke", token_id)
    assert revoked.exit_code == 0, revoked.output
    cli_run(url, "orgs", "create", "gamma")  # of no type asked for

    notify_once(url)

    accepted = receiver.accepted()
    assert len(accepted) == 2
    for delivery in accepted:
        verify_signature(secret, delivery)
        headers = delivery["headers"]
        assert len(headers["webhook-signature"].split(" ")) == 1
        assert headers["content-type"] == "application/cloudevents+json"
        assert headers["webhook-id"].startswith("msg_")
        assert abs(int(headers["webhook-timestamp"]) - time.time()) < 300
    events = cloudevents(receiver)
    assert [e["type"] for e in events] == [
        "io.tokenledger.token.issued",
        "io.tokenledger.token.revoked",
    ]
    for event in events:
        assert event["specversion"] == "1.0"
        assert event["subject"] == f"token:{token_id}"
        assert event["data"]["token_id"] == token_id
    assert events[1]["data"]["type"] == "TokenRevoked"
    states = deliveries(url, webhook["id"])
    assert {d["state"] for d in states} == {"delivered"}
    assert {d["id"] for d in states} == {r["headers"]["webhook-id"] for r in accepted}

    notify_once(url)  # nothing new: nothing sent again
    assert len(receiver.received) == 2


def test_a_webhook_never_receives_another_orgs_events(url: str, receiver: Receiver) -> None:
    create_webhook(url, receiver, "token.issued,service_account.created,member.added")
    issue(url, "bot@beta.service.tokenledger", "beta/gamma")
    cli_run(
        url,
        "service-accounts",
        "create",
        "other",
        "--org",
        "beta",
        "--resource",
        "beta/gamma",
        "--level",
        "read",
    )
    cli_run(url, "users", "create", "bea@example.org")
    cli_run(url, "orgs", "add-member", "beta", "bea@example.org")
    ours = issue(url)

    notify_once(url)

    events = cloudevents(receiver)
    assert [e["data"].get("token_id") for e in events] == [ours]


def test_an_org_named_like_a_webhook_id_is_sent_none_of_its_events(
    url: str, receiver: Receiver
) -> None:
    theirs = create_webhook(url, receiver, "token.issued")
    assert cli_run(url, "orgs", "create", theirs["id"]).exit_code == 0
    lookalike = Receiver()
    try:
        create_webhook(url, lookalike, "webhook.deleted", org=theirs["id"])
        assert cli_run(url, "webhooks", "delete", theirs["id"]).exit_code == 0
        notify_once(url)
        assert lookalike.received == []
    finally:
        lookalike.down()


def test_only_events_after_the_webhooks_creation_are_sent(url: str, receiver: Receiver) -> None:
    before = issue(url)
    create_webhook(url, receiver, "token.issued")
    after = issue(url)
    notify_once(url)
    assert [e["data"]["token_id"] for e in cloudevents(receiver)] == [after]
    assert before != after


# -- retries -------------------------------------------------------------------------------


def test_a_receiver_down_for_a_while_gets_every_delivery_once_back(
    url: str, receiver: Receiver
) -> None:
    with freeze_time(START) as clock:
        webhook = create_webhook(url, receiver, "token.issued")
        receiver.status = 500
        first = issue(url)
        notify_once(url)
        assert len(receiver.received) == 1
        failing = deliveries(url, webhook["id"])
        assert [(d["state"], d["attempts"], d["last_error"]) for d in failing] == [
            ("retrying", 1, "HTTP 500")
        ]

        receiver.down()  # connection refused from now on
        second = issue(url)
        clock.tick(timedelta(seconds=1))
        notify_once(url)  # the first is not due yet; the second fails
        states = {d["position"]: d for d in deliveries(url, webhook["id"])}
        assert sorted(d["attempts"] for d in states.values()) == [1, 1]
        assert {d["last_error"] for d in states.values()} == {"HTTP 500", "cannot connect"}

        # While its receiver fails, a webhook is tried once a round, its deliveries in turn;
        # each failure doubles the delivery's pause (5 s, 10 s, ... less up to a fifth).
        attempts = {d["id"]: d["attempts"] for d in states.values()}
        for _ in range(8):
            clock.tick(timedelta(hours=2))
            notify_once(url)
            now = datetime.now(UTC)
            tried = [d for d in deliveries(url, webhook["id"]) if d["attempts"] > attempts[d["id"]]]
            assert len(tried) == 1
            (delivery,) = tried
            attempts[delivery["id"]] = delivery["attempts"]
            pause = datetime.fromisoformat(delivery["next_attempt_at"]) - now
            longest = min(5 * 2 ** (delivery["attempts"] - 1), 3600)
            assert timedelta(seconds=0.8 * longest) <= pause <= timedelta(seconds=longest)
        assert sorted(attempts.values()) == [5, 5]

        receiver.up()
        receiver.status = 200
        clock.tick(timedelta(hours=1))
        notify_once(url)

    accepted = receiver.accepted()
    assert [json.loads(r["body"])["data"]["token_id"] for r in accepted] == [first, second]
    # Every attempt of a delivery carries the same webhook-id.
    first_id = receiver.received[0]["headers"]["webhook-id"]
    assert accepted[0]["headers"]["webhook-id"] == first_id
    assert {d["state"] for d in deliveries(url, webhook["id"])} == {"delivered"}


def test_deleting_a_webhook_stops_its_pending_deliveries(url: str, receiver: Receiver) -> None:
    with freeze_time(START) as clock:
        webhook = create_webhook(url, receiver, "token.issued")
        receiver.status = 503
        issue(url)
        notify_once(url)
        assert len(receiver.received) == 1
        deleted = cli_run(url, "webhooks", "delete", webhook["id"])
        assert deleted.exit_code == 0, deleted.output
        receiver.status = 200
        issue(url)
        clock.tick(timedelta(hours=2))
        notify_once(url)
    assert len(receiver.received) == 1
    assert cli_json(url, "webhooks", "list") == []
    assert_one_line_error(cli_run(url, "webhooks", "get", webhook["id"]), 3, "no webhook")


def test_a_rotated_secret_signs_with_the_previous_one_beside_it_for_a_day(
    url: str, receiver: Receiver
) -> None:
    with freeze_time(START) as clock:
        webhook = create_webhook(url, receiver, "token.issued")
        old = webhook["secret"]
        rotated = cli_run(url, "webhooks", "rotate-secret", webhook["id"])
        assert rotated.exit_code == 0, rotated.output
        new = rotated.stdout.split("secret: ")[1].strip()
        assert new.startswith("whsec_")
        assert new != old
        issue(url)
        notify_once(url)
        clock.tick(timedelta(days=1, minutes=1))
        issue(url)
        notify_once(url)
    first, second = receiver.accepted()
    for secret in (old, new):
        verify_signature(secret, first)
    verify_signature(new, second)
    with pytest.raises(AssertionError):
        verify_signature(old, second)
    again = cli_json(url, "webhooks", "rotate-secret", webhook["id"])
    assert again["secret"] not in (old, new)
    assert_one_line_error(
        cli_run(url, "webhooks", "rotate-secret", "wh_" + "1" * 24), 3, "no webhook"
    )


# -- expiry warnings -------------------------------------------------------------------------


def test_expiry_warnings_go_out_14_7_and_1_days_before_each_once(
    url: str, receiver: Receiver
) -> None:
    with freeze_time(START) as clock:
        create_webhook(url, receiver, "token.expiring")
        other = create_webhook(url, receiver, "token.expiring", org="beta")
        token_id = issue(url, expires_in="30d")
        expires_at = START + timedelta(days=30)
        seen: list[int] = []
        for day in range(31):
            clock.move_to(START + timedelta(days=day, hours=1))
            notify_once(url)
            notify_once(url)  # a second scan queues nothing more
            seen = [e["data"]["warning_seconds"] // 86400 for e in cloudevents(receiver)]
        assert seen == [14, 7, 1]
    events = cloudevents(receiver)
    assert {e["type"] for e in events} == {"io.tokenledger.token.expiring"}
    assert {e["data"]["token_id"] for e in events} == {token_id}
    assert {e["data"]["org"] for e in events} == {"acme"}
    assert {e["data"]["expires_at"] for e in events} == {
        expires_at.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    }
    ids = [r["headers"]["webhook-id"] for r in receiver.accepted()]
    assert len(set(ids)) == 3
    assert deliveries(url, other["id"]) == []


def test_expiry_warnings_are_configurable(url: str, receiver: Receiver) -> None:
    with freeze_time(START) as clock:
        create_webhook(url, receiver, "token.expiring")
        issue(url, expires_in="3d")  # inside 14d at once: warned for 14d now, for 2d later
        notify_once(url, "--expiry-warnings", "14d,2d")
        notify_once(url, "--expiry-warnings", "14d,2d")
        clock.tick(timedelta(days=1, hours=1))
        notify_once(url, "--expiry-warnings", "14d,2d")
    assert [e["data"]["warning_seconds"] // 86400 for e in cloudevents(receiver)] == [14, 2]
    assert_one_line_error(
        cli_run(url, "notify", "--once", "--expiry-warnings", "soon"), 2, "invalid duration"
    )


# -- unused tokens -------------------------------------------------------------------------


def test_a_token_unused_for_90_days_is_told_of_once(url: str, receiver: Receiver) -> None:
    with freeze_time(START) as clock:
        create_webhook(url, receiver, "token.unused")
        other = create_webhook(url, receiver, "token.unused", org="beta")
        idle = issue(url, expires_in="1y")
        revoked = issue(url, expires_in="1y")
        cli_json(url, "tokens", "revoke", revoked)
        clock.move_to(START + timedelta(days=89))
        notify_once(url)
        assert cloudevents(receiver) == []
        clock.move_to(START + timedelta(days=90, hours=1))
        notify_once(url)
        notify_once(url)  # a second scan queues nothing more
    [notice] = cloudevents(receiver)
    assert notice["type"] == "io.tokenledger.token.unused"
    assert notice["data"]["token_id"] == idle
    assert notice["data"]["last_used"] is None  # never used: counted from its issue
    assert notice["data"]["unused_seconds"] // 86400 == 90
    assert deliveries(url, other["id"]) == []


def test_how_long_unused_is_configurable(url: str, receiver: Receiver) -> None:
    with freeze_time(START) as clock:
        create_webhook(url, receiver, "token.unused")
        issue(url, expires_in="1y")
        clock.tick(timedelta(days=31))
        notify_once(url, "--unused-after", "off")
        assert cloudevents(receiver) == []
        notify_once(url, "--unused-after", "30d")
    assert [e["type"] for e in cloudevents(receiver)] == ["io.tokenledger.token.unused"]
    assert_one_line_error(
        cli_run(url, "notify", "--once", "--unused-after", "soon"), 2, "invalid duration"
    )


# -- a crash -------------------------------------------------------------------------------


def start_notify(url: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [*CLI, "--db", url, "notify"], env=env, stdout=output, stderr=output
        )


def delivered_ids(receiver: Receiver) -> set[str]:
    return {r["headers"]["webhook-id"] for r in receiver.accepted()}


def wait_for(condition: Any, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"notify exited: {log.read_text()}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_kill_9_of_the_deliverer_loses_nothing(
    url: str, receiver: Receiver, tmp_path: Path
) -> None:
    webhook = create_webhook(url, receiver, "token.issued")
    total = 30
    for _ in range(total):
        issue(url)
    receiver.delay = 0.05
    env = {**os.environ, "TOKENLEDGER_KEYS_FILE": str(tmp_path / "keys.json")}
    log = tmp_path / "notify.log"
    process = start_notify(url, env, log)
    try:
        wait_for(lambda: len(receiver.received) >= 5, process, log)
        process.send_signal(signal.SIGKILL)
        process.wait(WAIT)
    finally:
        process.kill()
        process.wait(WAIT)
    before = len(receiver.received)
    assert before < total, "the deliverer was not killed midway"

    process = start_notify(url, env, log)
    try:
        wait_for(lambda: len(delivered_ids(receiver)) == total, process, log)
        issue(url)  # followed as it lands
        wait_for(lambda: len(delivered_ids(receiver)) == total + 1, process, log)
        process.send_signal(signal.SIGTERM)
        code = process.wait(WAIT)
        assert code == 0, log.read_text()
    finally:
        process.kill()
        process.wait(WAIT)

    by_id: dict[str, set[bytes]] = {}
    for delivery in receiver.received:
        verify_signature(webhook["secret"], delivery)
        by_id.setdefault(delivery["headers"]["webhook-id"], set()).add(delivery["body"])
    # Repeats (a delivery sent when the kill came) carry the same id and the same body.
    assert all(len(bodies) == 1 for bodies in by_id.values())
    token_ids = {json.loads(next(iter(b)))["data"]["token_id"] for b in by_id.values()}
    assert len(token_ids) == total + 1
    states = cli_json(url, "webhooks", "deliveries", webhook["id"], "--limit", "100")
    assert len(states) == total + 1
    assert {d["state"] for d in states} == {"delivered"}


# -- refusals, permissions, the secret ---------------------------------------------------------


@pytest.mark.parametrize(
    ("webhook_url", "fragment"),
    [
        ("ftp://hooks.example/in", "an http or https URL"),
        ("https://alice:hunter2@hooks.example/in", "credentials"),
        ("https://token@hooks.example/in", "credentials"),
        ("https:///in", "with a host"),
        ("hooks.example/in", "an http or https URL"),
        ("https://hooks.example/" + "a" * 500, "at most 500"),
        ("https://hooks.example/in#top", "fragment"),
        ("https://hooks.example:99999/in", "an http or https URL"),
    ],
)
def test_bad_urls_are_refused_in_one_line_with_the_log_untouched(
    url: str, webhook_url: str, fragment: str
) -> None:
    before = cli_head(url)
    result = cli_run(
        url, "webhooks", "create", "acme", "--url", webhook_url, "--events", "token.revoked"
    )
    assert_one_line_error(result, 2, "invalid webhook url", fragment)
    assert "hunter2" not in result.stderr
    assert cli_head(url) == before


def test_bad_event_types_and_ids_are_refused_in_one_line(url: str) -> None:
    before = cli_head(url)
    for events, fragment in (
        ("token.bogus", "token.bogus"),
        ("", "at least one"),
        (",", "at least one"),
    ):
        result = cli_run(
            url, "webhooks", "create", "acme", "--url", "https://h.example", "--events", events
        )
        assert_one_line_error(result, 2, "invalid webhook event", fragment)
    assert_one_line_error(cli_run(url, "webhooks", "delete", "wh_nope"), 2, "invalid webhook id")
    assert_one_line_error(cli_run(url, "webhooks", "delete", "wh_" + "0" * 24), 3, "no webhook")
    missing = cli_run(
        url,
        "webhooks",
        "create",
        "nowhere",
        "--url",
        "https://h.example",
        "--events",
        "token.issued",
    )
    assert_one_line_error(missing, 3, "no org nowhere")
    assert cli_head(url) == before


def test_who_may_manage_webhooks(url: str) -> None:
    for args in (
        ("users", "create", "ada@example.org"),
        ("users", "create", "bob@example.org"),
        ("orgs", "add-member", "acme", "ada@example.org", "--role", "admin"),
        ("orgs", "add-member", "acme", "bob@example.org"),
        ("orgs", "add-member", "beta", "bob@example.org", "--role", "admin"),
    ):
        assert cli_run(url, *args).exit_code == 0
    admin = cli_json(
        url,
        "tokens",
        "create",
        "-i",
        "ada@example.org",
        "--resource",
        "acme",
        "--level",
        "admin",
        "--expires-in",
        "1d",
    )["secret"]
    other = cli_json(
        url,
        "tokens",
        "create",
        "-i",
        "bob@example.org",
        "--resource",
        "beta",
        "--level",
        "admin",
        "--expires-in",
        "1d",
    )["secret"]
    machine = cli_json(
        url, "tokens", "create", "-i", SA, "--resource", "acme/alpha", "--level", "read"
    )["secret"]
    create = (
        "webhooks",
        "create",
        "acme",
        "--url",
        "https://hooks.example/in",
        "--events",
        "token.revoked",
    )
    before = cli_head(url)
    assert_one_line_error(
        cli_run(url, *create, token=machine), 4, "service accounts may not manage webhooks"
    )
    assert_one_line_error(cli_run(url, *create, token=other), 4, "admin on acme")
    loopback = (
        "webhooks",
        "create",
        "acme",
        "--url",
        "http://127.0.0.1:9/in",
        "--events",
        "token.revoked",
    )
    assert_one_line_error(cli_run(url, *loopback, token=admin), 4, "only an operator")
    assert cli_head(url) == before

    created = cli_json(url, *create, token=admin)
    assert [w["id"] for w in cli_json(url, "webhooks", "list", token=admin)] == [created["id"]]
    assert cli_json(url, "webhooks", "list", token=other) == []
    assert_one_line_error(
        cli_run(url, "webhooks", "list", "--org", "acme", "--json", token=other), 4, "admin on acme"
    )
    assert_one_line_error(
        cli_run(url, "webhooks", "get", created["id"], token=other), 4, "admin on acme"
    )
    assert_one_line_error(
        cli_run(url, "webhooks", "deliveries", created["id"], token=machine), 4, "service accounts"
    )
    assert_one_line_error(
        cli_run(url, "webhooks", "delete", created["id"], token=other), 4, "admin on acme"
    )
    assert_one_line_error(cli_run(url, "notify", "--once", token=admin), 4, "only an operator")
    assert cli_run(url, "webhooks", "delete", created["id"], token=admin).exit_code == 0
    assert cli_json(url, "webhooks", "list", "--org", "acme") == []


def test_the_secret_is_in_no_table_no_event_and_no_listing(
    url: str, receiver: Receiver, tmp_path: Path
) -> None:
    created = create_webhook(url, receiver, "token.issued,webhook.created")
    secret = created["secret"]
    raw_key = secret.removeprefix("whsec_")
    issue(url)
    notify_once(url)
    assert len(receiver.accepted()) == 1
    shown = cli_run(url, "webhooks", "get", created["id"], "--json")
    listed = cli_run(url, "webhooks", "list", "--json")
    events = cli_run(url, "events")
    for output in (shown.stdout, listed.stdout, events.stdout):
        assert secret not in output
        assert raw_key not in output
    store = open_event_store(url)
    try:
        engine = store.engine
        with engine.connect() as connection:
            for table in sa.inspect(engine).get_table_names():
                for row in connection.execute(sa.text(f"SELECT * FROM {table}")):
                    assert raw_key not in repr(row), table
    finally:
        engine.dispose()
    assert raw_key not in (tmp_path / "keys.json").read_text()
    again = cli_run(
        url,
        "webhooks",
        "create",
        "acme",
        "--url",
        receiver.url,
        "--events",
        "token.issued",
        "--json",
    )
    assert json.loads(again.stdout)["secret"] != secret


def test_the_outbox_tables_match_their_migration(url: str) -> None:
    store = open_event_store(url)
    names = set(outbox_metadata.tables)

    def ours(item: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        table = name if type_ == "table" else getattr(getattr(item, "table", None), "name", None)
        return table in names

    try:
        with store.engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_object": ours}
            )
            assert compare_metadata(context, outbox_metadata) == []
    finally:
        store.engine.dispose()


def test_a_rebuild_of_the_projections_keeps_the_outbox(url: str, receiver: Receiver) -> None:
    """The deliverer's checkpoint and outbox are its own state, not a projection: a replay
    rebuilds the webhooks table from the log and leaves them be, so nothing is sent again."""
    webhook = create_webhook(url, receiver, "token.issued")
    issue(url)
    notify_once(url)
    assert len(receiver.received) == 1
    for args in (("replay", "--check"), ("replay",)):
        result = cli_run(url, *args)
        assert result.exit_code == 0, result.output
    assert cli_json(url, "webhooks", "get", webhook["id"])["url"] == receiver.url
    assert [d["state"] for d in deliveries(url, webhook["id"])] == ["delivered"]
    issue(url)
    notify_once(url)
    assert len(receiver.received) == 2


# -- over HTTP, and the command line against a server -----------------------------------------


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    yield from make_api(database_url, tmp_path)


HOOK = "https://hooks.example/in"


def test_webhooks_over_http(api: Api) -> None:
    before = head_position(api.ledger)
    body = {"org": "acme", "url": HOOK, "events": ["token.revoked"]}
    refusals = [
        (api.admin, {**body, "url": "ftp://hooks.example"}, 400, "invalid webhook url"),
        (api.admin, {**body, "url": "https://a:b@hooks.example"}, 400, "credentials"),
        (api.admin, {**body, "events": ["token.bogus"]}, 400, "invalid webhook event"),
        (api.admin, {**body, "url": "http://localhost:9/in"}, 403, "only an operator"),
        (api.bearer(api.sa_token), body, 403, "service accounts may not manage webhooks"),
        (api.bearer(api.carol), body, 403, "admin on acme"),
        (api.bearer(api.bob), body, 403, "admin on acme"),
    ]
    for headers, sent, status, fragment in refusals:
        response = api.client.post("/v2/webhooks", json=sent, headers=headers)
        assert response.status_code == status, response.text
        description = response.json()["error_description"]
        assert fragment in description
        assert "\n" not in description
    assert (
        api.client.post("/v2/webhooks", json={"org": "acme"}, headers=api.admin).status_code == 400
    )
    assert head_position(api.ledger) == before

    created = api.client.post("/v2/webhooks", json=body, headers=api.admin)
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    answer = created.json()
    webhook_id = answer["webhook"]["id"]
    assert answer["webhook"]["events"] == ["token.revoked"]
    assert answer["secret"].startswith("whsec_")
    assert [e["event_type"] for e in answer["events"]] == ["WebhookCreated"]
    assert answer["secret"] not in json.dumps(answer["events"])

    listed = api.client.get("/v2/webhooks", headers=api.admin)
    assert [w["id"] for w in listed.json()] == [webhook_id]
    assert answer["secret"] not in listed.text
    assert api.client.get("/v2/webhooks", headers=api.bearer(api.carol)).json() == []
    shown = api.client.get(f"/v2/webhooks/{webhook_id}", headers=api.admin)
    assert shown.json()["url"] == HOOK
    assert (
        api.client.get(f"/v2/webhooks/{webhook_id}", headers=api.bearer(api.carol)).status_code
        == 403
    )
    assert api.client.get("/v2/webhooks/wh_nope", headers=api.admin).status_code == 400
    rotated = api.client.post(f"/v2/webhooks/{webhook_id}/secret", headers=api.admin)
    assert rotated.status_code == 200, rotated.text
    assert rotated.headers["cache-control"] == "no-store"
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != answer["secret"]
    assert [e["event_type"] for e in rotated.json()["events"]] == ["WebhookSecretRotated"]
    refused = api.client.post(f"/v2/webhooks/{webhook_id}/secret", headers=api.bearer(api.carol))
    assert refused.status_code == 403
    deliveries_of = api.client.get(f"/v2/webhooks/{webhook_id}/deliveries", headers=api.admin)
    assert deliveries_of.status_code == 200
    assert deliveries_of.json() == []
    assert (
        api.client.delete(f"/v2/webhooks/{webhook_id}", headers=api.bearer(api.carol)).status_code
        == 403
    )
    deleted = api.client.delete(f"/v2/webhooks/{webhook_id}", headers=api.admin)
    assert deleted.status_code == 200, deleted.text
    assert api.client.get(f"/v2/webhooks/{webhook_id}", headers=api.admin).status_code == 404
    assert api.client.delete(f"/v2/webhooks/{webhook_id}", headers=api.admin).status_code == 404


def test_the_webhook_commands_against_a_server(
    api: Api, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_api_serve import Server

    monkeypatch.setenv("TOKENLEDGER_CREDENTIALS_PATH", str(tmp_path / "credentials.json"))
    server = Server(database_url, tmp_path / "served-keys.json")

    def remote(*args: str) -> Result:
        env = {"TOKENLEDGER_TOKEN": api.ann, "TOKENLEDGER_DATABASE_URL": None}
        return CliRunner().invoke(cli, ["--server", server.base, *args], env=env)

    try:
        made = remote(
            "webhooks",
            "create",
            "acme",
            "--url",
            HOOK,
            "--events",
            "token.revoked,token.expiring",
            "--json",
        )
        assert made.exit_code == 0, made.output
        created = json.loads(made.stdout)
        assert created["secret"].startswith("whsec_")
        assert created["events"] == ["token.expiring", "token.revoked"]
        listed = remote("webhooks", "list", "--org", "acme", "--json")
        assert [w["id"] for w in json.loads(listed.stdout)] == [created["id"]]
        assert json.loads(remote("webhooks", "get", created["id"], "--json").stdout)["url"] == HOOK
        assert json.loads(remote("webhooks", "deliveries", created["id"], "--json").stdout) == []
        rotated = remote("webhooks", "rotate-secret", created["id"], "--json")
        assert rotated.exit_code == 0, rotated.output
        assert json.loads(rotated.stdout)["secret"] not in (created["secret"], None)
        assert_one_line_error(
            remote("webhooks", "create", "acme", "--url", "ftp://x", "--events", "token.revoked"),
            2,
            "invalid webhook url",
        )
        assert remote("webhooks", "delete", created["id"]).exit_code == 0
        assert_one_line_error(remote("webhooks", "get", created["id"]), 3, "no webhook")
        assert_one_line_error(remote("notify", "--once"), 4, "needs the database")
    finally:
        server.stop()


def test_serve_notify_delivers_webhooks_beside_the_api(
    url: str, receiver: Receiver, tmp_path: Path
) -> None:
    from test_api_serve import Server

    webhook = create_webhook(url, receiver, "token.issued")
    server = Server(url, tmp_path / "keys.json", "--notify")
    try:
        token_id = issue(url)
        deadline = time.monotonic() + WAIT
        while not receiver.accepted():
            assert time.monotonic() < deadline, "no delivery from serve --notify"
            time.sleep(0.02)
    finally:
        code = server.stop()
    assert code in (0, -signal.SIGTERM), "".join(server.log)
    assert not any("Traceback" in line for line in server.log), "".join(server.log)
    (delivery,) = receiver.accepted()
    verify_signature(webhook["secret"], delivery)
    assert json.loads(delivery["body"])["data"]["token_id"] == token_id
