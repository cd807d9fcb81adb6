"""Last used: a credential's successful uses are noted in memory and recorded as ``TokenUsed``
at most once per credential and interval, off the verification path; ``last_used`` shows on
tokens, credentials and sessions; ``tokens unused --for`` lists the live tokens nobody used
for that long. On SQLite and PostgreSQL."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from threading import Thread
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from freezegun import freeze_time

from api_helpers import OPERATOR, SA, Api, make_api, seed
from helpers import assert_one_line_error, assert_projections_match_log, cli_head, cli_json, cli_run
from login_helpers import log_in, refresh, register_provider
from oidc_provider import OidcProvider
from test_api_serve import Server
from tokenledger.api import ApiSettings, create_app
from tokenledger.api.app import parse_usage_interval
from tokenledger.cli.output import format_timestamp
from tokenledger.domain import commands as c
from tokenledger.domain import events as e
from tokenledger.domain.affected import NO_ANSWER, answers_affected
from tokenledger.domain.model import Actor
from tokenledger.domain.permissions import Level
from tokenledger.domain.secrets import hash_secret
from tokenledger.domain.subjects import subjects
from tokenledger.errors import PermissionDenied, ValidationError
from tokenledger.service import Ledger
from tokenledger.service.usage import USAGE_ACTOR, UsageRecorder
from tokenledger.store import open_event_store
from tokenledger.store.mapper import decode_event

HOUR = timedelta(hours=1)
#: An hour's start a little ahead of now, so the tokens tests issue now are live then.
START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + 2 * HOUR


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


def shown(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def used_events(ledger: Ledger) -> list[e.TokenUsed]:
    return [
        event
        for event in (decode_event(record) for record in ledger.store.read_all())
        if isinstance(event, e.TokenUsed)
    ]


def head(ledger: Ledger) -> int:
    return ledger.store.head().position


def next_hour(moment: datetime | None = None) -> datetime:
    """A moment in the bucket after ``moment``'s (now's): every bucket before it is closed."""
    return (moment or datetime.now(UTC)) + HOUR


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with OidcProvider() as running:
        yield running


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    for made in make_api(database_url, tmp_path):
        # Written only when the test says (flush_uses), so what each test sees is exact.
        made.ledger.record_uses(HOUR, background=False)
        yield made


def verify(api: Api, secret: str) -> dict[str, Any]:
    response = api.client.post("/v2/tokens/verify", json={"token": secret}, headers=api.admin)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def token_id_of(api: Api, secret: str) -> str:
    """The token's id, read without using it (authenticating would be a use)."""
    with api.ledger.view() as view:
        token = view.token_by_secret_hash(hash_secret(secret))
    assert token is not None
    return token.token_id


# -- recording ----------------------------------------------------------------------------


def test_many_uses_in_one_interval_are_one_event_with_their_count(api: Api) -> None:
    sa_token = token_id_of(api, api.sa_token)
    before = head(api.ledger)
    with freeze_time(at(20), tick=True):
        for _ in range(5):
            assert verify(api, api.sa_token)["active"] is True
        for _ in range(2):
            assert api.introspect(api.sa_token)["active"] is True
        # Noted in memory only: nothing is written while the interval is open.
        assert head(api.ledger) == before
        assert api.ledger.flush_uses() == 0
        assert head(api.ledger) == before
    written = api.ledger.flush_uses(at(60))
    assert head(api.ledger) == before + written
    ours = [u for u in used_events(api.ledger) if u.token_id == sa_token]
    assert len(ours) == 1
    used = ours[0]
    assert used.count == 7
    assert used.interval == 3600
    assert used.bucket_start == START
    assert used.bucket_start <= used.last_used_at < used.bucket_start + HOUR
    # The admin's token, presented as the Bearer of each call, was used too.
    ann = token_id_of(api, api.ann)
    assert [u.count for u in used_events(api.ledger) if u.token_id == ann] == [7]
    assert_projections_match_log(api.ledger)


def test_a_new_interval_is_a_new_event_and_moves_last_used(api: Api) -> None:
    sa_token = token_id_of(api, api.sa_token)
    first = at(59.5)
    with freeze_time(first):
        verify(api, api.sa_token)
    with freeze_time(first + timedelta(minutes=1)):  # 11:00:30, the next interval
        verify(api, api.sa_token)
        verify(api, api.sa_token)
    api.ledger.flush_uses(next_hour(first + timedelta(minutes=1)))
    ours = [u for u in used_events(api.ledger) if u.token_id == sa_token]
    assert [(u.bucket_start, u.count) for u in ours] == [(START, 1), (START + HOUR, 2)]
    got = api.client.get(f"/v2/tokens/{sa_token}", headers=api.admin).json()
    assert got["last_used"] == shown(at(60.5))


def test_closing_the_ledger_writes_the_open_interval(api: Api, database_url: str) -> None:
    sa_token = token_id_of(api, api.sa_token)
    worker = Ledger.open(database_url, usage_interval=HOUR)  # a background writer, as served
    with freeze_time(at(20)):
        assert worker.verify(api.sa_token).active
        assert worker.flush_uses() == 0  # its interval is still open
        worker.close()  # as at shutdown: the open interval is written too
    assert [u.count for u in used_events(api.ledger) if u.token_id == sa_token] == [1]


def test_failed_verifications_record_nothing(api: Api) -> None:
    sa_token = token_id_of(api, api.sa_token)
    api.ledger.execute(c.RevokeToken(token_id=sa_token), OPERATOR)
    before = head(api.ledger)
    answer = api.client.post("/v2/tokens/verify", json={"token": api.sa_token})
    assert answer.status_code == 401  # a revoked token is not a caller either
    assert verify(api, api.sa_token)["active"] is False
    assert verify(api, "tls_notarealsecret")["active"] is False
    assert api.introspect(api.sa_token) == {"active": False}
    refused = api.client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=("cid_0000000000000000", "nope"),
    )
    assert refused.status_code == 401
    api.ledger.flush_uses(next_hour())
    assert [u.token_id for u in used_events(api.ledger)] == [token_id_of(api, api.ann)]
    assert head(api.ledger) == before + 1


def test_a_client_credential_is_used_by_its_own_authentication_and_its_access_tokens(
    api: Api,
) -> None:
    client_id, client_secret = api.credential()
    access = api.exchange(client_id, client_secret)  # authenticates the client: one use
    assert api.introspect(access)["active"] is True  # its access token: a use of it
    me = api.client.get("/v2/whoami", headers=api.bearer(access))  # as a caller, too
    assert me.status_code == 200, me.text
    api.ledger.flush_uses(next_hour())
    ours = [u for u in used_events(api.ledger) if u.client_id == client_id]
    assert len(ours) == 1
    assert ours[0].count == 3
    assert ours[0].stream_id == f"client:{client_id}"
    listed = api.client.get(f"/v2/service_accounts/{SA}/credentials", headers=api.admin).json()
    (credential,) = [row for row in listed if row["client_id"] == client_id]
    assert credential["last_used"] is not None


def test_a_role_key_is_a_token_and_records_its_use(api: Api) -> None:
    api.ledger.execute(c.build(c.CreateRole, org="acme", role="reader"), OPERATOR)
    api.ledger.execute(
        c.build(c.AddRolePolicy, org="acme", role="reader", resource="acme/alpha", level="read"),
        OPERATOR,
    )
    key = api.ledger.execute(c.build(c.IssueRoleKey, org="acme", role="reader"), OPERATOR)
    assert key.secret is not None
    assert key.issued is not None
    assert verify(api, key.secret)["active"] is True
    api.ledger.flush_uses(next_hour())
    assert [u.count for u in used_events(api.ledger) if u.token_id == key.issued.token_id] == [1]


def test_a_session_is_used_by_its_access_tokens_and_its_refreshes(
    api: Api, provider: OidcProvider
) -> None:
    register_provider(api, provider)
    tokens = log_in(api, provider, "bob@acme.io")
    session_id = tokens["session_id"]
    assert api.introspect(tokens["access_token"])["active"] is True
    renewed = refresh(api, tokens["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    api.ledger.flush_uses(next_hour())
    ours = [u for u in used_events(api.ledger) if u.session_id == session_id]
    assert [u.count for u in ours] == [2]
    listed = api.client.get("/v2/users/bob@acme.io/sessions", headers=api.admin)
    assert listed.status_code == 200, listed.text
    assert [s["last_used"] is not None for s in listed.json()] == [True]


def test_a_recorded_use_keeps_every_cached_answer(api: Api) -> None:
    assert verify(api, api.sa_token)["active"] is True
    kept = api.ledger.cached_answers
    assert kept > 0
    with freeze_time(next_hour()):
        assert api.ledger.flush_uses() > 0
    assert api.ledger.cached_answers == kept
    assert (
        answers_affected(
            e.TokenUsed(
                token_id="tok_x",
                bucket_start=datetime.now(UTC),
                interval=3600,
                count=1,
                last_used_at=datetime.now(UTC),
            )
        )
        == NO_ANSWER
    )


def test_a_use_is_indexed_for_audit_under_its_credential_alone() -> None:
    now = datetime(2031, 1, 1, tzinfo=UTC)
    used = e.TokenUsed(session_id="ses_x", bucket_start=now, interval=60, count=2, last_used_at=now)
    assert subjects(used) == ("ses_x",)
    assert used.stream_id == "session:ses_x"


def test_several_processes_record_one_event_per_credential_and_interval(
    api: Api, database_url: str
) -> None:
    other = Ledger(open_event_store(database_url))
    try:
        other.record_uses(HOUR, background=False)
        moment = at(20)
        with freeze_time(moment):
            verify(api, api.sa_token)
            assert other.verify(api.sa_token).active
            assert other.verify(api.sa_token).active
        assert other.flush_uses(next_hour(moment)) == 1
        assert api.ledger.flush_uses(next_hour(moment)) == 1  # the admin's Bearer only
    finally:
        other.close()
    sa_token = token_id_of(api, api.sa_token)
    assert [u.count for u in used_events(api.ledger) if u.token_id == sa_token] == [2]


def test_noting_from_many_threads_loses_no_use_and_splits_at_the_interval() -> None:
    recorded: list[c.RecordUses] = []

    def execute(command: c.Command, actor: Actor) -> Any:
        assert isinstance(command, c.RecordUses)
        assert actor == USAGE_ACTOR
        recorded.append(command)
        return SimpleNamespace(events=command.uses)

    recorder = UsageRecorder(execute, lambda: at(30).timestamp(), HOUR, background=False)

    def noting(credential: str) -> None:
        for _ in range(5_000):
            recorder.note(credential, at(30).timestamp())

    threads = [Thread(target=noting, args=(f"tok_{n % 2}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    recorder.note("tok_0", at(61).timestamp())  # the next interval
    recorder.note("wif_0000", at(61).timestamp())  # an issuer trust's: not recorded
    assert recorder.flush(at(61)) == 2  # the closed interval only
    assert recorder.flush(everything=True) == 1
    closed, open_one = (command.uses for command in recorded)
    counts = {(u.credential_id, u.bucket_start): u.count for u in closed + open_one}
    assert counts == {
        ("tok_0", START): 10_000,
        ("tok_1", START): 10_000,
        ("tok_0", START + HOUR): 1,
    }
    assert {u.last_used_at for u in closed} == {at(30)}


def test_no_caller_can_record_a_use() -> None:
    ledger = Ledger.open("sqlite://")
    try:
        ledger.execute(c.CreateOrg(org="acme"), OPERATOR)
        user = ledger.execute(c.CreateUser(email="ann@acme.io"), OPERATOR)
        assert user.events
        before = head(ledger)
        forged = c.RecordUses(
            interval=3600,
            uses=(
                c.NotedUse(
                    credential_id="tok_0000000000000000",
                    bucket_start=datetime(2031, 1, 1, tzinfo=UTC),
                    count=1,
                    last_used_at=datetime(2031, 1, 1, tzinfo=UTC),
                ),
            ),
        )
        with pytest.raises(PermissionDenied, match="only an operator may record uses"):
            ledger.execute(forged, Actor.through_token("ann@acme.io", "tok_0000000000000000"))
        assert head(ledger) == before
    finally:
        ledger.close()


def test_the_interval_is_one_minute_to_one_day() -> None:
    for wrong in (timedelta(seconds=30), timedelta(days=2), timedelta(seconds=90.5)):
        with pytest.raises(ValidationError, match="between 1 minute and 1 day"):
            Ledger.open("sqlite://", usage_interval=wrong)
    assert parse_usage_interval("off") is None
    assert parse_usage_interval("") == HOUR
    assert parse_usage_interval("15m") == timedelta(minutes=15)
    with pytest.raises(ValidationError, match="invalid usage interval"):
        parse_usage_interval("30s")


def test_serve_refuses_a_bad_usage_interval_in_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    result = cli_run(url, "serve", "--usage-interval", "2d")
    assert_one_line_error(result, 2, "invalid usage interval")


def test_a_served_ledger_records_uses_and_writes_them_when_it_stops(
    database_url: str, tmp_path: Path
) -> None:
    seeding = Ledger(open_event_store(database_url, auto_upgrade=True))
    secrets = seed(seeding)
    seeding.close()
    url = database_url
    server = Server(url, tmp_path / "keys.json")
    try:
        for _ in range(3):
            answer = httpx.post(
                f"{server.base}/oauth2/introspect",
                data={"token": secrets["sa_token"]},
                headers={"Authorization": f"Bearer {secrets['ann']}"},
            )
            assert answer.json()["active"] is True
        ledger = Ledger(open_event_store(url))
        assert used_events(ledger) == []  # the hour has not ended: nothing written yet
    finally:
        code = server.stop()
    assert code in (0, -signal.SIGTERM), "".join(server.log)
    counts = sorted(u.count for u in used_events(ledger))
    ledger.close()
    assert counts == [3, 3]  # the token introspected, and the caller's own


# -- showing last use ---------------------------------------------------------------------


def test_tokens_get_and_list_show_last_used(api: Api, database_url: str) -> None:
    sa_token = token_id_of(api, api.sa_token)
    never = cli_json(database_url, "tokens", "get", sa_token)
    assert never["last_used"] is None
    assert "last_used:      never" in cli_run(database_url, "tokens", "get", sa_token).stdout
    moment = at(20.5)
    with freeze_time(moment):
        verify(api, api.sa_token)
    api.ledger.flush_uses(next_hour(moment))
    got = cli_json(database_url, "tokens", "get", sa_token)
    assert got["last_used"] == format_timestamp(moment)
    listed = cli_json(database_url, "tokens", "list", "--principal", SA)
    assert [t["last_used"] for t in listed if t["token_id"] == sa_token] == [got["last_used"]]
    text = cli_run(database_url, "tokens", "list", "--principal", SA).stdout
    assert f"last used {format_timestamp(moment)}" in text
    audit = cli_json(database_url, "audit", "--subject", sa_token, "--type", "TokenUsed")
    assert [entry["summary"] for entry in audit] == [
        f"token {sa_token} used 1 time(s) in the 3600 s from {format_timestamp(at(0))}"
    ]
    over_http = api.client.get(f"/v2/service_accounts/{SA}/tokens", headers=api.admin).json()
    assert [t["last_used"] for t in over_http if t["token_id"] == sa_token] == [shown(moment)]


# -- tokens unused ------------------------------------------------------------------------


class Clock:
    def __init__(self, start: datetime) -> None:
        self.moment = start

    def now(self) -> datetime:
        return self.moment


READ, WRITE = Level.READ, Level.WRITE
ALPHA_READ = {"resource": "acme/alpha", "level": "read"}


class Unused:
    """A ledger whose tokens were issued 200 days ago: of the service account ``ci`` of acme,
    ``never`` (never used), ``long`` (last used 100 days ago), ``recent`` (10 days ago),
    ``revoked``, ``expired`` (a day ago); ``elsewhere`` (org ``other``'s, never used);
    ``bobs`` (bob's own, a member of acme, never used) and ``key`` (a key of role acme:reader,
    never used). ``ann`` administers acme and ``bob`` is a member (tokens of today)."""

    def __init__(self, database_url: str) -> None:
        now = datetime.now(UTC)
        self.clock = Clock(now - timedelta(days=200))
        self.ledger = Ledger(open_event_store(database_url, auto_upgrade=True, clock=self.clock))
        self.ledger.record_uses(HOUR, background=False)
        run = self.run
        for command in (
            c.CreateOrg(org="acme"),
            c.CreateOrg(org="other"),
            c.CreateResource(path="acme/alpha"),
            c.CreateResource(path="other/beta"),
            c.CreateUser(email="ann@acme.io"),
            c.AddMember(org="acme", email="ann@acme.io", role="admin"),
            c.CreateUser(email="bob@acme.io"),
            c.AddMember(org="acme", email="bob@acme.io"),
            c.SetGrant(principal="bob@acme.io", resource="acme/alpha", level=Level.READ),
            c.CreateServiceAccount(name="ci", org="acme", resource="acme/alpha", level=WRITE),
            c.CreateServiceAccount(name="etl", org="other", resource="other/beta", level=READ),
            c.build(c.CreateRole, org="acme", role="reader", grants=[ALPHA_READ]),
        ):
            run(command)
        self.ids: dict[str, str] = {}
        secrets: dict[str, str] = {}
        for name, principal, lifetime in (
            ("never", SA, None),
            ("long", SA, None),
            ("recent", SA, None),
            ("revoked", SA, None),
            ("expired", SA, timedelta(days=199)),
            ("elsewhere", "etl@other.service.tokenledger", None),
        ):
            issued = run(c.build(c.IssueToken, principal=principal, name=name, expires_in=lifetime))
            assert issued.issued is not None
            assert issued.secret is not None
            self.ids[name], secrets[name] = issued.issued.token_id, issued.secret
        bobs = run(c.build(c.IssueToken, principal="bob@acme.io", grants=[ALPHA_READ],
                           expires_in=timedelta(days=365)))  # fmt: skip
        key = run(c.build(c.IssueRoleKey, org="acme", role="reader"))
        self.ids["bobs"], self.ids["key"] = bobs.issued.token_id, key.issued.token_id
        self.clock.moment = now - timedelta(days=100)
        assert self.ledger.verify(secrets["long"]).active
        self.ledger.flush_uses(everything=True)
        self.clock.moment = now - timedelta(days=10)
        assert self.ledger.verify(secrets["recent"]).active
        self.ledger.flush_uses(everything=True)
        run(c.RevokeToken(token_id=self.ids["revoked"]))
        self.clock.moment = now
        ann = run(
            c.build(
                c.IssueToken,
                principal="ann@acme.io",
                grants=[{"resource": "acme", "level": "admin"}],
            )
        )
        bob = run(
            c.build(
                c.IssueToken,
                principal="bob@acme.io",
                grants=[{"resource": "acme/alpha", "level": "read"}],
            )
        )
        assert ann.secret is not None
        assert bob.secret is not None
        self.ann, self.bob = ann.secret, bob.secret

    def run(self, command: c.Command) -> Any:
        return self.ledger.execute(command, OPERATOR)

    def names(self, listed: list[dict[str, Any]]) -> list[str]:
        by_id = {token_id: name for name, token_id in self.ids.items()}
        return sorted(by_id.get(t["token_id"], t["token_id"]) for t in listed)


@pytest.fixture
def unused(database_url: str) -> Iterator[Unused]:
    made = Unused(database_url)
    yield made
    made.ledger.close()


def test_unused_lists_live_tokens_unused_or_never_used_for_that_long(
    unused: Unused, database_url: str
) -> None:
    every = cli_json(database_url, "tokens", "unused", "--for", "90d")
    assert unused.names(every) == ["bobs", "elsewhere", "key", "long", "never"]
    assert unused.names(cli_json(database_url, "tokens", "unused", "--for", "5d")) == [
        "bobs",
        "elsewhere",
        "key",
        "long",
        "never",
        "recent",
    ]
    assert unused.names(cli_json(database_url, "tokens", "unused", "--for", "150d")) == [
        "bobs",
        "elsewhere",
        "key",
        "never",
    ]
    acme = cli_json(database_url, "tokens", "unused", "--for", "90d", "--org", "acme")
    assert unused.names(acme) == ["bobs", "key", "long", "never"]
    other = cli_json(database_url, "tokens", "unused", "--for", "90d", "--org", "other")
    assert unused.names(other) == ["elsewhere"]
    (long,) = [t for t in acme if t["token_id"] == unused.ids["long"]]
    assert long["last_used"] is not None
    assert long["status"] == "active"
    text = cli_run(database_url, "tokens", "unused", "--for", "90d", "--org", "acme").stdout
    assert [line.split()[1] for line in text.splitlines()] == sorted(
        unused.ids[name] for name in ("bobs", "key", "long", "never")
    )


def test_unused_shows_each_caller_what_it_may_see(unused: Unused, database_url: str) -> None:
    as_admin = cli_json(database_url, "tokens", "unused", "--for", "90d", token=unused.ann)
    # acme's accounts' tokens and roles' keys, not other's, nor a member's own tokens
    assert unused.names(as_admin) == ["key", "long", "never"]
    as_member = cli_json(database_url, "tokens", "unused", "--for", "90d", token=unused.bob)
    assert unused.names(as_member) == ["bobs"]  # its own
    app = create_app(unused.ledger, ApiSettings())
    with TestClient(app) as client:
        bearer = {"Authorization": f"Bearer {unused.ann}"}
        answer = client.get("/v2/tokens/unused", params={"for": "90d"}, headers=bearer)
        assert answer.status_code == 200, answer.text
        assert unused.names(answer.json()) == ["key", "long", "never"]
        operator_view = client.get(
            "/v2/tokens/unused", params={"for": "90d", "org": "other"}, headers=bearer
        )
        assert operator_view.json() == []
        refused = client.get("/v2/tokens/unused", params={"for": "soon"}, headers=bearer)
        assert refused.status_code == 400
        assert "invalid duration" in refused.json()["error_description"]
        missing = client.get("/v2/tokens/unused", headers=bearer)
        assert missing.status_code in (400, 422)


@pytest.mark.parametrize(
    ("period", "message"),
    [
        ("soon", "invalid duration"),
        ("0d", "must be longer than zero"),
        ("200y", "at most 100 years"),
    ],
)
def test_unused_refuses_a_bad_period_in_one_line(
    unused: Unused, database_url: str, period: str, message: str
) -> None:
    before = cli_head(database_url)
    result = cli_run(database_url, "tokens", "unused", "--for", period)
    assert_one_line_error(result, 2, message)
    refused_org = cli_run(database_url, "tokens", "unused", "--for", "1d", "--org", "Not An Org")
    assert_one_line_error(refused_org, 2)
    assert cli_head(database_url) == before


def test_a_revocation_by_filter_selects_the_unused_tokens_the_listing_shows(
    unused: Unused, database_url: str
) -> None:
    listed = cli_json(database_url, "tokens", "unused", "--for", "90d", "--org", "acme")
    where = ("--where", "unused-for=90d", "--where", "org=acme")
    preview = cli_json(database_url, "tokens", "revoke", *where)
    assert (
        unused.names(preview["tokens"]) == unused.names(listed) == ["bobs", "key", "long", "never"]
    )
    done = cli_json(database_url, "tokens", "revoke", *where, "--yes")
    assert sorted(done["revoked"]) == sorted(t["token_id"] for t in listed)
    assert cli_json(database_url, "tokens", "unused", "--for", "90d", "--org", "acme") == []
    refused = cli_run(database_url, "tokens", "revoke", "--where", "unused-for=0d")
    assert_one_line_error(refused, 2, "longer than zero")
